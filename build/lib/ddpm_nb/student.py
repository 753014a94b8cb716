"""The student edition: every chapter with its solution cells removed.

Cells tagged ``solution`` are dropped; ``exercise`` cells (stubs that raise NotImplementedError)
and the checker cells stay, so a student runs a checker and reads what is still wrong. A cell tagged
``shows-answer`` (it prints the code of a package function that answers an exercise) is replaced by a
short note. Outputs are cleared. The book itself keeps the solutions, collapsed on the site.

The cells carry nbgrader's metadata (schema 3), so a teacher who grades with nbgrader can use the
edition as it is: each exercise stub is an answer cell (``solution: true``, what the student edits) and
each checker cell a locked autograder test (``grade: true``, its points from the exercise catalog),
which passes when it runs without an error. `ddpm-nb grade` reads the same metadata.
"""

from __future__ import annotations

import html
import inspect
import json
import re
from pathlib import Path

from .errors import UserError
from .files import write_json

__all__ = ["SOLUTION_TAG", "EXERCISE_TAG", "SHOWS_ANSWER_TAG", "student_notebook", "make_student_edition",
           "nbgrader_meta", "chapter_exercises", "answer_leaks", "cell_tags", "convert_notebooks",
           "write_notebooks", "cell_source", "checker_cells"]

SOLUTION_TAG, EXERCISE_TAG, SHOWS_ANSWER_TAG = "solution", "exercise", "shows-answer"
HIDDEN_NOTE = ("*(The student edition leaves out this cell: it prints the code of a package function that "
               "answers one of the exercises below.)*")
BANNER = ("**Student edition.** The solution cells of this chapter have been removed. Fill in each "
          "cell marked *Exercise*, then run the checker cell below it: it tells you what is still "
          "wrong.")


def cell_tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def nbgrader_meta(grade_id: str, *, points: int | None = None) -> dict:
    """nbgrader's cell metadata: an autograded test cell when `points` is given, else an answer cell."""
    if points is None:
        return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3,
                "solution": True, "task": False}
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points, "schema_version": 3,
            "solution": False, "task": False}


def chapter_exercises(name: str) -> list:
    """The catalog's exercises of the chapter whose file is called `name` (none for another notebook)."""
    from .exercises.catalog import chapter_of, exercises_of

    chapter = chapter_of(Path(name).stem)
    return exercises_of(chapter) if chapter else []


def cell_source(cell: dict) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def checker_cells(cells: list[dict], exercise) -> list[int]:
    """Indices of the code cells that read the exercise's checker line (the catalog's `checker_source`)."""
    return [i for i, c in enumerate(cells) if c.get("cell_type") == "code"
            and cell_source(c).strip() == exercise.checker_source]


def _mark_exercises(cells: list[dict], exercises: list) -> None:
    """Give each checker cell of the catalog (found by its one line) and the stub before it nbgrader's
    metadata; a checker cell missing from the chapter is an error (the catalog and the book disagree)."""
    for e in (e for e in exercises if e.checked):
        hits = checker_cells(cells, e)
        if len(hits) != 1:
            raise UserError(f"Exercise {e.id}: the chapter has {len(hits)} checker cells reading "
                            f"{e.checker_source!r}, expected one.")
        i = hits[0]
        cells[i].setdefault("metadata", {})["nbgrader"] = nbgrader_meta(f"check-{e.id}", points=e.points)
        stubs = [k for k in range(i) if EXERCISE_TAG in cell_tags(cells[k])]
        if stubs:
            cells[stubs[-1]].setdefault("metadata", {})["nbgrader"] = nbgrader_meta(f"answer-{e.id}")


def student_notebook(nb: dict, name: str = "notebook", *, keep_outputs: bool = False) -> dict:
    """Return a copy of notebook `nb` (nbformat 4 JSON) without solutions and outputs (`keep_outputs`:
    with the outputs of the cells it keeps, as if the edition had run; for `answer_leaks`)."""
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or "cells" not in nb:
        raise UserError(f"{name} is not a Jupyter notebook in nbformat 4.")
    n_ex = sum(EXERCISE_TAG in cell_tags(c) for c in nb["cells"])
    n_sol = sum(SOLUTION_TAG in cell_tags(c) for c in nb["cells"])
    if n_sol != n_ex:
        raise UserError(f"{name} has {n_ex} '{EXERCISE_TAG}' cells but {n_sol} '{SOLUTION_TAG}' "
                        "cells: give each solution its exercise stub so students have a place to answer.")
    cells = []
    for cell in nb["cells"]:
        if SOLUTION_TAG in cell_tags(cell):
            continue
        cell = json.loads(json.dumps(cell))
        if SHOWS_ANSWER_TAG in cell_tags(cell):
            cell = {"cell_type": "markdown", "metadata": {}, "source": HIDDEN_NOTE,
                    **({"id": cell["id"]} if "id" in cell else {})}
        if cell["cell_type"] == "code" and not keep_outputs:
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    exercises = chapter_exercises(name)
    _mark_exercises(cells, exercises)
    banner = {"cell_type": "markdown", "metadata": {"tags": ["student-banner"]}, "source": BANNER}
    if nb.get("nbformat_minor", 0) >= 5:  # cell ids exist from nbformat 4.5 on
        banner["id"] = "student-edition-banner"
    metadata = json.loads(json.dumps(nb.get("metadata", {})))
    if exercises:  # the grader reads the chapter from here, whatever the student renames the file to
        metadata.setdefault("ddpm_nb", {})["chapter"] = exercises[0].chapter
    return {**nb, "metadata": metadata, "cells": [banner, *cells]}


def convert_notebooks(notebooks: list[str | Path], out_dir: str | Path, convert) -> list[tuple[str, dict]]:
    """[(file name, convert(notebook, name))] for each notebook, all read and converted before anything
    is written (a bad input is one UserError and leaves nothing half-written); the output folder may
    not be the sources' folder, so the book's own files are never overwritten."""
    out_dir = Path(out_dir)
    paths = [Path(p) for p in notebooks]
    if not paths:
        raise UserError("Give at least one notebook (e.g. notebooks/*.ipynb).")
    converted = []
    for p in paths:
        if p.suffix != ".ipynb" or not p.is_file():
            raise UserError(f"{p} is not a notebook file (.ipynb).")
        if p.resolve().parent == out_dir.resolve():
            raise UserError(f"The output folder {out_dir} holds the source {p.name}: choose another "
                            "folder so the book's solutions are not overwritten.")
        try:
            nb = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{p} is not valid notebook JSON ({e}).") from e
        converted.append((p.name, convert(nb, p.name)))
    return converted


def write_notebooks(converted: list[tuple[str, dict]], out_dir: str | Path) -> list[Path]:
    """Write each (name, notebook) into out_dir, atomically and readable by all (0644)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, nb in converted:
        write_json(out_dir / name, nb, indent=1)
    return [out_dir / name for name, _ in converted]


def make_student_edition(notebooks: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Write the student edition of each notebook into out_dir; returns the written paths.

    Every notebook is converted before anything is written, and each file is written to a
    temporary name and renamed, so a bad input leaves nothing half-written.
    """
    return write_notebooks(convert_notebooks(notebooks, out_dir, student_notebook), out_dir)


# ---------------------------------------------------------------------------------------------- leaks


def _squash(text: str) -> str:
    """Text with HTML markup, entities and all whitespace removed (how code is compared)."""
    text = html.unescape(re.sub(r"<[^>]*>", "", text))
    return re.sub(r"\s+", "", text)


def _body(source: str) -> str:
    """A function's code without its def line(s) and docstring (what would give the answer away)."""
    tree_src = inspect.cleandoc(source) if source[:1].isspace() else source
    lines = tree_src.splitlines()
    try:
        import ast

        node = ast.parse(tree_src).body[0]
    except (SyntaxError, IndexError):
        return tree_src
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
        return tree_src
    first = node.body[0]
    skip_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
        and isinstance(first.value.value, str)
    start = (node.body[1].lineno if skip_doc and len(node.body) > 1 else first.lineno) - 1
    return "\n".join(lines[start:node.end_lineno])


def _answer_sources(nb: dict, exercises: list) -> list[tuple[str, str]]:
    """(what, code) of every function that answers an exercise: the chapter's solution cells and the
    package's own answers (`ANSWERS` of the chapter's checker module: each function, each method)."""
    import importlib

    from .exercises._core import answer_functions

    found = [(f"the solution cell of exercise {e.id}", cell_source(c)) for e, c in
             zip([e for e in exercises if e.checked],
                 [c for c in nb["cells"] if SOLUTION_TAG in cell_tags(c)], strict=False)]
    for e in exercises:
        if not e.checked:
            continue
        own = importlib.import_module(f"ddpm_nb.exercises.{e.module}").ANSWERS.get(e.id, ())
        for obj in own:
            for f in answer_functions(obj):
                try:
                    src = inspect.getsource(f)
                except (OSError, TypeError):  # generated code (a dataclass's __eq__) has no source
                    continue
                found.append((f"{f.__module__}.{f.__qualname__} (answers exercise {e.id})", src))
    return found


def _output_text(output: dict) -> str:
    parts = [output.get("text", "")]
    for value in (output.get("data") or {}).values():
        parts.append("".join(value) if isinstance(value, list) else value if isinstance(value, str) else "")
    parts += output.get("traceback", [])
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def answer_leaks(nb: dict, name: str, *, min_chars: int = 40) -> list[str]:
    """Where the student edition of the executed chapter `nb` (the book's, with outputs) would show the
    code of a function that answers one of its exercises: one line per leak, none when it is clean.
    Code is compared with markup and whitespace removed; bodies shorter than `min_chars` are skipped."""
    exercises = chapter_exercises(name)
    needles = [(what, _squash(_body(src))) for what, src in _answer_sources(nb, exercises)]
    needles = [(what, n) for what, n in needles if len(n) >= min_chars]
    edition = student_notebook(nb, name, keep_outputs=True)
    leaks = []
    for i, cell in enumerate(edition["cells"]):
        text = _squash("\n".join(_output_text(o) for o in cell.get("outputs", [])))
        for what, needle in needles:
            if needle in text:
                leaks.append(f"{name}: cell {i} of the student edition shows the code of {what}")
    return leaks
