"""The student edition: every chapter with its solution cells removed.

Cells tagged ``solution`` are dropped; ``exercise`` cells (stubs that raise NotImplementedError)
and the checker cells stay, so a student runs a checker and reads what is still wrong.
Outputs are cleared. The book itself keeps the solutions, collapsed on the site.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError
from .files import write_json

__all__ = ["SOLUTION_TAG", "EXERCISE_TAG", "student_notebook", "make_student_edition"]

SOLUTION_TAG, EXERCISE_TAG = "solution", "exercise"
BANNER = ("**Student edition.** The solution cells of this chapter have been removed. Fill in each "
          "cell marked *Exercise*, then run the checker cell below it: it tells you what is still "
          "wrong.")


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def student_notebook(nb: dict, name: str = "notebook") -> dict:
    """Return a copy of notebook `nb` (nbformat 4 JSON) without solutions and outputs."""
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or "cells" not in nb:
        raise UserError(f"{name} is not a Jupyter notebook in nbformat 4.")
    n_ex = sum(EXERCISE_TAG in _tags(c) for c in nb["cells"])
    n_sol = sum(SOLUTION_TAG in _tags(c) for c in nb["cells"])
    if n_sol != n_ex:
        raise UserError(f"{name} has {n_ex} '{EXERCISE_TAG}' cells but {n_sol} '{SOLUTION_TAG}' "
                        "cells: give each solution its exercise stub so students have a place to answer.")
    cells = []
    for cell in nb["cells"]:
        if SOLUTION_TAG in _tags(cell):
            continue
        cell = json.loads(json.dumps(cell))
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    banner = {"cell_type": "markdown", "metadata": {"tags": ["student-banner"]}, "source": BANNER}
    if nb.get("nbformat_minor", 0) >= 5:  # cell ids exist from nbformat 4.5 on
        banner["id"] = "student-edition-banner"
    return {**nb, "cells": [banner, *cells]}


def make_student_edition(notebooks: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Write the student edition of each notebook into out_dir; returns the written paths.

    Every notebook is converted before anything is written, and each file is written to a
    temporary name and renamed, so a bad input leaves nothing half-written.
    """
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
        converted.append((p.name, student_notebook(nb, str(p))))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, nb in converted:
        write_json(out_dir / name, nb, indent=1)  # atomic, readable by all (0644)
        written.append(out_dir / name)
    return written
