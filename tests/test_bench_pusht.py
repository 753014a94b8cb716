"""`ddpm-nb bench pusht-samplers`: rows paired on the same seeds, NFE counted, rows kept as they finish."""

from __future__ import annotations

import json

import pytest

from ddpm_nb.bench import pusht as bp
from ddpm_nb.cli import main


@pytest.fixture
def small(monkeypatch):
    pytest.importorskip("gym_pusht")
    monkeypatch.setattr(bp, "PUSHT_ROWS", [("diffusion", "ddim", 10), ("diffusion", "ddim", 2),
                                          ("diffusion", "dpm_solver", 3)])
    monkeypatch.setattr(bp, "FLOW_ROWS", [("flow", "euler", 1)])


def test_rows_are_paired_counted_and_resumed(small, tmp_path, monkeypatch):
    out = tmp_path / "sweep.json"
    result = bp.bench_pusht_samplers(episodes=2, max_steps=12, out=str(out), progress=False)
    rows = {(r["sampler"], r["nfe"]): r for r in result["rows"]}
    assert [r["nfe"] for r in result["rows"]] == [10, 2, 3, 1]  # as counted, wrapping the network
    # DPM-Solver spends one more call than it has steps (the end of its grid)
    assert rows[("ddim", 2)]["steps"] == 2 and rows[("dpm_solver", 3)]["steps"] == 2
    base = rows[("ddim", 10)]
    assert base["success_minus_ddim10"] == 0.0 and base["success_minus_ddim10_stderr"] == 0.0
    assert all(r["episodes"] == 2 and len(r["successes"]) == 2 and r["plans_per_second"] > 0
               for r in result["rows"])
    assert result["missing"] == [] and rows[("euler", 1)]["policy"] == "flow"  # the committed flow policy
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    # a rerun with the same file measures nothing again
    monkeypatch.setattr(bp, "evaluate_file", lambda *a, **k: pytest.fail("a finished row was re-run"))
    again = bp.bench_pusht_samplers(episodes=2, max_steps=12, out=str(out), progress=False)
    assert again["rows"] == result["rows"]


def test_without_a_flow_checkpoint_its_rows_are_listed_as_missing(small, tmp_path, monkeypatch):
    from ddpm_nb.checkpoints import checkpoint_dir

    (tmp_path / "pusht.pt").symlink_to(checkpoint_dir() / "pusht.pt")  # the diffusion policy only
    monkeypatch.setattr(bp, "checkpoint_dir", lambda: tmp_path)
    monkeypatch.setattr(bp, "PUSHT_ROWS", [("diffusion", "ddim", 1)])
    result = bp.bench_pusht_samplers(episodes=1, max_steps=4, progress=False)
    assert [r["nfe"] for r in result["rows"]] == [1]
    assert [(m["policy"], m["sampler"], m["nfe"]) for m in result["missing"]] == [("flow", "euler", 1)]
    assert "no flow policy checkpoint" in result["missing"][0]["why"]


def test_a_bad_configuration_fails_before_any_episode(small, monkeypatch):
    monkeypatch.setattr(bp, "PUSHT_ROWS", [("diffusion", "ddim", 10), ("diffusion", "dpm_solver", 1)])
    monkeypatch.setattr(bp, "evaluate_file", lambda *a, **k: pytest.fail("an episode ran before the check"))
    with pytest.raises(ValueError, match="exactly 1 network evaluations"):
        bp.bench_pusht_samplers(episodes=2, max_steps=12, progress=False)


def test_the_command_refuses_a_missing_flow_checkpoint(tmp_path, capsys):
    argv = ["bench", "pusht-samplers", "--flow-checkpoint", str(tmp_path / "no.pt"), "--episodes", "1"]
    assert main(argv) == 2
    assert "No flow policy checkpoint" in capsys.readouterr().err
