"""Samplers: DDIM(η=1, all steps) is DDPM with β̃; η=0 is deterministic; the exact score samples the data."""

from __future__ import annotations

import pytest
import torch

from ddpm_nb.data.toy2d import mixture_eps, mixture_log_prob, sample_toy2d
from ddpm_nb.samplers import Denoiser, get_sampler, sample_ddim, sample_ddpm, timesteps
from ddpm_nb.schedules import alpha_bar, beta_schedule

BETA = beta_schedule("linear", 200, beta_start=5e-4, beta_end=0.1)
AB = alpha_bar(BETA)
EXACT = Denoiser(lambda x, t: mixture_eps(x, t, AB), BETA)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tiny_net():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    return lambda x, t: torch.tanh(lin(torch.cat([x, t.double().unsqueeze(1) / 200], 1)))


def test_ddim_with_eta_one_on_every_step_is_ddpm_with_beta_tilde():
    model = Denoiser(_tiny_net(), BETA)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = sample_ddpm(model, x, range(200, 0, -1), sigma2="beta_tilde", generator=_g(2))
    b = sample_ddim(model, x, range(200, 0, -1), eta=1.0, generator=_g(2))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_ddim_eta_zero_is_deterministic_and_ddpm_is_not():
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = timesteps(200, 10)
    a = sample_ddim(EXACT, x, ts, generator=torch.Generator().manual_seed(4))
    b = sample_ddim(EXACT, x, ts, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    c = sample_ddpm(EXACT, x, range(200, 0, -1), generator=torch.Generator().manual_seed(4))
    d = sample_ddpm(EXACT, x, range(200, 0, -1), generator=torch.Generator().manual_seed(5))
    assert not torch.equal(c, d)


def test_samplers_pinned():
    model = Denoiser(_tiny_net(), BETA)
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    a = sample_ddpm(model, x, range(200, 0, -1), clip_x0=1.0, generator=_g(7))
    b = sample_ddim(model, x, timesteps(200, 7), eta=0.5, clip_x0=1.0, generator=_g(7))
    assert a.abs().max() <= 1 + 1e-12 and b.abs().max() <= 1 + 1e-12  # the last step lands on clipped x0
    torch.testing.assert_close(a, torch.tensor(PINNED_DDPM, dtype=torch.float64), rtol=0, atol=1e-8)
    torch.testing.assert_close(b, torch.tensor(PINNED_DDIM, dtype=torch.float64), rtol=0, atol=1e-8)


def test_exact_score_ddpm_reproduces_the_mixture():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    beta = beta_schedule("linear", 1000)  # DDPM's own schedule: fine enough steps
    exact = Denoiser(lambda x, t: mixture_eps(x, t, alpha_bar(beta)), beta)
    s = sample_ddpm(exact, x, range(1000, 0, -1), generator=g)
    data = sample_toy2d("8gaussians", 2000, generator=g, dtype=torch.float64)
    # mean log-density of samples and of data agree (the data's entropy is about -0.32 nats)
    assert abs(float(mixture_log_prob(s).mean() - mixture_log_prob(data).mean())) < 0.1
    # every mode gets about 1/8 of the samples
    angle = torch.atan2(s[:, 1], s[:, 0])
    mode = torch.round(angle / (torch.pi / 4)).long() % 8
    share = torch.bincount(mode, minlength=8).double() / 2000
    assert share.min() > 0.09 and share.max() < 0.16


def test_callback_sees_every_step_in_order():
    seen = []
    x = torch.zeros(3, 2, dtype=torch.float64)
    sample_ddim(EXACT, x, [200, 150, 90, 20], callback=lambda i, t, xt, x0: seen.append((i, t, xt.shape)))
    assert seen == [(0, 200, (3, 2)), (1, 150, (3, 2)), (2, 90, (3, 2)), (3, 20, (3, 2))]


def test_timesteps_grid():
    assert timesteps(1000, 5) == [1000, 750, 500, 251, 1]
    assert timesteps(100, 100) == list(range(100, 0, -1))
    with pytest.raises(ValueError, match="1 <= n <= first <= T"):
        timesteps(10, 20)


def test_bad_input():
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample_ddim(EXACT, x, [10, 20])
    with pytest.raises(ValueError, match="consecutive"):
        sample_ddpm(EXACT, x, [200, 100, 1])
    with pytest.raises(ValueError, match="Denoiser"):
        sample_ddim(lambda x, t: x, x, [2, 1])
    with pytest.raises(ValueError, match="ddpm, ddim, euler_maruyama, euler, heun, dpm_solver, unipc, rk45"):
        get_sampler("lms")


PINNED_DDPM = [[-0.9999999999999963, -0.3643885357972256], [-0.41296595275279363, -0.9814362737584031]]
PINNED_DDIM = [[0.16847246222407294, -1.0], [1.0, 0.4110001215394188]]


def test_swd_difference_is_paired_and_has_a_standard_error():
    from ddpm_nb.bench import swd_difference
    from ddpm_nb.errors import UserError

    g = torch.Generator().manual_seed(0)
    data, a = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
    same, se0 = swd_difference(a, a.clone(), data, 0, boots=20, generator=g)
    assert same == 0.0 and se0 == 0.0
    diff, se = swd_difference(a, a + 1.0, data, 0, boots=50, generator=g)
    assert diff < -0.3 and 0 < se < 0.1
    with pytest.raises(UserError):
        swd_difference(a, a[:10], data, 0)
