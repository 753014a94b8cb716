"""Tests for ddpm_nb.diffusion: one forward step, the closed form q(x_t|x_0), sampling it, Gaussian KL."""

import math

import pytest
import torch

from ddpm_nb import diffusion as dif
from ddpm_nb.schedules import alpha_bar, beta_schedule

F64 = torch.float64
AB_1000 = alpha_bar(beta_schedule("linear", 1000))
BETA_50 = beta_schedule("linear", 50, beta_start=0.01, beta_end=0.2)
AB_50 = alpha_bar(BETA_50)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- q_step

def test_q_step_formula():
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=F64)
    eps = torch.tensor([[0.3, 1.0], [-1.0, 2.0]], dtype=F64)
    got = dif.q_step(x, 0.36, eps)
    torch.testing.assert_close(got, 0.8 * x + 0.6 * eps, rtol=0, atol=1e-15)


def test_q_step_accepts_tensor_beta_and_keeps_unit_variance():
    g = gen(1)
    x, eps = torch.randn(40000, generator=g, dtype=F64), torch.randn(40000, generator=g, dtype=F64)
    xt = dif.q_step(x, torch.tensor(0.2), eps)
    # Var x_t = (1 - β) + β = 1 for unit data; the sample variance has s.e. about sqrt(2/N)
    assert abs(xt.var().item() - 1.0) < 5 * math.sqrt(2 / 40000)
    assert xt.dtype == F64


@pytest.mark.parametrize("beta", [0.0, 1.0, -0.1, 1.5, torch.tensor([0.1, 1.0])])
def test_q_step_rejects_beta_outside_0_1(beta):
    with pytest.raises(ValueError, match="beta_t must lie strictly between 0 and 1"):
        dif.q_step(torch.zeros(2), beta, torch.zeros(2))


def test_q_step_rejects_eps_of_other_shape():
    with pytest.raises(ValueError, match="eps must have the shape of x_prev \\(3, 2\\)"):
        dif.q_step(torch.zeros(3, 2), 0.1, torch.zeros(2, 3))


# ---------------------------------------------------------------- q_mean_var

def test_q_mean_var_int_t():
    x0 = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=F64)
    mean, var = dif.q_mean_var(x0, 500, AB_1000)
    ab = 0.078587242882  # ᾱ_500 of the DDPM schedule (pinned in test_schedules)
    torch.testing.assert_close(mean, math.sqrt(ab) * x0, rtol=1e-9, atol=0)
    assert var.numel() == 1 and var.item() == pytest.approx(1 - ab, rel=1e-9)


def test_q_mean_var_at_t0_is_the_data():
    x0 = torch.tensor([[1.0, -1.0]], dtype=F64)
    mean, var = dif.q_mean_var(x0, 0, AB_50)
    torch.testing.assert_close(mean, x0, rtol=0, atol=0)
    assert var.item() == 0.0


def test_q_mean_var_per_example_t_broadcasts_over_image_dims():
    x0 = torch.ones(3, 1, 2, 2, dtype=F64)
    t = torch.tensor([1, 10, 50])
    mean, var = dif.q_mean_var(x0, t, AB_50)
    assert mean.shape == (3, 1, 2, 2) and var.shape == (3, 1, 1, 1)
    for i, ti in enumerate(t.tolist()):
        assert var[i].item() == pytest.approx(1 - AB_50[ti].item(), rel=1e-12)
        torch.testing.assert_close(mean[i], torch.full((1, 2, 2), math.sqrt(AB_50[ti].item()), dtype=F64))


@pytest.mark.parametrize("t, match", [
    (torch.tensor([1, 2]), "t has 2 steps but x0 has batch shape \\(3,\\)"),
    (torch.tensor([1, 2, 3, 4]), "t has 4 steps but x0 has batch shape"),
    (2.0, "t must be an integer step"),
    (torch.tensor([1.0, 2.0, 3.0]), "t must be an integer step"),
    (torch.ones(3, 1, dtype=torch.long), "t must be an int or a 1-D tensor"),
    (51, "t must lie in 0..50"),
    (-1, "t must lie in 0..50"),
    (torch.tensor([0, 25, 51]), "t must lie in 0..50"),
])
def test_q_mean_var_rejects_bad_t(t, match):
    with pytest.raises(ValueError, match=match):
        dif.q_mean_var(torch.zeros(3, 2), t, AB_50)


@pytest.mark.parametrize("ab", [torch.ones(1), torch.ones(3, 2), [1.0, 0.5]])
def test_q_mean_var_rejects_bad_alpha_bar(ab):
    with pytest.raises(ValueError, match="alpha_bar must be a 1-D tensor of length T \\+ 1"):
        dif.q_mean_var(torch.zeros(3, 2), 0, ab)


# ---------------------------------------------------------------- q_sample

def test_q_sample_with_given_eps_is_the_closed_form():
    x0 = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=F64)
    eps = torch.tensor([[0.1, -0.2], [1.5, 0.0]], dtype=F64)
    t = torch.tensor([10, 500])
    got = dif.q_sample(x0, t, AB_1000, eps)
    ab = AB_1000[t].unsqueeze(1)
    torch.testing.assert_close(got, ab.sqrt() * x0 + (1 - ab).sqrt() * eps, rtol=0, atol=1e-15)


def test_q_sample_pinned_with_generator():
    x0 = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=F64)
    got = dif.q_sample(x0, torch.tensor([10, 500]), AB_1000, generator=gen(0))
    want = torch.tensor([[1.0661305511, -1.0118248921], [-1.9512582339, 1.1063069144]], dtype=F64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
    # the noise is a single randn of x0's shape drawn from the generator
    eps = torch.randn(x0.shape, generator=gen(0), dtype=F64)
    torch.testing.assert_close(got, dif.q_sample(x0, torch.tensor([10, 500]), AB_1000, eps))


@pytest.mark.parametrize("t", [1, 10, 30, 50])
def test_q_sample_has_closed_form_mean_and_variance(t):
    N = 20000
    x0 = torch.tensor([1.5, -0.5], dtype=F64).expand(N, 2).contiguous()
    xt = dif.q_sample(x0, t, AB_50, generator=gen(100 + t))
    ab = AB_50[t].item()
    mean, var = math.sqrt(ab) * x0[0], 1 - ab
    assert torch.all((xt.mean(0) - mean).abs() < 5 * math.sqrt(var / N))
    assert torch.all((xt.var(0) - var).abs() < 5 * var * math.sqrt(2 / (N - 1)))


def test_q_sample_keeps_dtype():
    assert dif.q_sample(torch.zeros(4, 2), 3, AB_50, generator=gen()).dtype == torch.float32


def test_q_sample_rejects_eps_of_other_shape():
    with pytest.raises(ValueError, match="eps must have the shape of x0 \\(4, 2\\)"):
        dif.q_sample(torch.zeros(4, 2), 3, AB_50, torch.zeros(4))


def test_q_sample_rejects_mismatched_t():
    with pytest.raises(ValueError, match="give one t per example"):
        dif.q_sample(torch.zeros(4, 2), torch.tensor([1, 2, 3]), AB_50, generator=gen())


# ---------------------------------------------------------------- simulate_forward

def test_simulate_forward_is_iterated_q_step():
    x0 = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=F64)
    beta = beta_schedule("linear", 3, beta_start=0.1, beta_end=0.5)
    path = dif.simulate_forward(x0, beta, generator=gen(0))
    assert path.shape == (4, 2, 2)
    torch.testing.assert_close(path[0], x0, rtol=0, atol=0)
    g, x = gen(0), x0
    for t in range(1, 4):
        x = dif.q_step(x, beta[t], torch.randn(x0.shape, generator=g, dtype=F64))
        torch.testing.assert_close(path[t], x, rtol=0, atol=1e-14)
    want_last = torch.tensor([[-0.0790830266, -1.4430247387], [-0.3926592137, 1.6821264066]], dtype=F64)
    torch.testing.assert_close(path[3], want_last, rtol=0, atol=1e-9)


def test_simulate_forward_matches_q_mean_var_at_several_t():
    N = 20000
    x0 = torch.tensor([2.0, -1.0], dtype=F64).expand(N, 2).contiguous()
    path = dif.simulate_forward(x0, BETA_50, generator=gen(3))
    assert path.shape == (51, N, 2)
    for t in (1, 5, 20, 50):
        mean, var = dif.q_mean_var(x0[:1], t, AB_50)
        var = var.item()
        assert torch.all((path[t].mean(0) - mean[0]).abs() < 5 * math.sqrt(var / N)), t
        assert abs(path[t].var(0) - var).max().item() < 5 * var * math.sqrt(2 / (N - 1)), t


def test_simulate_forward_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta must be a 1-D tensor"):
        dif.simulate_forward(torch.zeros(3, 2), torch.zeros(2, 3))


# ---------------------------------------------------------------- gaussian_kl

def test_gaussian_kl_hand_computed():
    # KL(N(1, 0.5) || N(-0.5, 2)) = ½ [log 4 + (0.5 + 1.5²)/2 - 1]
    want = 0.5 * (math.log(4.0) + (0.5 + 2.25) / 2 - 1)
    got = dif.gaussian_kl(torch.tensor(1.0, dtype=F64), torch.tensor(0.5, dtype=F64),
                          torch.tensor(-0.5, dtype=F64), torch.tensor(2.0, dtype=F64))
    assert got.item() == pytest.approx(want, rel=1e-14)
    assert got.item() == pytest.approx(0.8806471806, abs=1e-10)


def test_gaussian_kl_zero_for_equal_laws_and_positive_otherwise():
    m = torch.tensor([0.0, 1.0, -3.0], dtype=F64)
    v = torch.tensor([1.0, 0.1, 4.0], dtype=F64)
    torch.testing.assert_close(dif.gaussian_kl(m, v, m, v), torch.zeros(3, dtype=F64), rtol=0, atol=1e-15)
    assert torch.all(dif.gaussian_kl(m, v, m + 0.1, v) > 0)
    assert torch.all(dif.gaussian_kl(m, v, m, 1.3 * v) > 0)


def test_gaussian_kl_is_per_coordinate_and_broadcasts():
    mq = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=F64)
    one = torch.tensor(1.0, dtype=F64)
    got = dif.gaussian_kl(mq, one, torch.zeros(2, dtype=F64), one)
    assert got.shape == (2, 2)
    torch.testing.assert_close(got, mq**2 / 2, rtol=0, atol=1e-15)


def test_gaussian_kl_matches_monte_carlo():
    mq, vq, mp, vp = 1.0, 0.5, -0.5, 2.0
    N = 200000
    x = mq + math.sqrt(vq) * torch.randn(N, generator=gen(42), dtype=F64)
    log_q = -0.5 * ((x - mq) ** 2 / vq + math.log(2 * math.pi * vq))
    log_p = -0.5 * ((x - mp) ** 2 / vp + math.log(2 * math.pi * vp))
    ratio = log_q - log_p
    mc, se = ratio.mean().item(), ratio.std().item() / math.sqrt(N)
    got = dif.gaussian_kl(torch.tensor(mq, dtype=F64), torch.tensor(vq, dtype=F64),
                          torch.tensor(mp, dtype=F64), torch.tensor(vp, dtype=F64)).item()
    assert abs(mc - got) < 5 * se


@pytest.mark.parametrize("vq, vp", [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0), (torch.tensor([1.0, -0.5]), 1.0)])
def test_gaussian_kl_rejects_non_positive_variance(vq, vp):
    with pytest.raises(ValueError, match="Variances must be positive"):
        dif.gaussian_kl(torch.zeros(2), vq, torch.zeros(2), vp)


def test_simulate_forward_rejects_a_beta_that_is_not_a_schedule():
    x0 = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        dif.simulate_forward(x0, torch.tensor([0.0, 1.5, 0.2], dtype=torch.float64))


def test_q_mean_var_rejects_boolean_steps():
    ab = alpha_bar(beta_schedule("linear", 10))
    with pytest.raises(ValueError, match="integer step"):
        dif.q_mean_var(torch.zeros(2, 1), torch.tensor([True, False]), ab)


def test_gaussian_kl_keeps_double_precision_for_float_variances():
    m = torch.tensor([0.0], dtype=torch.float64)
    got = dif.gaussian_kl(m, 0.1, m, 0.3)
    assert got.dtype == torch.float64
    assert abs(float(got) - 0.5 * (math.log(3.0) + 1 / 3 - 1)) < 1e-15
