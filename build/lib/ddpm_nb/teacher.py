"""The teacher's edition: `ddpm-nb teacher notebooks/*.ipynb --out DIR`.

Writes, for each chapter, the notebook with its solutions open (not collapsed), each exercise's points
next to its statement, and, under each "think" exercise, a model answer and a rubric of one point per
line; and `TEACHER.md`, the course guide: every exercise with its points and how it is graded, the
expected run time of each chapter, and the commands to hand out, collect and grade.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError
from .exercises.catalog import CHAPTERS, EXERCISES, POINTS, Exercise, chapter_of, exercises_of
from .files import atomic_open
from .student import SOLUTION_TAG, cell_tags, convert_notebooks, write_notebooks

__all__ = ["teacher_notebook", "teacher_guide", "make_teacher_edition"]

HOW = {"code": "by its checker cell (`ddpm-nb grade`)", "build": "by its checker cell (`ddpm-nb grade`)",
       "think": "by hand, with the rubric"}


def _markdown(text: str, cell_id: str | None) -> dict:
    cell = {"cell_type": "markdown", "metadata": {"tags": ["teacher"]}, "source": text}
    if cell_id:
        cell["id"] = cell_id
    return cell


def model_answer_markdown(e: Exercise) -> str:
    rubric = "\n".join(f"- **1 point.** {line}" for line in e.rubric)
    return (f"**Teacher's edition: exercise {e.id} ({e.points} points, graded by hand).**\n\n"
            f"*Model answer.* {e.model_answer}\n\n*Rubric.*\n\n{rubric}\n")


def teacher_notebook(nb: dict, name: str) -> dict:
    """The chapter `nb` as a teacher reads it: solutions open, points and model answers in place."""
    chapter = chapter_of(Path(name).stem)
    if chapter is None:
        raise UserError(f"{name} is not one of the book's chapters ({', '.join(CHAPTERS.values())}).")
    with_ids = nb.get("nbformat_minor", 0) >= 5
    cells = []
    for cell in nb["cells"]:
        cell = json.loads(json.dumps(cell))
        if SOLUTION_TAG in cell_tags(cell):
            cell["metadata"]["tags"] = [t for t in cell_tags(cell) if t not in ("hide-input", "hide-cell")]
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for e in exercises_of(chapter):
            marker = f"**Exercise {e.id} "
            if marker not in text:
                continue
            if e.kind == "think":
                cells.append(_markdown(model_answer_markdown(e), f"teacher-{e.id}" if with_ids else None))
            else:
                cells.append(_markdown(f"*Teacher's edition: exercise {e.id} is worth {e.points} points, "
                                       f"scored {HOW[e.kind]}.*", f"teacher-{e.id}" if with_ids else None))
    return {**nb, "cells": cells}


GUIDE_HEAD = """\
# Teacher's edition

The chapters in this folder keep their solutions open; each exercise says its points, and each
*think* exercise has a model answer and a rubric (one point per line). Code exercises are scored
by their checker cells with `ddpm-nb grade`; think exercises by hand.

## Running the course

1. Hand out: `ddpm-nb student notebooks/*.ipynb --out student/` (or the site's student-edition
   downloads and Colab links, see the book's *How to use* page).
2. Collect: one notebook per student and chapter, saved from Jupyter or downloaded from Colab
   (*File > Download > .ipynb*), in one folder; a student's name is the file's name without the
   chapter's (`alice_01_markov.ipynb`) or its folder's (`alice/01_markov.ipynb`).
3. Grade: `ddpm-nb grade submissions/ --json gradebook.json --csv gradebook.csv` (each notebook
   in a fresh kernel, in a temporary folder, 120 s a cell and 900 s a notebook unless
   `--cell-timeout` / `--timeout` say otherwise; `--workers N` grades N at once).

## Exercises and points
"""


def teacher_guide() -> str:
    """TEACHER.md: exercises, points, run times, model answers and the course's commands."""
    from .prose import runtime_words

    lines = GUIDE_HEAD.splitlines() + [
             "", f"Points: {POINTS['code']} a code exercise, {POINTS['build']} a build exercise (a larger "
                 f"piece of the book, built from the chapter's parts), {POINTS['think']} a think exercise.",
             "",
             "| exercise | title | kind | points | graded |", "|---|---|---|---|---|"]
    for e in EXERCISES:
        lines.append(f"| {e.id} | {e.title} | {e.kind} | {e.points} | {HOW[e.kind]} |")
    total = {c: sum(e.points for e in exercises_of(c)) for c in CHAPTERS}
    lines += ["", "Points per chapter: " + ", ".join(f"chapter {c}: {p}" for c, p in total.items()) + ".", "",
              "## Expected run time of each chapter", "",
              "Measured on this project's machine (the times are in `checkpoints/runtimes.json`); no GPU",
              "has been available to the project yet, so the GPU column says so.", "",
              "| chapter | quick mode (`DDPM_NB_QUICK=1`) | full mode, CPU | full mode, Colab GPU |",
              "|---|---|---|---|"]
    for stem in CHAPTERS.values():
        w = runtime_words(stem)
        lines.append(f"| `{stem}` | {w['runtime_quick']} | {w['runtime_full']} | {w['runtime_gpu']} |")
    cpu = runtime_words(CHAPTERS[1])["runtime_cpu"]
    lines += ["", f"CPU: {cpu}.", "", "## Model answers and rubrics", ""]
    for e in (e for e in EXERCISES if e.kind == "think"):
        lines += [f"### Exercise {e.id}: {e.title} ({e.points} points)", "", e.model_answer, ""]
        lines += [f"- 1 point: {r}" for r in e.rubric] + [""]
    return "\n".join(lines)


def make_teacher_edition(notebooks: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Write the teacher's edition of each chapter and TEACHER.md into out_dir; returns the paths.
    Everything is converted before anything is written; each file is written atomically."""
    converted = convert_notebooks(notebooks, out_dir, teacher_notebook)
    guide = teacher_guide()
    written = write_notebooks(converted, out_dir)
    with atomic_open(Path(out_dir) / "TEACHER.md", "w") as f:
        f.write(guide)
    return [*written, Path(out_dir) / "TEACHER.md"]
