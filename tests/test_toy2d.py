"""Tests for ddpm_nb.data.toy2d: the 8-Gaussian mixture and its exact density, swiss roll, two moons."""

import math

import pytest
import torch

from ddpm_nb.data import TOY2D, mixture_log_prob, mixture_params, sample_toy2d

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- mixture_params / mixture_log_prob

def test_mixture_params_centres_on_circle():
    centres, std = mixture_params()
    assert centres.shape == (8, 2) and std == 0.1
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 2.0, dtype=F64))
    torch.testing.assert_close(centres[0], torch.tensor([2.0, 0.0], dtype=F64))
    torch.testing.assert_close(centres[2], torch.tensor([0.0, 2.0], dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(centres[1], torch.tensor([math.sqrt(2), math.sqrt(2)], dtype=F64))


def test_mixture_log_prob_integrates_to_one():
    h = 0.02
    u = torch.arange(-3.0, 3.0, h, dtype=F64) + h / 2
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    mass = mixture_log_prob(grid).exp().sum().item() * h * h
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_mixture_log_prob_matches_direct_sum():
    centres, std = mixture_params()
    x = torch.tensor([[2.0, 0.0], [0.0, 0.0], [1.5, 1.3], [2.05, -0.1]], dtype=F64)
    direct = []
    for p in x.tolist():
        dens = sum(math.exp(-((p[0] - cx) ** 2 + (p[1] - cy) ** 2) / (2 * std**2)) / (2 * math.pi * std**2)
                   for cx, cy in centres.tolist()) / 8
        direct.append(math.log(dens))
    got = mixture_log_prob(x)
    assert got.shape == (4,)
    assert got.tolist() == pytest.approx(direct, rel=1e-10)
    # at a centre the other modes are > 15 std away: log p = -log 8 - log(2π σ²)
    assert got[0].item() == pytest.approx(-math.log(8) - math.log(2 * math.pi * 0.01), rel=1e-12)
    # at the origin all 8 modes are 2 away: log p = -4/(2σ²) - log(2π σ²)
    assert got[1].item() == pytest.approx(-200.0 - math.log(2 * math.pi * 0.01), rel=1e-12)


def test_mixture_log_prob_is_finite_far_away_and_keeps_dtype():
    got = mixture_log_prob(torch.tensor([[40.0, -30.0]]))
    assert got.dtype == torch.float32
    assert torch.isfinite(got).all() and got.item() < -1e4


def test_mixture_log_prob_other_mixture():
    x = torch.tensor([[1.0, 0.0]], dtype=F64)
    # one mode at (1, 0) with std 0.5: log N(0; 0, 0.25 I) = -log(2π·0.25)
    got = mixture_log_prob(x, n_modes=1, radius=1.0, std=0.5)
    assert got.item() == pytest.approx(-math.log(2 * math.pi * 0.25), rel=1e-12)


@pytest.mark.parametrize("x", [torch.zeros(5, 3), torch.zeros(2), torch.zeros(2, 2, 2)])
def test_mixture_log_prob_rejects_bad_shape(x):
    with pytest.raises(ValueError, match="x must have shape \\(\\*, 2\\)"):
        mixture_log_prob(x)


# ---------------------------------------------------------------- sample_toy2d

@pytest.mark.parametrize("name", TOY2D)
def test_sample_shape_dtype_and_reproducible(name):
    a = sample_toy2d(name, 64, generator=gen(5))
    b = sample_toy2d(name, 64, generator=gen(5))
    c = sample_toy2d(name, 64, generator=gen(6))
    assert a.shape == (64, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sample_toy2d(name, 3, generator=gen(), dtype=F64).dtype == F64


@pytest.mark.parametrize("name, want", [
    ("8gaussians", [[-1.9635661810, 0.0134396329], [1.4306351869, -1.3836374603],
                    [-1.3932154704, -1.3236509494]]),
    ("swissroll", [[0.8981966107, 2.5926022457], [0.8770993134, -2.1682210846],
                   [-1.7558088992, 0.7816985165]]),
    ("moons", [[0.7590070697, -0.0988824498], [-0.7278916938, 0.0585203021],
               [0.5060867114, 0.4175668230]]),
])
def test_sample_pinned_values(name, want):
    got = sample_toy2d(name, 3, generator=gen(0), dtype=F64)
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=0, atol=1e-9)


def test_8gaussians_samples_sit_on_the_modes():
    x = sample_toy2d("8gaussians", 4000, generator=gen(1), dtype=F64)
    centres, std = mixture_params()
    d = torch.cdist(x, centres)
    nearest = d.argmin(1)
    # within 6 std of a centre, every mode used about 1/8 of the time
    assert d.min(1).values.max().item() < 6 * std
    counts = torch.bincount(nearest, minlength=8).double()
    se = math.sqrt(4000 * (1 / 8) * (7 / 8))
    assert ((counts - 500).abs() < 5 * se).all()
    # the per-mode spread is std in each coordinate (radial and tangential alike)
    resid = x - centres[nearest]
    assert resid.std(0).tolist() == pytest.approx([0.1, 0.1], abs=0.005)


def test_8gaussians_samples_have_high_density_under_the_mixture():
    x = sample_toy2d("8gaussians", 2000, generator=gen(2), dtype=F64)
    # E[log p] for well-separated modes = -log 8 - log(2π σ²) - 1
    want = -math.log(8) - math.log(2 * math.pi * 0.01) - 1
    assert mixture_log_prob(x).mean().item() == pytest.approx(want, abs=0.1)


def test_swissroll_radius_range():
    x = sample_toy2d("swissroll", 3000, generator=gen(3), dtype=F64)
    r = x.norm(dim=1)
    # u ∈ [1.5π, 4.5π], radius u/5 ∈ [0.94, 2.83], plus noise of std 0.1 per coordinate
    assert r.min().item() > 1.5 * math.pi / 5 - 0.5
    assert r.max().item() < 4.5 * math.pi / 5 + 0.5


def test_moons_are_centred():
    N = 20000
    x = sample_toy2d("moons", N, generator=gen(4), dtype=F64)
    # the two half circles have mean (0.5, 0.25) before the shift, so the data are centred at 0
    assert x.mean(0).abs().max().item() < 5 * x.std(0).max().item() / math.sqrt(N)
    assert x[:, 0].min().item() > -1.5 * 1.5 - 0.3 and x[:, 0].max().item() < 1.5 * 1.5 + 0.3


@pytest.mark.parametrize("name", ["circles", "8Gaussians", ""])
def test_unknown_data_set_lists_names(name):
    with pytest.raises(ValueError, match="Unknown 2-D data set") as info:
        sample_toy2d(name, 10)
    assert all(n in str(info.value) for n in TOY2D)


@pytest.mark.parametrize("n", [0, -3, 2.5, "10", True])
def test_n_must_be_positive_int(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        sample_toy2d("moons", n)
