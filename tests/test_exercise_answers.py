"""The exercise catalog against the chapters: each checker passes the book's own solution and rejects an
answer that is, or calls, one of the package's own answers (`ANSWERS` of its checker module)."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_nb.exercises import ExerciseWrong
from ddpm_nb.exercises.catalog import CHAPTERS, EXERCISES, POINTS, exercises_of

ROOT = Path(__file__).resolve().parents[1]
CODE = [e for e in EXERCISES if e.checked]


def _cells(chapter: int) -> list[dict]:
    return json.loads((ROOT / "notebooks" / f"{CHAPTERS[chapter]}.ipynb").read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _solution(exercise) -> str:
    """The chapter's solution cells up to the exercise's checker cell, in order (a build exercise may
    use the answers of the chapter's earlier exercises, as a student's notebook does)."""
    cells = _cells(exercise.chapter)
    i = next(i for i, c in enumerate(cells) if _source(c).strip() == exercise.checker_source)
    return "\n\n".join(_source(cells[k]) for k in range(i)
                       if "solution" in cells[k].get("metadata", {}).get("tags", []))


def _namespace() -> dict:
    import ddpm_nb as nb

    return {"math": math, "np": np, "torch": torch, "nb": nb}


def test_every_checker_cell_of_the_catalog_is_in_its_chapter_once():
    for e in CODE:
        hits = [c for c in _cells(e.chapter)
                if c["cell_type"] == "code" and _source(c).strip() == e.checker_source]
        assert len(hits) == 1, f"exercise {e.id}: {len(hits)} cells read {e.checker_source!r}"


def test_every_think_exercise_has_a_model_answer_and_a_rubric_line_per_point():
    think = [e for e in EXERCISES if e.kind == "think"]
    assert think
    for e in think:
        assert len(e.model_answer) > 200 and len(e.rubric) == POINTS["think"]
        text = "".join(_source(c) for c in _cells(e.chapter) if c["cell_type"] == "markdown")
        assert f"**Exercise {e.id} (think).**" in text


def test_catalog_numbers_follow_the_chapters():
    for chapter in CHAPTERS:
        ids = [e.id for e in exercises_of(chapter)]
        assert ids == [f"{chapter}.{k}" for k in range(1, len(ids) + 1)]
        text = "".join(_source(c) for c in _cells(chapter) if c["cell_type"] == "markdown")
        for i in ids:
            assert f"**Exercise {i} " in text


@pytest.mark.parametrize("exercise", CODE, ids=lambda e: e.id)
def test_the_book_solution_passes_its_checker(exercise, capsys):
    ns = _namespace()
    exec(_solution(exercise), ns)
    module = importlib.import_module(f"ddpm_nb.exercises.{exercise.module}")
    getattr(module, exercise.checker)(*[ns[n] for n in exercise.answer])
    assert f"✓ Exercise {exercise.id} passed" in capsys.readouterr().out


WITH_ANSWERS = [e for e in CODE if importlib.import_module(f"ddpm_nb.exercises.{e.module}").ANSWERS.get(e.id)]


@pytest.mark.parametrize("exercise", WITH_ANSWERS, ids=lambda e: e.id)
def test_an_answer_that_calls_the_package_is_rejected(exercise):
    module = importlib.import_module(f"ddpm_nb.exercises.{exercise.module}")
    for own in module.ANSWERS[exercise.id]:
        # the student's function hands its arguments to the package's: the exercise is not done
        answers = [(lambda *a, _f=own, **k: _f(*a, **k)) for _ in exercise.answer]
        if own.__name__ == "MinMax":  # used as the chapter does: MinMax(low, high).encode(x)
            answers = [lambda x, lo, hi, _f=own: _f(lo, hi).encode(x),
                       lambda y, lo, hi, _f=own: _f(lo, hi).decode(y)]
        with pytest.raises(ExerciseWrong, match="the package's own answer"):
            getattr(module, exercise.checker)(*answers)
    # and the package's functions work again afterwards
    for own in module.ANSWERS[exercise.id]:
        assert getattr(own, "__code__", None) is None or own.__code__.co_name != "_stub"


def test_returning_the_package_function_itself_is_rejected():
    import ddpm_nb as nb
    from ddpm_nb.exercises import ch01

    with pytest.raises(ExerciseWrong, match="ddpm_nb.diffusion.q_step"):
        ch01.check_forward_step(nb.q_step)
    with pytest.raises(ExerciseWrong, match="stationary_distribution"):
        ch01.check_stationary(nb.stationary_distribution)
    x = torch.randn(3, 2)
    assert torch.equal(nb.q_step(x, 0.5, x), math.sqrt(0.5) * x + math.sqrt(0.5) * x)  # restored
