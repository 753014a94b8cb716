"""nb.glue and the chapters' run-time statements (ddpm_nb.prose)."""

from __future__ import annotations

import json

import pytest
import torch

from ddpm_nb import prose
from ddpm_nb.errors import UserError


def _shown(monkeypatch, where) -> list:
    got = []
    monkeypatch.setattr(where, lambda *a, **k: got.append((a, k)))
    return got


def test_glue_writes_what_myst_nb_glue_writes_and_refuses_the_rest(monkeypatch):
    import IPython
    import myst_nb.ext.glue

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # as in a kernel
    ours = _shown(monkeypatch, "ddpm_nb.prose._display")
    prose.glue("score", torch.tensor(0.25))
    prose.glue("label", "ten")
    theirs = _shown(monkeypatch, "myst_nb.ext.glue.ipy_display")
    myst_nb.ext.glue.glue("score", 0.25, display=False)
    myst_nb.ext.glue.glue("label", "ten", display=False)
    assert ours == theirs and len(ours) == 2
    assert ours[0][0][0] == {"application/papermill.record/text/plain": "0.25"}
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # a plain Python process: nothing shown
    prose.glue("score", 0.5)
    assert len(ours) == 2
    with pytest.raises(UserError, match="number or a string"):
        prose.glue("x", [1, 2])
    with pytest.raises(UserError, match="glue name"):
        prose.glue("a b", 1)


@pytest.mark.parametrize("seconds, words",
                         [(0.3, "1 s"), (42.4, "42 s"), (95, "2 min"), (3700, "1 h 02 min")])
def test_duration_in_words(seconds, words):
    assert prose.duration(seconds) == words


def test_glue_runtime_reads_the_record_and_says_what_was_not_measured(tmp_path, monkeypatch):
    record = {"cpu": "AMD EPYC, 2 cores", "chapters": {"03_ddpm": {"quick_s": 41.0}}}
    (tmp_path / "runtimes.json").write_text(json.dumps(record))
    (tmp_path / "MANIFEST.md").write_text("# checkpoints\n")
    monkeypatch.setenv("DDPM_NB_CHECKPOINTS", str(tmp_path))
    words = prose.glue_runtime("03_ddpm")
    assert words["runtime_quick"] == "41 s in quick mode"
    assert words["runtime_full"] == "not yet measured in full mode"
    assert words["runtime_gpu"] == "not measured on a GPU"
    with pytest.raises(UserError, match="no chapter '09_x'"):
        prose.glue_runtime("09_x")


def test_every_chapter_has_a_committed_run_time():
    from conftest import ROOT

    record = json.loads((ROOT / "checkpoints" / "runtimes.json").read_text())
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(record["chapters"]) == chapters
    assert all(record["chapters"][c].get("quick_s") for c in chapters), "a chapter without its quick time"
