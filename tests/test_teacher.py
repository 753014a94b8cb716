"""The teacher's edition (`ddpm-nb teacher`): solutions open, points for every exercise, a model answer
and rubric for every think exercise, and TEACHER.md with points, run times and the course's commands."""

from __future__ import annotations

import json
from pathlib import Path

from ddpm_nb.cli import main
from ddpm_nb.exercises.catalog import CHAPTERS, EXERCISES

ROOT = Path(__file__).resolve().parents[1]


def test_the_teacher_edition_has_points_answers_and_rubrics(tmp_path, capsys):
    chapters = [str(ROOT / "notebooks" / f"{stem}.ipynb") for stem in CHAPTERS.values()]
    assert main(["teacher", *chapters, "--out", str(tmp_path)]) == 0
    for e in EXERCISES:
        nb = json.loads((tmp_path / f"{CHAPTERS[e.chapter]}.ipynb").read_text())
        notes = ["".join(c["source"]) for c in nb["cells"] if "teacher" in c["metadata"].get("tags", [])]
        mine = [n for n in notes if f"exercise {e.id} " in n]
        assert len(mine) == 1, (e.id, notes)
        assert f"{e.points} points" in mine[0]
        if e.kind == "think":
            assert e.model_answer in mine[0] and all(r in mine[0] for r in e.rubric)
        for c in nb["cells"]:
            if "solution" in c["metadata"].get("tags", []):
                assert "hide-input" not in c["metadata"]["tags"]
    guide = (tmp_path / "TEACHER.md").read_text()
    for e in EXERCISES:
        assert f"| {e.id} | {e.title} | {e.kind} | {e.points} |" in guide
    for stem in CHAPTERS.values():
        assert f"| `{stem}` | " in guide
    assert "ddpm-nb grade submissions/" in guide and "ddpm-nb student" in guide


def test_bad_input_is_one_sentence(tmp_path, capsys):
    other = tmp_path / "mine.ipynb"
    other.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}))
    assert main(["teacher", str(other), "--out", str(tmp_path / "t")]) == 2
    assert "not one of the book's chapters" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
