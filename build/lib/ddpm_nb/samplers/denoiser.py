"""A noise predictor paired with its schedule: what every sampler takes as `model`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..diffusion import noise_like
from ..errors import UserError
from ..schedules import alpha_bar, check_beta

__all__ = ["Denoiser", "check_steps", "check_times", "noise_like"]

Tensor = torch.Tensor


@dataclass
class Denoiser:
    """A noise predictor with its schedule: `eps(x, t)` calls `net(x, t)` with t a (B,) long tensor."""

    net: Callable[[Tensor, Tensor], Tensor]
    beta: Tensor

    def __post_init__(self):
        check_beta(self.beta)
        self.alpha_bar = alpha_bar(self.beta)

    @property
    def T(self) -> int:
        return self.beta.shape[0] - 1

    @property
    def device(self) -> torch.device:
        """Where the network's weights live, so where its inputs go (the CPU for a plain function)."""
        params = getattr(self.net, "parameters", None)
        first = next(params(), None) if callable(params) else None
        return torch.device("cpu") if first is None else first.device

    def eps(self, x: Tensor, t: int) -> Tensor:
        return self.net(x, torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device))


def check_steps(model: Denoiser, x: Tensor, ts) -> list[int]:
    """The integer steps of a discrete sampler: non-empty, strictly decreasing, within 1..T."""
    if not isinstance(model, Denoiser):
        raise UserError("model must be a ddpm_nb.samplers.Denoiser(net, beta).")
    ts = [int(t) for t in ts]
    if not ts or any(a <= b for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] < 1 or ts[0] > model.T:
        raise UserError(f"ts must be strictly decreasing steps within 1..{model.T}, got {ts[:5]}...")
    return ts


def check_times(model: Denoiser, ts) -> list[float]:
    """The real times of a continuous-time sampler: at least two, strictly decreasing, in (0, T]."""
    if not isinstance(model, Denoiser):
        raise UserError("model must be a ddpm_nb.samplers.Denoiser(net, beta).")
    ts = [float(t) for t in ts]
    if len(ts) < 2 or any(a <= b for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] <= 0 or ts[0] > model.T:
        raise UserError(f"ts must be at least two strictly decreasing times in (0, {model.T}].")
    return ts
