"""Break the formulas behind each chapter's main claims and watch those claims fail (quick mode).

For each chapter, tests/breaks/NN_*.py holds PATCH, code run in the kernel right after `nb.setup()`
that breaks the package's formulas behind the chapter's main claims (each a check with main=True,
one per cell). The chapter runs, up to its last main claim, with errors allowed; every cell with a
main claim must then end in ClaimFailed naming that main claim. A claim that still passes with its
formula broken could not fail: it proves nothing.

A break file may also name, in SKIP, cells the run leaves out (each by the start of its first line):
costly cells whose results no main claim reads (a benchmark table, its figure). Each entry must match
exactly one code cell that checks no main claim; a skipped cell that a main claim did need leaves that
claim's cell raising NameError instead of ClaimFailed, which fails the test.
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


def _break(chapter):
    path = BREAKS / f"{chapter.stem[:2]}.py"
    spec = importlib.util.spec_from_file_location(f"breaks_{chapter.stem[:2]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _patch(chapter) -> str:
    return _break(chapter).PATCH


def skipped_cells(chapter, nb) -> list[int]:
    """Indices of the code cells the break file's SKIP names (each entry matching exactly one cell that
    checks no main claim)."""
    skip = getattr(_break(chapter), "SKIP", ())
    mains = set(main_claim_cells(nb))
    out = []
    for start in skip:
        hits = [i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and _src(c).lstrip().startswith(start)]
        assert len(hits) == 1, f"{chapter.name}: SKIP entry {start!r} matches {len(hits)} code cells, not 1"
        assert hits[0] not in mains, f"{chapter.name}: SKIP entry {start!r} is a main claim's cell"
        out += hits
    return out


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
    skip = set(skipped_cells(chapter, nb))
    keep = [i for i in range(mains[-1] + 1) if i not in skip]  # the chapter's indices of the cells run
    cells = [nb.cells[i] for i in keep]
    at = keep.index(setup) + 1
    nb.cells = cells[:at] + [nbformat.v4.new_code_cell(_patch(chapter))] + cells[at:]
    keep = keep[:at] + [None] + keep[at:]
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
            still.append(f"cell {keep[i]} ({first.strip()[:70]}): {how}")
    assert not still, f"{chapter.name}: main claims that did not fail with their formulas broken: {still}"
