"""Flow matching (ddpm_nb.flow): the path, its velocity, the loss's minimiser and the Euler sampler."""

from __future__ import annotations

import pytest
import torch

from ddpm_nb import flow
from ddpm_nb.errors import UserError

MU, S = 1.5, 0.4  # data N(μ, s²) in 1-D: the marginal velocity is known in closed form


def exact_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[ε - x0 | x_t = x] for x0 ~ N(μ, s²): jointly Gaussian, so linear in x."""
    t = t.to(x).reshape(-1, 1)
    var = (1 - t) ** 2 * S**2 + t**2
    centred = x - (1 - t) * MU
    return t * centred / var - (MU + (1 - t) * S**2 * centred / var)


def test_the_target_is_the_time_derivative_of_the_path():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g,
                                                                               dtype=torch.float64)
    t, h = torch.rand(5, generator=g, dtype=torch.float64) * 0.8 + 0.1, 1e-6
    fd = (flow.flow_path(x0, eps, t + h) - flow.flow_path(x0, eps, t - h)) / (2 * h)
    assert torch.allclose(fd, flow.flow_target(x0, eps), atol=1e-8)
    assert torch.equal(flow.flow_path(x0, eps, torch.zeros(5, dtype=torch.float64)), x0)


def test_conversions_recover_x0_and_eps_from_the_velocity():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g,
                                                                               dtype=torch.float64)
    t = torch.tensor([0.1, 0.4, 0.7, 0.95], dtype=torch.float64)
    xt, u = flow.flow_path(x0, eps, t), flow.flow_target(x0, eps)
    assert torch.allclose(flow.x0_from_velocity(xt, u, t), x0, atol=1e-12)
    assert torch.allclose(flow.eps_from_velocity(xt, u, t), eps, atol=1e-12)


def test_the_exact_velocity_minimises_the_loss():
    g = torch.Generator().manual_seed(2)
    x0 = MU + S * torch.randn(20000, 1, generator=g, dtype=torch.float64)
    best = flow.flow_loss(exact_velocity, x0, generator=torch.Generator().manual_seed(3))
    for wrong in (lambda x, t: 1.1 * exact_velocity(x, t), lambda x, t: exact_velocity(x, t) + 0.1):
        assert flow.flow_loss(wrong, x0, generator=torch.Generator().manual_seed(3)) > best + 1e-3


def test_euler_on_the_exact_velocity_carries_noise_onto_the_data():
    x = torch.randn(40000, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = flow.sample_flow(exact_velocity, x, flow.flow_times(200))
    se = S / 200  # standard error of the mean of 40000 draws is s/200
    assert abs(float(out.mean()) - MU) < 4 * se and abs(float(out.std()) - S) < 0.01
    # one Euler step from pure noise lands on E[x0 | x_1] = μ for every start: the mean, no spread
    one = flow.sample_flow(exact_velocity, x[:100], flow.flow_times(1))
    assert torch.allclose(one, torch.full_like(one, MU), atol=1e-12)


def test_bad_arguments_get_one_sentence():
    with pytest.raises(UserError, match="decreasing grid"):
        flow.sample_flow(exact_velocity, torch.zeros(2, 1), torch.tensor([0.0, 1.0]))
    with pytest.raises(UserError, match="positive integer"):
        flow.flow_times(0)
    with pytest.raises(UserError, match="one time per sample"):
        flow.flow_path(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(UserError, match="shape of its input"):
        flow.flow_loss(lambda x, t: x[:, :1], torch.zeros(4, 2))
