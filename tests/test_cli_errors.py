"""The command line's error path: each bad input is one sentence on stderr and exit status 2, with no
traceback, before any work starts, and nothing half-written is left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_cache import refused_url

from ddpm_nb.cli import main
from ddpm_nb.data import fashion_mnist as fm

ROOT = Path(__file__).resolve().parents[1]


def said(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture
def committed_checkpoint():
    path = ROOT / "checkpoints" / "pusht.pt"
    if not path.is_file():
        pytest.skip("the committed checkpoints are not here")
    return path


@pytest.mark.parametrize("argv, words", [
    (["train", "ddpm-2d", "--threads", "0"], "--threads must be at least 1, got 0"),
    (["eval", "pusht", "--seed", "-5"], "--seed must be at least 0, got -5"),
    (["eval", "pusht", "--episodes", "many"], "--episodes must be a whole number"),
    (["bench", "samplers", "--nfe", "5,x"], "give whole numbers separated by commas"),
    (["bench", "samplers", "--samplers", "ddim,magic"], "unknown sampler magic"),
    (["train", "no-such-model"], "invalid choice: 'no-such-model'"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, words, capsys):
    assert main(argv) == 2
    assert words in said(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(capsys, tmp_path):
    assert main(["train", "ddpm-2d", "--quick", "--device", "cuda", "--out", str(tmp_path / "m.pt")]) == 2
    assert "no CUDA GPU" in said(capsys) and not list(tmp_path.iterdir())


def test_a_missing_checkpoint(capsys, tmp_path):
    assert main(["eval", "pusht", "--checkpoint", str(tmp_path / "none.pt"), "--episodes", "1"]) == 2
    assert "No checkpoint at" in said(capsys)
    assert main(["bench", "elbo", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "No checkpoint at" in said(capsys)


def test_a_missing_dataset_says_where_it_looked(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_NB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("DDPM_NB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fm, "URLS", (refused_url(),))
    assert main(["train", "fashion-classifier", "--quick", "--out", str(tmp_path / "c.pt")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Fashion-MNIST is not available on this machine" in err
    assert str(tmp_path / "empty") in err and not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("kind", ["a folder", "under a file", "immutable folder"])
def test_an_unwritable_output_fails_before_any_work(kind, capsys, tmp_path):
    if kind == "a folder":
        target = tmp_path / "out"
        target.mkdir()
    elif kind == "under a file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "out.json"
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            if os.geteuid() == 0:
                pytest.skip("cannot make a folder immutable here (and root ignores chmod)")
            folder.chmod(0o555)
        target = folder / "out.json"
    try:
        start = time.perf_counter()
        # the 2-D sampler bake-off takes many minutes: a refusal in seconds means no work was started
        assert main(["bench", "samplers", "--json", str(target)]) == 2
        assert time.perf_counter() - start < 5
        assert "--json" in said(capsys)
        main(["eval", "pusht", "--episodes", "50", "--json", str(target)])
        assert "--json" in said(capsys) and time.perf_counter() - start < 10
        main(["train", "pusht", "--out", str(target)])
        assert "checkpoint" in said(capsys) and time.perf_counter() - start < 15
    finally:
        if kind == "immutable folder":
            subprocess.run(["chattr", "-i", str(tmp_path / "locked")], capture_output=True)
            (tmp_path / "locked").chmod(0o755)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".probe"))]
    assert not leftovers, leftovers


def test_the_wrong_kind_of_file_as_a_checkpoint_is_named_for_what_it_is(capsys, tmp_path,
                                                                        committed_checkpoint):
    as_json = tmp_path / "pusht.eval.json"
    as_json.write_text('{"episodes": 50}')
    assert main(["eval", "pusht", "--checkpoint", str(as_json), "--episodes", "1"]) == 2
    assert "is a JSON file, not a checkpoint" in said(capsys)
    state = tmp_path / "pusht.state.pt"
    torch.save({"format": "ddpm_nb.train_state/2", "step": 3}, state)
    assert main(["eval", "pusht", "--checkpoint", str(state), "--episodes", "1"]) == 2
    message = said(capsys)
    assert "is a training state" in message and "delete" not in message and "retrain" not in message
    cut = tmp_path / "pusht.pt"
    cut.write_bytes(committed_checkpoint.read_bytes()[:4000])
    assert main(["eval", "pusht", "--checkpoint", str(cut), "--episodes", "1"]) == 2
    message = said(capsys)
    assert "corrupt or truncated" in message and "git checkout -- checkpoints/pusht.pt" in message
    assert "ddpm-nb train pusht" in message


def test_the_console_script_gives_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("ddpm-nb")
    if not exe.is_file():
        pytest.skip("the ddpm-nb console script is not installed beside this Python")
    out = subprocess.run([str(exe), "eval", "pusht", "--checkpoint", str(tmp_path / "x.pt")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("ddpm-nb eval: No checkpoint at")


def test_python_dash_m_runs_the_same_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ddpm_nb", "eval", "pusht", "--checkpoint",
                          str(tmp_path / "x.pt")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("ddpm-nb eval: No checkpoint at")
