"""Recipes, checkpoints lookup, quality measures and the bench commands' input checks."""

from __future__ import annotations

import math

import pytest
import torch

from ddpm_nb import quality, recipes
from ddpm_nb.cli import main


def test_every_recipe_builds_a_float32_model_whatever_the_default_dtype():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for name, recipe in recipes.RECIPES.items():
            model = recipes.build(recipe.config)
            assert all(p.dtype == torch.float32 for p in model.parameters()), name
    finally:
        torch.set_default_dtype(old)


def test_unknown_recipe_and_network_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="ddpm-2d"):
        recipes.get_recipe("ddpm-3d")
    with pytest.raises(ValueError, match="MLPDenoiser"):
        recipes.build({"net": "Transformer", "net_config": {}})


def test_missing_checkpoint_says_how_to_get_it(tmp_path, monkeypatch):
    (tmp_path / "MANIFEST.md").write_text("empty\n")
    monkeypatch.setenv("DDPM_NB_CHECKPOINTS", str(tmp_path))
    assert recipes.checkpoint_path("ddpm-2d") == tmp_path / "ddpm-2d.pt"
    with pytest.raises(FileNotFoundError, match="TRAIN = True"):
        recipes.load("ddpm-2d")


def test_load_refuses_a_checkpoint_of_another_model(tmp_path, monkeypatch):
    from ddpm_nb.checkpoints import save_weights

    (tmp_path / "MANIFEST.md").write_text("empty\n")
    monkeypatch.setenv("DDPM_NB_CHECKPOINTS", str(tmp_path))
    other = recipes.get_recipe("fashion-classifier")
    save_weights(tmp_path / "ddpm-2d.pt", recipes.build(other.config), config=other.config)
    with pytest.raises(ValueError, match="does not fit|expected"):
        recipes.load("ddpm-2d")


def test_sliced_wasserstein_of_a_shift_is_the_mean_projected_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    y = x + torch.tensor([0.5, 0.0], dtype=torch.float64)
    d = quality.sliced_wasserstein(x, y, projections=2000, generator=g)
    # W1 of a shift along θ is |0.5 θ_1|; averaged over directions on the circle: 0.5 · 2/π
    assert d == pytest.approx(0.5 * 2 / math.pi, rel=0.03)
    assert quality.sliced_wasserstein(x, x, generator=g) == 0.0
    with pytest.raises(ValueError, match="shape"):
        quality.sliced_wasserstein(x, y[:10])


def test_classifier_report_counts_and_entropy():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):  # class = first pixel index, confidently
            logits = torch.full((x.shape[0], 10), -10.0)
            logits[torch.arange(x.shape[0]), x[:, 0, 0, 0].long()] = 10.0
            return logits

    x = torch.zeros(20, 1, 28, 28)
    x[:, 0, 0, 0] = torch.arange(20) % 10
    r = quality.classifier_report(Fixed(), x)
    assert r["counts"] == [2] * 10
    assert r["class_entropy"] == pytest.approx(math.log(10), abs=1e-9)
    assert r["confidence"] > 0.999
    assert quality.accuracy(Fixed(), x, torch.arange(20) % 10) == 1.0


def test_bench_rejects_bad_arguments(capsys):
    assert main(["bench", "elbo", "--sigma2", "small"]) == 2
    assert "'beta', 'beta_tilde'" in capsys.readouterr().err
    assert main(["bench", "elbo", "--points", "10"]) == 2
    assert "2000" in capsys.readouterr().err
    assert main(["bench", "nothing"]) == 2
    assert "'elbo', 'images'" in capsys.readouterr().err


def test_steps_for_nfe_spends_exactly_the_budget():
    from ddpm_nb.samplers import steps_for_nfe

    assert steps_for_nfe("ddim", 10) == 10
    assert steps_for_nfe("dpm_solver", 10) == 9 and steps_for_nfe("euler", 20) == 19
    assert steps_for_nfe("heun", 21) == 10 and steps_for_nfe("heun", 20) == 9
    assert steps_for_nfe("heun", 2) is None
    with pytest.raises(ValueError, match="at least 1"):
        steps_for_nfe("ddim", 0)


def test_bench_samplers_writes_its_json(tmp_path):
    import json

    out = tmp_path / "samplers.json"
    assert main(["bench", "samplers", "--samples", "200", "--seeds", "2", "--nfe", "5,11",
                 "--samplers", "ddim,dpm_solver,heun", "--points", "30", "--rtol", "1e-4",
                 "--floor-pairs", "3", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert {"swd_floor", "swd_floor_std", "rows", "nll", "checkpoint", "checkpoint_sha256"} <= set(r)
    nfe = {(row["sampler"], row["nfe"]) for row in r["rows"]}
    assert nfe == {("ddim", 5), ("ddim", 11), ("dpm_solver", 5), ("dpm_solver", 11),
                   ("heun", 5), ("heun", 11)}  # counted evaluations, equal to the budget here
    assert all(row["swd"] > 0 and row["seconds"] > 0 for row in r["rows"])
    assert r["floor_pairs"] == 3 and all(len(row["swd_seeds"]) == 2 for row in r["rows"])
    assert main(["bench", "samplers", "--floor-pairs", "1"]) == 2
    assert {"ode", "true", "gap", "gap_stderr", "points", "rtol"} <= set(r["nll"])
    assert main(["bench", "samplers", "--samplers", "magic"]) == 2


def test_bench_runs_ddpm_once_at_T_whatever_the_nfe_list():
    from ddpm_nb.bench import paired_with_ddpm, sampler_rows
    from ddpm_nb.nets import MLPDenoiser
    from ddpm_nb.samplers import Denoiser
    from ddpm_nb.schedules import beta_schedule

    base = Denoiser(MLPDenoiser(width=16, depth=1, emb_dim=8), beta_schedule("linear", 20))
    rows = sampler_rows(base, ["ddpm", "ddim"], [5], n=100, seeds=2, progress=False)
    assert [(r["sampler"], r["nfe"]) for r in rows] == [("ddpm", 20), ("ddim", 5)]
    paired_with_ddpm(rows)
    ddpm, ddim = rows
    assert ddpm["swd_minus_ddpm"] == 0.0
    want = sum(a - b for a, b in zip(ddim["swd_seeds"], ddpm["swd_seeds"], strict=True)) / 2
    assert ddim["swd_minus_ddpm"] == pytest.approx(want)
