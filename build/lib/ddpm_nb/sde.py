"""Continuous time: the discrete DDPM chain as a variance-preserving SDE, and its probability-flow ODE.

With ᾱ(t) interpolated between the steps (log ᾱ by a monotone cubic through the values at the integer
steps, `ddpm_nb.schedules.log_alpha_bar_at`, so b is continuous and adaptive ODE solvers are not
slowed by a jump at every step), the
forward chain is the VP-SDE dx = -½ b(t) x dt + sqrt(b(t)) dW with b(t) = -d log ᾱ/dt (Song et al.
2021, eq. 11; b(t) ≈ β_t per unit step). Its reverse-time SDE and its probability-flow ODE share
the marginals:
  reverse SDE:  dx = [-½ b x - b ∇log p_t(x)] dt + sqrt(b) dW̄            (eq. 6)
  PF-ODE:       dx/dt = -½ b(t) [x + ∇log p_t(x)]                        (eq. 13)
and the score comes from the noise predictor: ∇log p_t(x) = -ε_θ(x, t) / σ(t), σ = sqrt(1 - ᾱ).
"""

from __future__ import annotations

import math

import torch

from . import schedules
from .errors import UserError

__all__ = [
    "log_alpha_bar_at", "alpha_sigma", "b_at", "eps_at", "score_at", "pf_ode_drift", "reverse_sde_drift",
    "vp_sde", "ve_sde",
]

Tensor = torch.Tensor


def log_alpha_bar_at(model, t) -> Tensor:
    """log ᾱ(t) for real t ∈ [0, T] of a Denoiser's schedule: `ddpm_nb.schedules.log_alpha_bar_at`
    (equal to the schedule at integer steps, a monotone cubic in between), float64 on the CPU."""
    return schedules.log_alpha_bar_at(model.beta.double().cpu(), t)


def alpha_sigma(model, t) -> tuple[Tensor, Tensor]:
    """α(t) = sqrt(ᾱ(t)) and σ(t) = sqrt(1 - ᾱ(t)): x_t = α x_0 + σ ε."""
    ab = torch.exp(log_alpha_bar_at(model, t))
    return ab.sqrt(), (1 - ab).clamp(min=0).sqrt()


def b_at(model, t) -> Tensor:
    """b(t) = -d log ᾱ/dt, continuous; it averages -log(1 - β_t) ≈ β_t over each step (t-1, t]."""
    return -schedules.log_alpha_bar_slope_at(model.beta.double().cpu(), t)


def eps_at(model, x: Tensor, t: float) -> Tensor:
    """ε_θ(x, t) at a real time t: the network is called with a float step (its embedding is smooth)."""
    return model.net(x, torch.full((x.shape[0],), float(t), dtype=torch.float32, device=x.device)).to(x)


def score_at(model, x: Tensor, t: float) -> Tensor:
    """∇log p_t(x) = -ε_θ(x, t)/σ(t), for t > 0."""
    _, sigma = alpha_sigma(model, t)
    if float(sigma) == 0:
        raise UserError("The score from ε is undefined at t = 0 (σ = 0): use t > 0.")
    return -eps_at(model, x, t) / float(sigma)


def pf_ode_drift(model, x: Tensor, t: float) -> Tensor:
    """dx/dt of the probability-flow ODE: -½ b(t) (x - ε_θ/σ(t))."""
    return -0.5 * float(b_at(model, t)) * (x + score_at(model, x, t))


def reverse_sde_drift(model, x: Tensor, t: float) -> Tensor:
    """Forward-time drift of the reverse SDE, -½ b x - b ∇log p; its diffusion is sqrt(b(t))."""
    b = float(b_at(model, t))
    return -0.5 * b * x - b * score_at(model, x, t)


def vp_sde(t: Tensor, beta_min: float = 0.1, beta_max: float = 20.0) -> dict[str, Tensor]:
    """VP-SDE on t ∈ [0, 1]: drift -½β(t)x, diffusion sqrt(β(t)); marginal mean coeff. and variance."""
    t = torch.as_tensor(t, dtype=torch.float64)
    beta = beta_min + t * (beta_max - beta_min)
    log_mean = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    return {"drift_coeff": -0.5 * beta, "diffusion": beta.sqrt(), "mean_coeff": log_mean.exp(),
            "var": 1 - torch.exp(2 * log_mean)}


def ve_sde(t: Tensor, sigma_min: float = 0.01, sigma_max: float = 50.0) -> dict[str, Tensor]:
    """VE-SDE on t ∈ [0, 1]: no drift, σ(t) = σ_min (σ_max/σ_min)^t, diffusion sqrt(dσ²/dt)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    sigma = sigma_min * (sigma_max / sigma_min) ** t
    diffusion = sigma * math.sqrt(2 * math.log(sigma_max / sigma_min))
    return {"drift_coeff": torch.zeros_like(t), "diffusion": diffusion, "mean_coeff": torch.ones_like(t),
            "var": sigma**2 - sigma_min**2}
