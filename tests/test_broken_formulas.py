"""Break the formulas behind each chapter's main claims and watch those claims fail (quick mode).

For each chapter, tests/breaks/NN_*.py holds PATCH, code run in the kernel right after `nb.setup()`
that breaks the package's formulas behind the chapter's main claims (each a check with main=True,
one per cell). The chapter runs, up to its last main claim, with errors allowed; every cell with a
main claim must then end in ClaimFailed naming that main claim. A claim that still passes with its
formula broken could not fail: it proves nothing.
"""

from __future__ import annotations

import copy
import importlib.util

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BREAKS = ROOT / "tests" / "breaks"


def _patch(chapter) -> str:
    path = BREAKS / f"{chapter.stem[:2]}.py"
    spec = importlib.util.spec_from_file_location(f"breaks_{chapter.stem[:2]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PATCH


def _src(cell) -> str:
    return "".join(cell["source"])


def main_claim_cells(nb) -> list[int]:
    """Indices of the code cells that check a main claim (`main=True`)."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "main=True" in _src(c)]


def _failure(cell) -> str | None:
    """The ClaimFailed message a cell ended with, if it did."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error" and out.get("ename") == "ClaimFailed":
            return out.get("evalue", "")
    return None


def test_every_chapter_has_a_break_file():
    missing = [c.name for c in CHAPTERS if not (BREAKS / f"{c.stem[:2]}.py").is_file()]
    assert not missing, f"chapters without tests/breaks/NN.py: {missing}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_breaking_the_formulas_fails_every_main_claim(chapter, monkeypatch):
    monkeypatch.setenv("DDPM_NB_QUICK", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = nbformat.read(chapter, as_version=4)
    mains = main_claim_cells(nb)
    assert len(mains) >= 3, f"{chapter.name}: fewer than three cells check a main claim (main=True)"
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "nb.setup(" in _src(c))
    nb.cells = nb.cells[: mains[-1] + 1]
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(_patch(chapter)))
    run = nbformat.from_dict(copy.deepcopy(nb))
    NotebookClient(run, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(chapter.parent)}}).execute()
    still = []
    for i in main_claim_cells(run):
        msg = _failure(run.cells[i])
        if msg is None or "main claim:" not in msg:
            first = next((ln for ln in _src(run.cells[i]).splitlines() if "main=True" in ln), "")
            errors = [o.get("ename") for o in run.cells[i].get("outputs", [])
                      if o.get("output_type") == "error"]
            how = f"raised {errors}" if errors else "passed"
            still.append(f"cell {i - 1} ({first.strip()[:70]}): {how}")
    assert not still, f"{chapter.name}: main claims that did not fail with their formulas broken: {still}"
