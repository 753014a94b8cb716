"""Executing chapters: a broken formula must fail chapter 1; the student edition stops at exercise 1."""

from __future__ import annotations

import copy

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from ddpm_nb.student import student_notebook

CH01 = ROOT / "notebooks" / "01_markov.ipynb"

# Each patch breaks one formula of ddpm_nb inside the kernel, right after nb.setup().
BREAKS = {
    "q(x_t|x_0) mean without its square root": '''
import ddpm_nb, ddpm_nb.diffusion as _d
def _broken(x0, t, alpha_bar):
    ab = _d._gather(alpha_bar, t, x0)
    return ab * x0, 1 - ab          # sqrt(ᾱ_t)·x0 became ᾱ_t·x0
_d.q_mean_var = ddpm_nb.q_mean_var = _broken
''',
    "forward step with β·ε instead of sqrt(β)·ε": '''
import torch, ddpm_nb, ddpm_nb.diffusion as _d
def _broken(x0, beta, *, generator=None):
    b = beta[1:].to(x0.dtype)
    return ddpm_nb.markov.gaussian_chain(x0, torch.sqrt(1 - b), b, generator=generator)
_d.simulate_forward = ddpm_nb.simulate_forward = _broken
''',
}


def _execute(nb: dict, timeout: int = 600) -> None:
    node = nbformat.from_dict(copy.deepcopy(nb))
    NotebookClient(node, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(CH01.parent)}}).execute()


def _setup_index(nb: dict) -> int:
    return next(i for i, c in enumerate(nb["cells"])
                if c["cell_type"] == "code" and "nb.setup(" in "".join(c["source"]))


@pytest.mark.parametrize("patch", list(BREAKS), ids=list(BREAKS))
def test_breaking_a_formula_fails_chapter_1(patch):
    nb = nbformat.read(CH01, as_version=4)
    i = _setup_index(nb)
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell(BREAKS[patch]))
    with pytest.raises(CellExecutionError) as err:
        _execute(nb)
    assert "ClaimFailed" in str(err.value), "the chapter must fail on a checked claim"


def test_student_edition_runs_to_the_first_exercise_and_says_what_is_wrong():
    nb = student_notebook(nbformat.read(CH01, as_version=4), "01_markov")
    with pytest.raises(CellExecutionError) as err:
        _execute(nb)
    msg = str(err.value)
    assert "ExerciseNotDone" in msg
    assert "Exercise 1.1" in msg and "NotImplementedError" in msg and "forward_step" in msg
    # It stopped at the first checker: the source shown is that checker's call.
    assert "check_forward_step" in msg
