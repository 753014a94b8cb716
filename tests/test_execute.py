"""The student edition of chapter 1 stops at exercise 1 (broken formulas: test_broken_formulas.py)."""

from __future__ import annotations

import copy

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from ddpm_nb.student import student_notebook

CH01 = ROOT / "notebooks" / "01_markov.ipynb"


def _execute(nb: dict, timeout: int = 600) -> None:
    node = nbformat.from_dict(copy.deepcopy(nb))
    NotebookClient(node, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(CH01.parent)}}).execute()


def test_student_edition_runs_to_the_first_exercise_and_says_what_is_wrong():
    nb = student_notebook(nbformat.read(CH01, as_version=4), "01_markov")
    with pytest.raises(CellExecutionError) as err:
        _execute(nb)
    msg = str(err.value)
    assert "ExerciseNotDone" in msg
    assert "Exercise 1.1" in msg and "NotImplementedError" in msg and "forward_step" in msg
    # It stopped at the first checker: the source shown is that checker's call.
    assert "check_forward_step" in msg
