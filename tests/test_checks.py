"""Tests for ddpm_nb.checks (visible claim checks) and ddpm_nb.config (setup, device, quick mode)."""

import random
import sys
import types

import matplotlib as mpl
import numpy as np
import pytest
import torch
from conftest import ROOT

import ddpm_nb as nb
from ddpm_nb import checks, config
from ddpm_nb.errors import UserError

# ---------------------------------------------------------------- check_close


def test_check_close_passes_and_prints_one_line_with_the_max_error(capsys):
    assert checks.check_close("sum", torch.tensor([1.0, 2.0]), [1.0, 2.0 + 4e-7], tol=1e-6) is None
    assert capsys.readouterr().out == "✓ sum: max error 4e-07 (tolerance 1e-06)\n"


def test_check_close_fails_with_location_and_values():
    with pytest.raises(checks.ClaimFailed, match="mean: FAILED, max error 0.5") as info:
        checks.check_close("mean", np.array([[0.0, 1.0], [2.0, 3.5]]), np.array([[0.0, 1.0], [2.0, 3.0]]),
                           tol=0.1)
    assert "got 3.5, want 3, allowed 0.1" in str(info.value)
    assert isinstance(info.value, AssertionError)  # so a failed claim fails a notebook cell like assert


def test_check_close_failure_names_the_index_plainly():
    with pytest.raises(checks.ClaimFailed) as info:
        checks.check_close("mean", np.array([[0.0, 1.0], [2.0, 3.5]]), np.array([[0.0, 1.0], [2.0, 3.0]]),
                           tol=0.1)
    assert "at (1, 1):" in str(info.value)


def test_check_close_relative_tolerance(capsys):
    checks.check_close("big", 1000.5, 1000.0, tol=0.0, rtol=1e-3)
    assert capsys.readouterr().out == "✓ big: max error 0.5 (tolerance 0 + 0.001·|want|)\n"
    with pytest.raises(checks.ClaimFailed, match="allowed 1"):
        checks.check_close("big", 1002.0, 1000.0, tol=0.0, rtol=1e-3)


def test_check_close_tolerance_boundary_is_inclusive(capsys):
    checks.check_close("edge", 1.5, 1.0, tol=0.5)
    assert capsys.readouterr().out.startswith("✓ edge: max error 0.5")
    with pytest.raises(checks.ClaimFailed):
        checks.check_close("edge", 1.5001, 1.0, tol=0.5)


def test_check_close_refuses_broadcasting():
    with pytest.raises(checks.ClaimFailed, match="shapes differ, got \\(3,\\) but want \\(\\)"):
        checks.check_close("bcast", torch.ones(3), 1.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_check_close_refuses_non_finite(bad):
    with pytest.raises(checks.ClaimFailed, match="not finite"):
        checks.check_close("nan", torch.tensor([1.0, bad]), torch.tensor([1.0, 1.0]), tol=1e9)


@pytest.mark.parametrize("tol, rtol", [(-1e-6, 0.0), (0.0, -0.1)])
def test_check_close_rejects_negative_tolerance(tol, rtol):
    with pytest.raises(ValueError, match="tol and rtol must be non-negative"):
        checks.check_close("x", 1.0, 1.0, tol=tol, rtol=rtol)


def test_as_array_is_float64_copy():
    t = torch.tensor([1, 2], dtype=torch.int32)
    a = checks.as_array(t)
    assert a.dtype == np.float64 and a.tolist() == [1.0, 2.0]
    a[0] = 99
    assert t[0].item() == 1
    assert checks.as_array(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- check_true, check_shape

def test_check_true(capsys):
    checks.check_true("positive", True, "all > 0")
    assert capsys.readouterr().out == "✓ positive: all > 0\n"
    with pytest.raises(checks.ClaimFailed, match="^positive: FAILED. some <= 0$"):
        checks.check_true("positive", False, "some <= 0")
    with pytest.raises(checks.ClaimFailed, match="^empty: FAILED.$"):
        checks.check_true("empty", torch.tensor(False))


def test_check_shape_accepts_wildcards():
    checks.check_shape("x", torch.zeros(4, 2), (None, 2))
    checks.check_shape("x", torch.zeros(4, 2), (4, 2))


@pytest.mark.parametrize("x, shape, match", [
    (torch.zeros(4, 3), (None, 2), "x must have shape \\(\\*, 2\\), got \\(4, 3\\)"),
    (torch.zeros(4), (None, 2), "x must have shape \\(\\*, 2\\), got \\(4,\\)"),
    (torch.zeros(4, 2, 1), (None, 2), "got \\(4, 2, 1\\)"),
    (np.zeros((4, 2)), (None, 2), "x must be a torch.Tensor, got ndarray"),
])
def test_check_shape_rejects(x, shape, match):
    with pytest.raises(ValueError, match=match):
        checks.check_shape("x", x, shape)


def test_public_names_are_the_same_objects():
    assert nb.check_close is checks.check_close and nb.ClaimFailed is checks.ClaimFailed
    assert nb.setup is config.setup


# ---------------------------------------------------------------- is_quick

@pytest.mark.parametrize("value, want", [
    ("1", True), ("true", True), (" YES ", True), ("on", True),
    ("0", False), ("", False), ("false", False), ("No", False), ("off", False),
])
def test_is_quick_reads_env(monkeypatch, value, want):
    monkeypatch.setenv("DDPM_NB_QUICK", value)
    assert config.is_quick() is want


def test_is_quick_defaults_to_full(monkeypatch):
    monkeypatch.delenv("DDPM_NB_QUICK", raising=False)
    assert config.is_quick() is False


def test_is_quick_rejects_unknown_value(monkeypatch):
    monkeypatch.setenv("DDPM_NB_QUICK", "maybe")
    with pytest.raises(ValueError, match="DDPM_NB_QUICK='maybe' is not understood"):
        config.is_quick()


# ---------------------------------------------------------------- pick_device, in_colab

@pytest.mark.parametrize("name", ["cpu", "cuda", "mps"])
def test_pick_device_honours_preference(name):
    assert config.pick_device(name) == torch.device(name)


def test_pick_device_rejects_unknown():
    with pytest.raises(ValueError, match="Unknown device 'tpu': use 'cuda', 'mps' or 'cpu'"):
        config.pick_device("tpu")


def test_pick_device_order_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert config.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert config.pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.pick_device() == torch.device("cuda")


def test_in_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert config.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert config.in_colab() is True


# ---------------------------------------------------------------- setup

@pytest.fixture
def quiet_style():
    """setup() changes matplotlib's rcParams: restore them after the test."""
    with mpl.rc_context():
        yield


def test_setup_seeds_everything_and_reports(monkeypatch, capsys, quiet_style):
    monkeypatch.setenv("DDPM_NB_QUICK", "1")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    cfg = config.setup(seed=123, device="cpu")
    assert cfg == config.Setup(seed=123, device=torch.device("cpu"), quick=True, colab=False)
    assert capsys.readouterr().out == "ddpm_nb: seed 123, device cpu, quick (DDPM_NB_QUICK=1) mode, local\n"
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    config.setup(seed=123, device="cpu", verbose=False)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
    assert capsys.readouterr().out == ""
    assert mpl.rcParams["axes.spines.top"] is False  # the book's style was applied


def test_setup_full_mode_string(monkeypatch, quiet_style):
    monkeypatch.setenv("DDPM_NB_QUICK", "0")
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    cfg = config.setup(seed=0, device="cpu", verbose=False)
    assert str(cfg) == "ddpm_nb: seed 0, device cpu, full mode, Colab"
    assert cfg.size(quick=10, full=1000) == 1000


def test_setup_size_in_quick_mode(monkeypatch, quiet_style):
    monkeypatch.setenv("DDPM_NB_QUICK", "yes")
    assert config.setup(seed=1, device="cpu", verbose=False).size(quick=10, full=1000) == 10


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_setup_rejects_bad_seed(seed, quiet_style):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        config.setup(seed=seed, verbose=False)


def test_setup_rejects_unknown_device(quiet_style):
    with pytest.raises(ValueError, match="Unknown device"):
        config.setup(device="gpu", verbose=False)


def test_setup_is_frozen():
    cfg = config.Setup(seed=0, device=torch.device("cpu"), quick=False, colab=False)
    with pytest.raises(AttributeError):
        cfg.seed = 1


# ---------------------------------------------------------------- check_estimate and main claims
def test_check_estimate_not_refuted_passes_within_z_standard_errors(capsys):
    assert checks.check_estimate("gap", -0.02, 0.01, above=0.0, resolution=0.05) is True
    assert capsys.readouterr().out.startswith("✓ gap: -0.02 ± 0.01 >= 0 (not refuted")


def test_check_estimate_refuted_fails():
    with pytest.raises(checks.ClaimFailed, match="the data refute it"):
        checks.check_estimate("gap", -0.04, 0.01, above=0.0, resolution=0.05)


def test_check_estimate_shown_needs_z_standard_errors_on_the_right_side():
    assert checks.check_estimate("diff", 0.04, 0.01, above=0.0, resolution=0.05, shown=True)
    with pytest.raises(checks.ClaimFailed, match="do not show it"):
        checks.check_estimate("diff", 0.02, 0.01, above=0.0, resolution=0.05, shown=True)


def test_check_estimate_two_sided():
    assert checks.check_estimate("x", 0.5, 0.01, above=0.4, below=0.6, resolution=0.05)
    with pytest.raises(checks.ClaimFailed, match="<= 0.45"):
        checks.check_estimate("x", 0.5, 0.01, above=0.4, below=0.45, resolution=0.05)


def test_check_estimate_without_power_says_so_and_counts(capsys):
    assert checks.check_estimate("gap", 5.0, 1.0, above=0.0, resolution=0.1) is False
    out = capsys.readouterr().out
    assert out.startswith("– gap: not checked at this size") and "✓" not in out


def test_a_main_claim_without_power_fails():
    with pytest.raises(checks.ClaimFailed, match="main claim: gap: FAILED, no power"):
        checks.check_estimate("gap", 5.0, 1.0, above=0.0, resolution=0.1, main=True)


def test_check_estimate_refuses_bad_arguments():
    with pytest.raises(UserError, match="needs a bound"):
        checks.check_estimate("x", 1.0, 0.1, resolution=1.0)
    with pytest.raises(checks.ClaimFailed, match="not a finite"):
        checks.check_estimate("x", float("nan"), 0.1, above=0, resolution=1.0)


def test_main_claims_are_labelled_in_every_check(capsys):
    checks.check_close("a", 1.0, 1.0, main=True)
    checks.check_true("b", True, main=True)
    checks.check_estimate("c", 1.0, 0.1, above=0, resolution=1.0, main=True)
    lines = capsys.readouterr().out.splitlines()
    assert all(ln.startswith("✓ main claim: ") for ln in lines) and len(lines) == 3
    with pytest.raises(checks.ClaimFailed, match="^main claim: a: FAILED"):
        checks.check_close("a", 1.0, 2.0, main=True)


def test_the_claims_tool_counts_each_kind(tmp_path, capsys):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("claims", ROOT / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    text = "✓ main claim: a\n✓ main claim: b\n✓ c\n– d: not checked at this size (x)\n"
    nb = {"cells": [{"outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}]}
    (tmp_path / "01_x.ipynb").write_text(json.dumps(nb))
    assert claims.count(nb) == {"checked": 3, "main": 2, "unchecked": 1}
    assert claims.main([str(tmp_path)]) == 1  # two main claims are fewer than three
    assert "01_x" in capsys.readouterr().out
