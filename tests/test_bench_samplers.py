"""`ddpm-nb bench samplers` fails fast and keeps what it measured: every configuration is checked before
the first sample (an impossible one is skipped with its reason), finished rows are written at once, and
a rerun reuses them."""

from __future__ import annotations

import json

import pytest

from ddpm_nb.bench import samplers as bench

SMALL = {"samplers": ["ddim", "dpm_solver"], "nfe": [3, 1000], "samples": 200, "seeds": 2, "floor_pairs": 2,
         "points": 50, "rtol": 1e-3, "progress": False}


def test_an_impossible_configuration_is_skipped_before_any_sample(tmp_path, monkeypatch):
    calls = []
    real = bench.get_sampler

    def spy(name):
        calls.append(name)
        return real(name)

    monkeypatch.setattr(bench, "get_sampler", spy)
    out = bench.bench_samplers(**SMALL, out=str(tmp_path / "s.json"))
    skipped = {(s["sampler"], s["nfe"]): s["why"] for s in out["skipped"]}
    assert ("dpm_solver", 1000) in skipped and "too many" in skipped[("dpm_solver", 1000)]
    assert [(r["sampler"], r["nfe"]) for r in out["rows"]] == [("ddim", 3), ("ddim", 1000), ("dpm_solver", 3)]
    assert out["complete"] is True


def test_rows_are_kept_as_they_finish_and_reused(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    real = bench.get_sampler
    runs = []

    def interrupted(name):
        fn = real(name)

        def run(*a, **k):
            runs.append(name)
            if len(runs) > 2:  # the second row's first repetition: stop as Ctrl-C would
                raise KeyboardInterrupt
            return fn(*a, **k)

        return run

    monkeypatch.setattr(bench, "get_sampler", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.bench_samplers(**{**SMALL, "nfe": [3, 5]}, out=str(path))
    kept = json.loads(path.read_text())
    assert kept["complete"] is False and [(r["sampler"], r["nfe"]) for r in kept["rows"]] == [("ddim", 3)]
    runs.clear()
    monkeypatch.setattr(bench, "get_sampler", real)
    done = bench.bench_samplers(**{**SMALL, "nfe": [3, 5]}, out=str(path))
    assert done["rows"][0]["swd_seeds"] == kept["rows"][0]["swd_seeds"]  # reused, not rerun
    assert [(r["sampler"], r["nfe"]) for r in done["rows"]] == [("ddim", 3), ("ddim", 5), ("dpm_solver", 3),
                                                                 ("dpm_solver", 5)]


def test_a_file_that_is_not_a_bench_result_is_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("[1, 2]")
    with pytest.raises(bench.UserError, match="not a result this bench wrote"):
        bench.bench_samplers(**SMALL, out=str(path))
    assert path.read_text() == "[1, 2]"
