"""Samplers. One signature for all: `sample_x(model, x, ts, *, generator=None, callback=None) -> x`.

`model` is a `Denoiser`: a network ε_θ(x_t, t) together with its schedule β (T + 1,).
`x` is the starting noise x_T (B, ...); `ts` the decreasing steps to visit, from ts[0] down to
ts[-1] >= 1, after which the sampler lands on x_0. `callback(i, t, x, x0_hat)` sees every step
(the book draws trajectories with it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .diffusion import p_mean_from_eps, x0_from_eps
from .elbo import reverse_variance
from .schedules import alpha_bar, check_beta

__all__ = ["Denoiser", "SAMPLERS", "timesteps", "sample_ddpm", "sample_ddim", "ddim_encode", "get_sampler"]

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

    def eps(self, x: Tensor, t: int) -> Tensor:
        return self.net(x, torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device))


def timesteps(T: int, n: int, *, first: int | None = None) -> list[int]:
    """n decreasing steps from `first` (default T) to 1, evenly spaced (rounded): the DDIM grid."""
    first = T if first is None else first
    if not 1 <= n <= first <= T:
        raise ValueError(f"Need 1 <= n <= first <= T, got n={n}, first={first}, T={T}.")
    steps = torch.linspace(first, 1, n).round().long().tolist()
    return sorted(set(steps), reverse=True)


def _check(model: Denoiser, x: Tensor, ts) -> list[int]:
    if not isinstance(model, Denoiser):
        raise ValueError("model must be a ddpm_nb.samplers.Denoiser(net, beta).")
    ts = [int(t) for t in ts]
    if not ts or any(a <= b for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] < 1 or ts[0] > model.T:
        raise ValueError(f"ts must be strictly decreasing steps within 1..{model.T}, got {ts[:5]}...")
    return ts


def _noise(x: Tensor, generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@torch.no_grad()
def sample_ddpm(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, sigma2: str = "beta", clip_x0: float | None = None) -> Tensor:
    """Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2), σ_t² = β_t or β̃_t; ts = T, T-1, ..., 1."""
    ts = _check(model, x, ts)
    if any(a - b != 1 for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] != 1:
        raise ValueError("Ancestral DDPM visits every step: ts must be consecutive and end at 1.")
    var = reverse_variance(model.beta, sigma2).to(x)
    for i, t in enumerate(ts):
        # 1. predict the noise, and the clean point it implies (eq. 15)
        eps = model.eps(x, t)
        x0 = x0_from_eps(x, t, eps, model.alpha_bar)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x - model.alpha_bar[t].to(x).sqrt() * x0) / (1 - model.alpha_bar[t].to(x)).sqrt()
        # 2. the mean of p(x_{t-1} | x_t) (eq. 11), 3. add σ_t z except at the last step
        x = p_mean_from_eps(x, t, eps, model.beta)
        if t > 1:
            x = x + var[t].sqrt() * _noise(x, generator)
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def sample_ddim(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, eta: float = 0.0, clip_x0: float | None = None) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12): deterministic for η = 0, DDPM-like for η = 1."""
    ts = _check(model, x, ts)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}.")
    ab = model.alpha_bar.to(x)
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        # 1. predict the noise and x0 (eq. 12, "predicted x0")
        eps = model.eps(x, t)
        x0 = x0_from_eps(x, t, eps, model.alpha_bar)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
        # 2. σ of the step t -> s (eq. 16), 3. point back along the predicted noise, 4. fresh noise
        sigma = eta * ((1 - ab[s]) / (1 - ab[t]) * (1 - ab[t] / ab[s])).sqrt()
        x = ab[s].sqrt() * x0 + (1 - ab[s] - sigma**2).clamp(min=0).sqrt() * eps
        if s > 0 and eta > 0:
            x = x + sigma * _noise(x, generator)
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def ddim_encode(model: Denoiser, x0: Tensor, ts) -> Tensor:
    """Run deterministic DDIM backwards, x_0 -> x_T along increasing steps `ts` (Song et al. 2021, sec. 4.3).

    The latent it returns decodes back to (nearly) x0 with `sample_ddim(model, latent, ts[::-1])`.
    """
    ts = [int(t) for t in ts]
    if not ts or any(a >= b for a, b in zip(ts, ts[1:], strict=False)) or ts[0] < 1 or ts[-1] > model.T:
        raise ValueError(f"ts must be strictly increasing steps within 1..{model.T}.")
    ab = model.alpha_bar.to(x0)
    x, prev = x0, 0
    for t in ts:
        # the noise is predicted where we stand (step `prev`, or step ts[0] from the clean point)
        eps = model.eps(x, max(prev, ts[0]))
        x0_hat = x0_from_eps(x, prev, eps, model.alpha_bar) if prev > 0 else x
        x = ab[t].sqrt() * x0_hat + (1 - ab[t]).sqrt() * eps
        prev = t
    return x


SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim}


def get_sampler(name: str):
    """The sampler function called `name`."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[name]
