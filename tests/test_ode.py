"""Continuous time: the SDE/ODE samplers and the ODE likelihood, on Gaussian data with an exact score."""

from __future__ import annotations

import math

import pytest
import torch

from ddpm_nb import sde
from ddpm_nb.likelihood import bits_per_dim, ode_log_likelihood
from ddpm_nb.samplers import (
    Denoiser,
    continuous_timesteps,
    get_sampler,
    sample_ddim,
    sample_rk45,
)
from ddpm_nb.schedules import beta_schedule

BETA = beta_schedule("linear", 1000)
M, S2 = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.25


def gaussian_model(m: torch.Tensor = M, s2: float = S2) -> Denoiser:
    """The exact ε* for data N(m, s2 I): x_t ~ N(α m, α² s2 + σ²), ε* = σ (x - α m) / (α² s2 + σ²)."""
    holder = {}

    def net(x, t):
        a, s = sde.alpha_sigma(holder["model"], float(t[0]))
        return (s * (x - a * m) / (a**2 * s2 + s**2)).to(x)

    holder["model"] = Denoiser(net, BETA)
    return holder["model"]


@pytest.fixture(scope="module")
def model():
    return gaussian_model()


def test_interpolated_schedule_matches_the_steps_and_b_is_its_slope(model):
    t = torch.tensor([0.0, 1.0, 250.0, 1000.0])
    torch.testing.assert_close(sde.log_alpha_bar_at(model, t), torch.log(model.alpha_bar[[0, 1, 250, 1000]]))
    h = 1e-6
    slope = -(sde.log_alpha_bar_at(model, 300.5 + h) - sde.log_alpha_bar_at(model, 300.5 - h)) / (2 * h)
    assert float(slope) == pytest.approx(float(sde.b_at(model, 300.5)), rel=1e-6)


def test_vp_marginals_match_the_sde_moments():
    # d/dt of the marginal mean coefficient is the drift coefficient times it (linear SDE)
    t, h = torch.tensor(0.4, dtype=torch.float64), 1e-6
    c = sde.vp_sde(t)
    dm = (sde.vp_sde(t + h)["mean_coeff"] - sde.vp_sde(t - h)["mean_coeff"]) / (2 * h)
    assert float(dm) == pytest.approx(float(c["drift_coeff"] * c["mean_coeff"]), rel=1e-6)
    # variance of a VP-SDE started at 0 variance: v' = 2 f v + g²
    dv = (sde.vp_sde(t + h)["var"] - sde.vp_sde(t - h)["var"]) / (2 * h)
    assert float(dv) == pytest.approx(float(2 * c["drift_coeff"] * c["var"] + c["diffusion"] ** 2), rel=1e-6)
    v = sde.ve_sde(t)
    dv = (sde.ve_sde(t + h)["var"] - sde.ve_sde(t - h)["var"]) / (2 * h)
    assert float(dv) == pytest.approx(float(v["diffusion"] ** 2), rel=1e-6)


def test_ddim_step_is_an_euler_step_of_the_ode_up_to_second_order(model):
    """One DDIM(η=0) step and one Euler step of the PF-ODE differ by O(h²)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = 600
    diffs = []
    for h in (32, 16, 8, 4):
        ab = model.alpha_bar
        eps = model.eps(x, t)
        x0 = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        ddim = ab[t - h].sqrt() * x0 + (1 - ab[t - h]).sqrt() * eps
        euler = x - h * sde.pf_ode_drift(model, x, float(t))
        diffs.append(float((ddim - euler).abs().max()))
    ratios = [a / b for a, b in zip(diffs, diffs[1:], strict=False)]
    assert all(3.5 < r < 4.5 for r in ratios), ratios


@pytest.mark.parametrize("name,steps,spacing", [("euler", 100, "time"), ("heun", 40, "time"),
                                                ("dpm_solver", 20, "lambda"), ("unipc", 20, "lambda"),
                                                ("rk45", 1, "time"),
                                                ("euler_maruyama", 300, "time")])
def test_samplers_reproduce_gaussian_data(model, name, steps, spacing):
    g = torch.Generator().manual_seed(1)
    n = 20000
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    out = get_sampler(name)(model, x, continuous_timesteps(model, steps, spacing=spacing), generator=g)
    torch.testing.assert_close(out.mean(0), M, rtol=0, atol=5 * math.sqrt(S2 / n) + 0.01)
    torch.testing.assert_close(out.var(0), torch.full((2,), S2, dtype=torch.float64), rtol=0,
                               atol=5 * S2 * math.sqrt(2 / n) + 0.01)


def _error(model, name, steps, spacing, x, ref):
    return float((get_sampler(name)(model, x, continuous_timesteps(model, steps, spacing=spacing)) - ref)
                 .abs().mean())


def test_orders_of_convergence(model):
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = sample_rk45(model, x, [1000.0, 1.0], rtol=1e-9, atol=1e-9)
    e = [_error(model, "euler", k, "time", x, ref) for k in (20, 40)]
    assert 1.7 < e[0] / e[1] < 2.3, e  # first order: halve the step, halve the error
    h = [_error(model, "heun", k, "time", x, ref) for k in (10, 20)]
    assert h[0] / h[1] > 2.5, h  # (nearly) second order
    d = [_error(model, "dpm_solver", k, "lambda", x, ref) for k in (20, 40)]
    assert d[0] / d[1] > 3.0, d
    assert d[1] < h[1] and h[1] < e[1]
    # UniPC-2: a second-order predictor and its corrector, third order at the same cost as DPM-Solver++
    u = [_error(model, "unipc", k, "lambda", x, ref) for k in (10, 20, 40)]
    assert u[0] / u[1] > 5.0 and u[1] / u[2] > 5.0, u
    assert u[2] < d[1], (u, d)


def test_unipc_coefficients_solve_the_order_conditions():
    from ddpm_nb.samplers import unipc_coefficients
    from ddpm_nb.samplers.unipc import _phis

    h, rs = 0.7, [-0.8, -1.9, 1.0]
    a = unipc_coefficients(rs, h)
    phi = _phis(h, 4)
    for n in (1, 2, 3):
        lhs = sum(ak * r ** (n - 1) for ak, r in zip(a, rs, strict=True))
        assert lhs == pytest.approx(math.factorial(n) * h * phi[n] / math.expm1(h), rel=1e-12)
    # φ_2(-h) by its integral definition ∫_0^1 e^{-(1-θ)h} θ dθ
    theta = torch.linspace(0, 1, 200001, dtype=torch.float64)
    integral = torch.trapezoid(torch.exp(-(1 - theta) * h) * theta, theta)
    assert phi[1] == pytest.approx(float(integral), rel=1e-9)


def test_ddim_is_deterministic_and_agrees_with_the_ode(model):
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = sample_rk45(model, x, [1000.0, 1.0], rtol=1e-9, atol=1e-9)
    ddim = sample_ddim(model, x, range(1000, 0, -1))
    assert float((ddim - ref).abs().max()) < 0.02


def test_dpm_solver_pinned():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()

    def net(x, t):
        return torch.tanh(lin(torch.cat([x, t.double().unsqueeze(1) / 1000], 1)))

    model = Denoiser(net, BETA)
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = get_sampler("dpm_solver")(model, x, continuous_timesteps(model, 5, spacing="lambda"))
    torch.testing.assert_close(out, torch.tensor(PINNED_DPM, dtype=torch.float64), rtol=1e-9, atol=1e-9)


def test_ode_likelihood_of_gaussian_data_is_exact():
    g = torch.Generator().manual_seed(5)
    zero_mean = gaussian_model(torch.zeros(2, dtype=torch.float64), S2)
    x0 = 0.5 * torch.randn(40, 2, generator=g, dtype=torch.float64)
    r = ode_log_likelihood(zero_mean, x0, t_min=1e-3, rtol=1e-7, atol=1e-7)
    true = torch.distributions.Normal(0.0, 0.5).log_prob(x0).sum(1)
    assert float((r["log_p"] - true).abs().max()) < 1e-3
    # with a mean, the terminal law is not exactly N(0, I): swap in the exact p_T and it is exact again
    model = gaussian_model()
    x0 = M + 0.5 * torch.randn(40, 2, generator=g, dtype=torch.float64)
    r = ode_log_likelihood(model, x0, t_min=1e-3, rtol=1e-7, atol=1e-7)
    a, s = sde.alpha_sigma(model, 1000.0)
    p_T = torch.distributions.Normal(a * M, (a**2 * S2 + s**2).sqrt()).log_prob(r["x_T"]).sum(1)
    true = torch.distributions.Normal(M, 0.5).log_prob(x0).sum(1)
    assert float((p_T + r["delta"] - true).abs().max()) < 1e-3


def test_hutchinson_estimate_is_unbiased_enough():
    g = torch.Generator().manual_seed(6)
    model = gaussian_model(torch.zeros(2, dtype=torch.float64), S2)
    x0 = 0.5 * torch.randn(200, 2, generator=g, dtype=torch.float64)
    r = ode_log_likelihood(model, x0, t_min=1e-3, exact=False, generator=g)
    err = r["log_p"] - torch.distributions.Normal(0.0, 0.5).log_prob(x0).sum(1)
    assert abs(float(err.mean())) < 5 * float(err.std()) / math.sqrt(200) + 1e-3


def test_bits_per_dim_of_a_uniform_density():
    # the uniform density on [-1, 1]^D is 2^-D; on the 0..255 scale it is 255^-D: log2(255) bits/dim
    dim = 784
    log_p = torch.tensor([-dim * math.log(2.0)])
    assert float(bits_per_dim(log_p, dim)) == pytest.approx(math.log2(255.0), abs=1e-3)


def test_bad_input(model):
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="dpm_solver"):
        get_sampler("dpm-solver-3")
    with pytest.raises(ValueError, match="positive integer"):
        continuous_timesteps(model, 0)
    with pytest.raises(ValueError, match="spacing"):
        continuous_timesteps(model, 5, spacing="karras")
    with pytest.raises(ValueError, match="strictly decreasing"):
        get_sampler("euler")(model, x, [1.0, 500.0])
    with pytest.raises(ValueError, match=r"\[0, 1000\]"):
        sde.alpha_sigma(model, 1200.0)
    with pytest.raises(ValueError, match="t_min"):
        ode_log_likelihood(model, x, t_min=0.0)


PINNED_DPM = [[-171.6525734564107, -102.64908006080658], [341.22476062859016, 229.75310480492882]]


def test_first_lambda_grid_jumps_then_spaces_evenly_in_lambda(model):
    ts = continuous_timesteps(model, 6, spacing="lambda", first_lambda=-1.0)
    assert len(ts) == 7 and ts[0] == model.T and ts[-1] == 1.0
    lam = []
    for t in ts:
        a, s = sde.alpha_sigma(model, t)
        lam.append(math.log(a / s))
    assert lam[1] == pytest.approx(-1.0, abs=0.01)  # the first stop is where λ = -1
    gaps = [b - a for a, b in zip(lam[1:], lam[2:], strict=False)]
    assert max(gaps) - min(gaps) < 0.02  # then evenly spaced in λ
    with pytest.raises(ValueError, match="first_lambda must lie in"):
        continuous_timesteps(model, 6, spacing="lambda", first_lambda=9.0)
    with pytest.raises(ValueError, match="spacing='lambda' only"):
        continuous_timesteps(model, 6, first_lambda=-1.0)


def test_dpm_solver_lower_order_final_step(model):
    """diffusers' lower-order final step: on a grid even in time the last step is long in λ, and the
    first-order update there cuts the error; on the book's λ grid at 5 steps it does not (measured in
    the docstring of sample_dpm_solver)."""
    from ddpm_nb.samplers import sample_dpm_solver

    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = sample_rk45(model, x, [1000.0, 1.0], rtol=1e-9, atol=1e-9)

    def rms(steps, spacing, lof):
        ts = continuous_timesteps(model, steps, spacing=spacing)
        return float((sample_dpm_solver(model, x, ts, lower_order_final=lof) - ref).pow(2).mean().sqrt())

    assert rms(10, "time", True) < 0.6 * rms(10, "time", False)
    assert rms(20, "time", True) < 0.3 * rms(20, "time", False)
    assert rms(5, "lambda", False) < 0.5 * rms(5, "lambda", True)
    # the first step is first order either way: with two steps only the last one differs
    ts = continuous_timesteps(model, 2, spacing="lambda")
    lof = sample_dpm_solver(model, x, ts, lower_order_final=True)
    assert not torch.equal(lof, sample_dpm_solver(model, x, ts))
