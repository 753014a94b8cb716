"""The student edition of the executed book shows no answer's code (run after the site build).

The outputs are the ones the book's build stored (its jupyter-cache, written by nbval in `make test`);
the cells and their tags are today's. `ddpm_nb.student.answer_leaks` compares them with the chapters'
solutions and the package's own answers (tests/test_answer_leaks.py shows it catching a leak).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ddpm_nb.student import answer_leaks

pytestmark = pytest.mark.site
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"


def _executed() -> dict[str, dict]:
    spec = importlib.util.spec_from_file_location("claims", ROOT / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    return claims.executed(CACHE)


def _merged(stem: str, executed: dict) -> dict:
    """Today's chapter with the stored outputs of its code cells (matched by source)."""
    chapter = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    stored = {"".join(c["source"]) if isinstance(c["source"], list) else c["source"]: c.get("outputs", [])
              for c in executed["cells"] if c["cell_type"] == "code"}
    for cell in chapter["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = stored.get("".join(cell["source"]), [])
    return chapter


def test_no_student_edition_output_shows_an_answer():
    if not CACHE.is_dir():
        pytest.fail("No execution cache in _build/.jupyter_cache: run `make test` (or `make book`) first.")
    executed = _executed()
    stems = [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    missing = [s for s in stems if s not in executed]
    assert not missing, f"the cache has not executed {missing}"
    leaks = [leak for s in stems for leak in answer_leaks(_merged(s, executed[s]), f"{s}.ipynb")]
    assert not leaks, "\n".join(leaks)
    shown = sum(bool(c.get("outputs")) for s in stems for c in executed[s]["cells"]
                if c["cell_type"] == "code")
    assert shown > 100  # the outputs really were read
