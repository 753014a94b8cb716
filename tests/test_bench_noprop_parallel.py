"""`ddpm-nb bench noprop-parallel` at a tiny size: the four rows measured in one run, the committed
checkpoints' test accuracy, the JSON it writes, and bad arguments as one sentence with exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ddpm_nb.bench import bench_noprop_parallel
from ddpm_nb.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # what `make` sets DDPM_NB_DATA to


@pytest.fixture
def book_data(monkeypatch):
    if "DDPM_NB_DATA" not in os.environ:
        if not (SHARED / "fashion-mnist").is_dir():
            pytest.skip(f"the bench reads Fashion-MNIST from DDPM_NB_DATA (unset, and no {SHARED})")
        monkeypatch.setenv("DDPM_NB_DATA", str(SHARED))


def test_a_tiny_run_writes_the_four_rows(book_data, tmp_path):
    out = tmp_path / "parallel.json"
    assert main(["bench", "noprop-parallel", "--steps", "1", "--batch-size", "4", "--test-images", "8",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["method"], r.get("workers", r.get("threads"))) for r in rows] == [
        ("noprop", 1), ("noprop", 2), ("backprop", 1), ("backprop", 2)]
    assert all(r["steps_timed"] == 1 and r["seconds_per_epoch"] > 0 and r["cores_busy"] > 0 for r in rows)
    assert all(("workers" in r) == (r["method"] == "noprop") for r in rows)
    per_epoch = result["steps_per_epoch"]
    assert per_epoch == -(-result["train_images"] // 4) and result["train_images"] > 50000
    assert rows[0]["seconds_per_epoch"] == pytest.approx(rows[0]["seconds_per_step"] * per_epoch)
    assert rows[1]["blocks_per_worker"] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert set(result["test_accuracy"]) == {"noprop", "backprop"}
    assert all(0.0 <= a <= 1.0 for a in result["test_accuracy"].values()) and result["test_images"] == 8
    assert not list(tmp_path.glob("*.tmp*")), "the JSON is written atomically"


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps"),
    (["--batch-size", "1"], "--batch-size"),
    (["--test-images", "0"], "--test-images"),
])
def test_bad_arguments_are_one_sentence_and_exit_2(argv, message, capsys):
    assert main(["bench", "noprop-parallel", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err


def test_bad_keywords_are_one_user_error():
    with pytest.raises(ValueError, match=r"warmup must be at least 1 \(a step before timing\), got 0\."):
        bench_noprop_parallel(warmup=0)
    with pytest.raises(ValueError, match=r"steps \(--steps\) must be at least 1, got 0\."):
        bench_noprop_parallel(steps=0)
