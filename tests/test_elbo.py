"""The posterior, the ELBO terms and L_simple: closed forms against brute force, and pinned values."""

from __future__ import annotations

import math

import pytest
import torch

from ddpm_nb import diffusion as dif
from ddpm_nb import elbo
from ddpm_nb.data.toy2d import mixture_eps, mixture_log_prob, sample_toy2d
from ddpm_nb.schedules import alpha_bar, beta_schedule

BETA = beta_schedule("linear", 100, beta_start=1e-3, beta_end=0.1)
AB = alpha_bar(BETA)


@pytest.mark.parametrize("t", [2, 10, 60])
def test_posterior_is_bayes_on_a_grid(t):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), computed numerically in 1-D."""
    x0, xt = torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([[-0.3]], dtype=torch.float64)
    grid = torch.linspace(-6, 6, 200001, dtype=torch.float64)
    log_step = torch.distributions.Normal((1 - BETA[t]).sqrt() * grid, BETA[t].sqrt()).log_prob(xt[0, 0])
    log_prior = torch.distributions.Normal(AB[t - 1].sqrt() * x0[0, 0], (1 - AB[t - 1]).sqrt()).log_prob(grid)
    w = torch.softmax(log_step + log_prior, 0)
    mean_grid = (w * grid).sum()
    var_grid = (w * (grid - mean_grid) ** 2).sum()
    mean, var = dif.posterior_mean_var(x0, xt, t, BETA)
    assert abs(float(mean) - float(mean_grid)) < 1e-7
    assert abs(float(var) - float(var_grid)) < 1e-7


def test_posterior_variance_pinned():
    var = dif.posterior_variance(BETA)
    assert var[0] == 0 and var[1] == 0
    assert float(var[2]) == pytest.approx(float((1 - AB[1]) / (1 - AB[2]) * BETA[2]), rel=1e-12)
    assert float(var[100]) == pytest.approx(0.09994008943, rel=1e-8)


def test_mean_from_true_noise_is_the_posterior_mean():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 5, 30, 99, 100])
    xt = dif.q_sample(x0, t, AB, eps)
    mean, _ = dif.posterior_mean_var(x0, xt, t, BETA)
    torch.testing.assert_close(dif.p_mean_from_eps(xt, t, eps, BETA), mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(dif.x0_from_eps(xt, t, eps, AB), x0, rtol=0, atol=1e-10)
    torch.testing.assert_close(dif.eps_from_x0(xt, t, x0, AB), eps, rtol=0, atol=1e-9)


def test_posterior_rejects_step_zero_and_shape_mismatch():
    x = torch.zeros(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="at least 1"):
        dif.posterior_mean_var(x, x, 0, BETA)
    with pytest.raises(ValueError, match="shape of x0"):
        dif.posterior_mean_var(x, torch.zeros(3, 1, dtype=torch.float64), 2, BETA)


def _dirac_eps(c: float):
    """Exact ε* when all data sit at one point c: (x_t - sqrt(ᾱ_t) c) / sqrt(1 - ᾱ_t)."""
    def eps(xt, t):
        ab = AB.to(xt)[t].reshape(-1, *([1] * (xt.dim() - 1)))
        return (xt - ab.sqrt() * c) / (1 - ab).sqrt()
    return eps


def test_diffusion_term_vanishes_for_the_exact_model_with_beta_tilde():
    x0 = torch.full((4, 2), 0.5, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    for t in (2, 50, 100):
        kl = elbo.diffusion_term(_dirac_eps(0.5), x0, t, BETA, "beta_tilde", generator=g)
        assert kl.abs().max() < 1e-9


def test_diffusion_term_with_beta_is_the_variance_mismatch_only():
    x0 = torch.full((3, 2), -1.0, dtype=torch.float64)
    bt = dif.posterior_variance(BETA)
    for t in (2, 40):
        g = torch.Generator().manual_seed(2)
        kl = elbo.diffusion_term(_dirac_eps(-1.0), x0, t, BETA, "beta", generator=g)
        want = float(2 * 0.5 * (math.log(BETA[t] / bt[t]) + bt[t] / BETA[t] - 1))
        torch.testing.assert_close(kl, torch.full((3,), want, dtype=torch.float64), rtol=1e-9, atol=1e-12)


def test_prior_term_closed_form():
    x0 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    ab = AB[100]
    want = 0.5 * (ab * (1 + 4) + 2 * ((1 - ab) - 1 - math.log(1 - ab)))
    assert float(elbo.prior_term(x0, BETA)) == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("mean,std", [(0.0, 0.05), (0.93, 0.01), (-1.2, 0.3), (0.4, 2.0)])
def test_discretized_decoder_is_a_probability_over_the_256_levels(mean, std):
    levels = (torch.arange(256, dtype=torch.float64) / 127.5 - 1).reshape(256, 1)
    nll = elbo.discretized_gaussian_nll(levels, torch.full_like(levels, mean), std)
    assert float(torch.exp(-nll).sum()) == pytest.approx(1.0, abs=1e-9)
    assert torch.all(nll >= 0)


def test_reconstruction_term_discretized_is_non_negative():
    levels = (torch.arange(256, dtype=torch.float64) / 127.5 - 1).reshape(256, 1)
    l0 = elbo.reconstruction_term(lambda x, t: torch.zeros_like(x), levels, BETA, decoder="discretized",
                                  generator=torch.Generator().manual_seed(0))
    assert l0.shape == (256,) and torch.all(l0 >= 0)


def test_discretized_decoder_rejects_unscaled_images():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        elbo.reconstruction_term(lambda x, t: x, torch.full((2, 1), 3.0), BETA, decoder="discretized")


def test_unknown_options_list_the_valid_ones():
    with pytest.raises(ValueError, match="beta, beta_tilde"):
        elbo.reverse_variance(BETA, "small")
    with pytest.raises(ValueError, match="gaussian, discretized"):
        elbo.reconstruction_term(lambda x, t: x, torch.zeros(2, 1), BETA, decoder="logistic")
    with pytest.raises(ValueError, match="n_mc"):
        elbo.negative_elbo(lambda x, t: x, torch.zeros(2, 1), BETA, n_mc=1)


def test_elbo_weights_match_ho_eq_12():
    w = elbo.elbo_weights(BETA, "beta_tilde")
    bt = dif.posterior_variance(BETA)
    t = 37
    want = BETA[t] ** 2 / (2 * bt[t] * (1 - BETA[t]) * (1 - AB[t]))
    assert float(w[t]) == pytest.approx(float(want), rel=1e-12)
    assert w[0] == 0
    w_beta = elbo.elbo_weights(BETA, "beta")
    assert float(w_beta[t]) == pytest.approx(float(BETA[t] / (2 * (1 - BETA[t]) * (1 - AB[t]))), rel=1e-12)


def test_l_simple_of_a_zero_predictor_is_the_noise_power():
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(4000, 2, generator=g)
    loss = elbo.l_simple(lambda x, t: torch.zeros_like(x), x0, BETA.float(), generator=g)
    assert abs(float(loss) - 1.0) < 5 * math.sqrt(2 / 8000)


def test_l_simple_pinned():
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(16, 2, generator=g, dtype=torch.float64)
    loss = elbo.l_simple(lambda x, t: 0.5 * x, x0, BETA, generator=g)
    assert float(loss) == pytest.approx(0.3067720103, rel=1e-6)


def test_negative_elbo_bounds_the_exact_nll_with_the_exact_score():
    beta = beta_schedule("linear", 200, beta_start=5e-4, beta_end=0.1)
    ab = alpha_bar(beta)
    g = torch.Generator().manual_seed(5)
    x0 = sample_toy2d("8gaussians", 500, generator=g, dtype=torch.float64)
    r = elbo.negative_elbo(lambda x, t: mixture_eps(x, t, ab), x0, beta, n_mc=2, generator=g)
    gap = r["nelbo"] + mixture_log_prob(x0)
    assert float(gap.mean()) > -3 * float(gap.std() / math.sqrt(500))
    torch.testing.assert_close(r["prior"] + r["diffusion"] + r["reconstruction"], r["nelbo"],
                               rtol=0, atol=1e-9)
    assert torch.all(r["stderr"] >= 0)


def test_negative_elbo_pinned():
    beta = beta_schedule("cosine", 20)
    g = torch.Generator().manual_seed(6)
    x0 = sample_toy2d("8gaussians", 8, generator=g, dtype=torch.float64)
    ab = alpha_bar(beta)
    r = elbo.negative_elbo(lambda x, t: mixture_eps(x, t, ab), x0, beta, n_mc=2, generator=g)
    assert float(r["nelbo"].mean()) == pytest.approx(PINNED_NELBO, rel=1e-6)
    r2 = elbo.negative_elbo(lambda x, t: mixture_eps(x, t, ab), x0, beta, n_mc=2, t_samples=4,
                            generator=torch.Generator().manual_seed(6))
    assert torch.isfinite(r2["nelbo"]).all()


PINNED_NELBO = 0.9082875321529766


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
def test_l_simple_t_power_draws_t_with_cdf_k_over_T_to_one_over_p(power):
    # t = ceil(T u^p): P(t <= k) = (k / T)^(1/p); p = 1 is the uniform U{1..T} of Ho et al.
    seen = []

    def spy(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    T = BETA.shape[0] - 1
    g = torch.Generator().manual_seed(6)
    elbo.l_simple(spy, torch.zeros(20000, 2), BETA.float(), generator=g, t_power=power)
    t = seen[0]
    assert int(t.min()) >= 1 and int(t.max()) <= T
    for k in (T // 10, T // 4, T // 2):
        assert float((t <= k).double().mean()) == pytest.approx((k / T) ** (1 / power), abs=0.015)


def test_l_simple_refuses_t_power_below_one():
    with pytest.raises(ValueError, match="t_power must be >= 1"):
        elbo.l_simple(lambda x, t: x, torch.zeros(4, 2), BETA.float(), t_power=0.5)
