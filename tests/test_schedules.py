"""Tests for ddpm_nb.schedules: exact endpoints, ᾱ as a product, the continuous limit, bad input."""

import math

import pytest
import torch

from ddpm_nb import schedules as sch

# ---------------------------------------------------------------- linear schedule

def test_linear_schedule_endpoints_and_spacing():
    beta = sch.beta_schedule("linear", 1000)
    assert beta.shape == (1001,)
    assert beta.dtype == torch.float64
    assert beta[0].item() == 0.0
    assert beta[1].item() == pytest.approx(1e-4, abs=1e-15)
    assert beta[1000].item() == pytest.approx(0.02, abs=1e-15)
    steps = beta[2:] - beta[1:-1]
    torch.testing.assert_close(steps, torch.full_like(steps, (0.02 - 1e-4) / 999), rtol=0, atol=1e-15)


def test_linear_schedule_custom_range_and_dtype():
    beta = sch.beta_schedule("linear", 4, beta_start=0.1, beta_end=0.4, dtype=torch.float32)
    assert beta.dtype == torch.float32
    torch.testing.assert_close(beta, torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4]))


def test_linear_schedule_with_one_step_is_beta_start():
    # torch.linspace with one point returns the start
    beta = sch.beta_schedule("linear", 1, beta_start=0.01, beta_end=0.3)
    assert beta.tolist() == pytest.approx([0.0, 0.01])


# ---------------------------------------------------------------- cosine schedule

def test_cosine_schedule_matches_formula_and_is_capped_at_T():
    T, s = 1000, 0.008
    beta = sch.beta_schedule("cosine", T)
    assert beta.shape == (T + 1,)
    assert beta[0].item() == 0.0
    # f(T) = cos²(π/2) ≈ 0, so the raw β_T is 1: the cap 0.999 is what comes out
    assert beta[T].item() == 0.999
    assert torch.all(beta[1:] > 0) and torch.all(beta <= 0.999)
    # independent computation of eq. 17 (Nichol & Dhariwal 2021) at a few steps
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    for t in (1, 10, 500, 900, 999):
        assert beta[t].item() == pytest.approx(min(1 - f[t] / f[t - 1], 0.999), rel=1e-10)


def test_cosine_schedule_is_increasing():
    beta = sch.beta_schedule("cosine", 200)
    assert torch.all(beta[1:] - beta[:-1] > 0)


def test_cosine_max_beta_is_the_cap():
    beta = sch.beta_schedule("cosine", 50, max_beta=0.5)
    assert beta.max().item() == 0.5
    assert beta[50].item() == 0.5


def test_cosine_alpha_bar_matches_continuous_cosine():
    T = 100
    ab = sch.alpha_bar(sch.beta_schedule("cosine", T))
    t = torch.arange(T + 1, dtype=torch.float64) / T
    # equal up to the cap at t = T, where f(T)/f(0) is ~1e-35 and the capped ᾱ_T is 0.001·ᾱ_{T-1}
    torch.testing.assert_close(ab[:-1], sch.alpha_bar_continuous(t[:-1], "cosine"), rtol=0, atol=1e-12)
    assert ab[T].item() == pytest.approx(0.001 * ab[T - 1].item(), rel=1e-12)


# ---------------------------------------------------------------- alpha_bar and snr

@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_alpha_bar_is_cumulative_product_of_one_minus_beta(kind):
    beta = sch.beta_schedule(kind, 30)
    ab = sch.alpha_bar(beta)
    want, prod = [], 1.0
    for b in beta.tolist():
        prod *= 1.0 - b
        want.append(prod)
    assert ab[0].item() == 1.0
    torch.testing.assert_close(ab, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=0)
    assert torch.all(ab[1:] < ab[:-1])


def test_alpha_bar_pinned_values_of_ddpm_schedule():
    ab = sch.alpha_bar(sch.beta_schedule("linear", 1000))
    got = ab[[1, 10, 500, 1000]]
    want = torch.tensor([0.9999, 0.99810520479, 0.078587242882, 4.0358297654e-05], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=0)


def test_snr_values():
    ab = torch.tensor([1.0, 0.8, 0.5, 0.2], dtype=torch.float64)
    got = sch.snr(ab)
    assert math.isinf(got[0].item())
    assert got[1:].tolist() == pytest.approx([4.0, 1.0, 0.25])


# ---------------------------------------------------------------- continuous time

def test_alpha_bar_continuous_linear_closed_form():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    got = sch.alpha_bar_continuous(t, beta_min=0.1, beta_max=20.0)
    want = [math.exp(-(0.1 * u + 0.5 * 19.9 * u * u)) for u in t.tolist()]
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert got[0].item() == 1.0


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_beta_continuous_is_minus_dlog_alpha_bar(kind):
    t = torch.linspace(0.05, 0.9, 7, dtype=torch.float64)
    h = 1e-6
    up, down = sch.alpha_bar_continuous(t + h, kind), sch.alpha_bar_continuous(t - h, kind)
    numeric = -(torch.log(up) - torch.log(down)) / (2 * h)
    torch.testing.assert_close(sch.beta_continuous(t, kind), numeric, rtol=1e-6, atol=1e-6)


def test_beta_continuous_linear_endpoints():
    got = sch.beta_continuous(torch.tensor([0.0, 1.0]), beta_min=0.1, beta_max=20.0)
    assert got.tolist() == pytest.approx([0.1, 20.0])


def test_discretize_continuous_at_1000_is_ddpm_schedule():
    torch.testing.assert_close(sch.discretize_continuous(1000), sch.beta_schedule("linear", 1000),
                               rtol=0, atol=1e-15)


def test_discretize_continuous_converges_to_continuous_alpha_bar():
    errors = []
    for T in (100, 1000, 10000):
        ab = sch.alpha_bar(sch.discretize_continuous(T))
        t = torch.arange(T + 1, dtype=torch.float64) / T
        errors.append((ab - sch.alpha_bar_continuous(t)).abs().max().item())
    assert errors[0] > errors[1] > errors[2]
    # first order in 1/T: error·T stays about 0.8 (measured 0.83, 0.81, 0.81)
    for T, err in zip((100, 1000, 10000), errors, strict=True):
        assert 0.5 / T < err < 1.0 / T


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("fn", [
    lambda: sch.beta_schedule("quadratic", 10),
    lambda: sch.beta_continuous(torch.tensor([0.5]), "sigmoid"),
    lambda: sch.alpha_bar_continuous(torch.tensor([0.5]), "Linear"),
])
def test_unknown_schedule_lists_the_valid_names(fn):
    with pytest.raises(ValueError, match="Unknown schedule") as info:
        fn()
    assert "linear" in str(info.value) and "cosine" in str(info.value)


@pytest.mark.parametrize("T", [0, -5, 2.0, 10.5, "10", True, None])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_T_must_be_a_positive_int(kind, T):
    with pytest.raises(ValueError, match="T must be a positive integer"):
        sch.beta_schedule(kind, T)


@pytest.mark.parametrize("start, end", [(0.0, 0.02), (1e-4, 1.0), (-0.1, 0.02), (1e-4, 1.5), (1.0, 1.0)])
def test_linear_beta_outside_open_unit_interval(start, end):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        sch.beta_schedule("linear", 10, beta_start=start, beta_end=end)


def test_linear_beta_start_above_beta_end():
    with pytest.raises(ValueError, match="must not exceed beta_end"):
        sch.beta_schedule("linear", 10, beta_start=0.02, beta_end=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"s": 0.0}, "offset s must be positive"),
    ({"s": -0.1}, "offset s must be positive"),
    ({"max_beta": 1.0}, "max_beta must lie strictly between 0 and 1"),
    ({"max_beta": 0.0}, "max_beta must lie strictly between 0 and 1"),
])
def test_cosine_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sch.beta_schedule("cosine", 10, **kwargs)


@pytest.mark.parametrize("beta, match", [
    (torch.tensor([0.1, 0.1, 0.2], dtype=torch.float64), "beta\\[0\\] must be 0"),
    (torch.tensor([0.0, 0.1, 0.0], dtype=torch.float64), "strictly between 0 and 1"),
    (torch.tensor([0.0, 0.1, 1.0], dtype=torch.float64), "strictly between 0 and 1"),
    (torch.tensor([0.0, -0.1, 0.5], dtype=torch.float64), "strictly between 0 and 1"),
    (torch.tensor([0.0]), "1-D tensor of length T \\+ 1"),
    (torch.zeros(3, 2), "1-D tensor of length T \\+ 1"),
    ([0.0, 0.1, 0.2], "1-D tensor of length T \\+ 1"),
])
def test_alpha_bar_rejects_bad_beta(beta, match):
    with pytest.raises(ValueError, match=match):
        sch.alpha_bar(beta)


@pytest.mark.parametrize("ab", [
    torch.tensor([1.0, 0.5, 0.0]),
    torch.tensor([1.0, 1.5]),
    torch.tensor([1.0, -0.2]),
])
def test_snr_rejects_alpha_bar_outside_0_1(ab):
    with pytest.raises(ValueError, match="alpha_bar must lie in"):
        sch.snr(ab)


def test_snr_rejects_non_tensor():
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        sch.snr([1.0, 0.5])


@pytest.mark.parametrize("t", [torch.tensor([-0.1, 0.5]), torch.tensor([0.5, 1.01]), 2.0])
@pytest.mark.parametrize("fn", [sch.beta_continuous, sch.alpha_bar_continuous])
def test_continuous_time_outside_0_1(fn, t):
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        fn(t)


@pytest.mark.parametrize("T", [1, 0, 3.0])
def test_discretize_continuous_rejects_small_or_non_int_T(T):
    with pytest.raises(ValueError, match="T must be"):
        sch.discretize_continuous(T)


def test_discretize_continuous_refuses_too_few_steps_for_beta_max():
    with pytest.raises(ValueError, match="beta_max < T"):
        sch.discretize_continuous(10)  # β_max/T = 2: a step would erase everything


def test_check_beta_rejects_beta_zero_and_beta_one():
    with pytest.raises(ValueError, match="beta\\[0\\] must be 0"):
        sch.check_beta(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        sch.check_beta(torch.tensor([0.0, 0.5, 1.5], dtype=torch.float64))


# ---------------------------------------------------------------- the one continuous-time log ᾱ(t)


@pytest.mark.parametrize("kind, T", [("linear", 1000), ("cosine", 1000), ("cosine", 100), ("linear", 3)])
def test_log_alpha_bar_at_is_the_monotone_cubic_of_scipy(kind, T):
    import numpy as np
    from scipy.interpolate import PchipInterpolator

    beta = sch.beta_schedule(kind, T)
    knots = torch.log(sch.alpha_bar(beta))
    ref = PchipInterpolator(np.arange(T + 1.0), knots.numpy())
    t = torch.cat([torch.tensor([0.0, T, T - 0.5, 0.5]), torch.rand(5000, dtype=torch.float64) * T])
    want = torch.tensor(ref(t.numpy()))
    torch.testing.assert_close(sch.log_alpha_bar_at(beta, t), want, rtol=0, atol=1e-12)
    slope = torch.tensor(ref.derivative()(t.numpy()))
    torch.testing.assert_close(sch.log_alpha_bar_slope_at(beta, t), slope, rtol=1e-10, atol=1e-12)
    steps = torch.arange(T + 1, dtype=torch.float64)
    torch.testing.assert_close(sch.log_alpha_bar_at(beta, steps), knots, rtol=0, atol=1e-12)
    assert torch.all(sch.log_alpha_bar_slope_at(beta, t) <= 0)  # b(t) >= 0: ᾱ never grows


def test_log_alpha_bar_at_refuses_times_outside_the_schedule():
    with pytest.raises(ValueError, match=r"must lie in \[0, 10\]"):
        sch.log_alpha_bar_at(sch.beta_schedule("linear", 10), torch.tensor([10.5]))


def test_half_log_snr_is_half_the_log_snr():
    lab = torch.log(sch.alpha_bar(sch.beta_schedule("cosine", 100)))[1:]
    torch.testing.assert_close(2 * sch.half_log_snr(lab), torch.log(sch.snr(lab.exp())))
