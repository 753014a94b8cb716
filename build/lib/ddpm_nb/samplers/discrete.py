"""Samplers on the integer steps of the chain: ancestral DDPM, DDIM, and DDIM run backwards (encoding)."""

from __future__ import annotations

import torch

from ..diffusion import p_mean_from_eps, reverse_variance, x0_from_eps
from ..errors import UserError
from .denoiser import Denoiser, check_steps, noise_like

__all__ = ["sample_ddpm", "sample_ddim", "ddim_encode"]

Tensor = torch.Tensor


@torch.no_grad()
def sample_ddpm(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, sigma2: str = "beta", clip_x0: float | None = None) -> Tensor:
    """Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2), σ_t² = β_t or β̃_t; ts = T, T-1, ..., 1."""
    ts = check_steps(model, x, ts)
    if any(a - b != 1 for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] != 1:
        raise UserError("Ancestral DDPM visits every step: ts must be consecutive and end at 1.")
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
            x = x + var[t].sqrt() * noise_like(x, generator)
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def sample_ddim(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, eta: float = 0.0, clip_x0: float | None = None) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12): deterministic for η = 0, DDPM-like for η = 1."""
    ts = check_steps(model, x, ts)
    if eta < 0:
        raise UserError(f"eta must be >= 0, got {eta}.")
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
            x = x + sigma * noise_like(x, generator)
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
        raise UserError(f"ts must be strictly increasing steps within 1..{model.T}.")
    ab = model.alpha_bar.to(x0)
    x, prev = x0, 0
    for t in ts:
        # the noise is predicted where we stand (step `prev`, or step ts[0] from the clean point)
        eps = model.eps(x, max(prev, ts[0]))
        x0_hat = x0_from_eps(x, prev, eps, model.alpha_bar) if prev > 0 else x
        x = ab[t].sqrt() * x0_hat + (1 - ab[t]).sqrt() * eps
        prev = t
    return x
