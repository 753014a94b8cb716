"""2-D toy data: the 8-Gaussian mixture (exact density), the swiss roll and two moons."""

from __future__ import annotations

import math

import torch

from ..checks import check_shape
from ..errors import UserError

__all__ = ["TOY2D", "sample_toy2d", "mixture_params", "mixture_log_prob", "mixture_eps"]

TOY2D = ("8gaussians", "swissroll", "moons")
Tensor = torch.Tensor


def mixture_params(n_modes: int = 8, radius: float = 2.0, std: float = 0.1) -> tuple[Tensor, float]:
    """Centres (n_modes, 2) on a circle of `radius`, and the common standard deviation."""
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1), std


def mixture_log_prob(x: Tensor, n_modes: int = 8, radius: float = 2.0, std: float = 0.1) -> Tensor:
    """Exact log-density of the equal-weight Gaussian mixture at x (N, 2): shape (N,), in nats."""
    check_shape("x", x, (None, 2))
    centres, std = mixture_params(n_modes, radius, std)
    d2 = ((x.double().unsqueeze(1) - centres) ** 2).sum(-1)  # (N, K)
    log_n = -d2 / (2 * std**2) - math.log(2 * math.pi * std**2)
    return (torch.logsumexp(log_n, 1) - math.log(n_modes)).to(x.dtype)


def sample_toy2d(name: str, n: int, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """n points (n, 2) of a 2-D toy set: '8gaussians' (std 0.1, radius 2), 'swissroll' or 'moons'."""
    if name not in TOY2D:
        raise UserError(f"Unknown 2-D data set {name!r}: choose one of {', '.join(TOY2D)}.")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise UserError(f"n must be a positive integer, got {n!r}.")
    if name == "8gaussians":
        centres, std = mixture_params()
        k = torch.randint(0, centres.shape[0], (n,), generator=generator)
        x = centres[k] + std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    elif name == "swissroll":
        u = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
        x = torch.stack([u * torch.cos(u), u * torch.sin(u)], 1) / 5
        x = x + 0.1 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    else:
        upper = torch.rand(n, generator=generator) < 0.5
        u = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        x = torch.where(upper.unsqueeze(1),
                        torch.stack([torch.cos(u), torch.sin(u)], 1),
                        torch.stack([1 - torch.cos(u), 0.5 - torch.sin(u)], 1))
        x = (x - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 1.5
        x = x + 0.05 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.to(dtype)


def mixture_eps(xt: Tensor, t: Tensor, alpha_bar: Tensor, n_modes: int = 8, radius: float = 2.0,
                std: float = 0.1) -> Tensor:
    """The exact noise predictor ε*(x_t, t) = -sqrt(1 - ᾱ_t) ∇ log q_t(x_t) for the mixture, (B, 2).

    Under q, x_t is again a Gaussian mixture: centres sqrt(ᾱ_t) c_k, variance ᾱ_t std² + 1 - ᾱ_t.
    The optimum of L_simple; used to separate what the model gets wrong from what the bound costs.
    """
    check_shape("xt", xt, (None, 2))
    centres, std = mixture_params(n_modes, radius, std)
    ab = alpha_bar.to(torch.float64)[torch.as_tensor(t).to(torch.long).cpu()].reshape(-1, 1, 1)
    x = xt.double().cpu().unsqueeze(1)  # (B, 1, 2)
    mu = ab.sqrt() * centres  # (B or 1, K, 2)
    var = ab * std**2 + 1 - ab  # (B or 1, 1, 1)
    logw = -((x - mu) ** 2).sum(-1, keepdim=True) / (2 * var)  # (B, K, 1)
    w = torch.softmax(logw, dim=1)
    score = (w * (mu - x) / var).sum(1)  # (B, 2)
    return (-(1 - ab.reshape(-1, 1)).sqrt() * score).to(xt)
