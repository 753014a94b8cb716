"""Checkers for chapter 4 (the SDE/ODE view: Euler–Maruyama, Heun, DDIM as an ODE step)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import attempt, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_em_step", "check_heun_step", "check_ddim_ode_step"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {}


def _data(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(128, 2, generator=g, dtype=torch.float64) for _ in range(3)]


def check_em_step(em_step: Callable) -> None:
    """Exercise 4.1: em_step(x, score, b, h, z) -> x at t - h: Euler–Maruyama on the reverse VP-SDE."""
    x, score, z = _data(41)
    b, h = 7.5, 0.01
    got = expect_tensor("4.1", attempt("4.1", em_step, x, score, b, h, z), x.shape)
    noise = (b * h) ** 0.5 * z
    want = x + h * (0.5 * b * x + b * score) + noise
    diagnose("4.1", got, want, {
        "That is the probability-flow ODE (½ b ∇log p): the reverse SDE has b ∇log p and adds noise.":
            x + h * (0.5 * b * x + 0.5 * b * score),
        "The noise is sqrt(b h) z: its variance is the diffusion coefficient squared times the step.":
            x + h * (0.5 * b * x + b * score) + h**0.5 * z,
        "The noise is sqrt(b h) z, not b h z.": x + h * (0.5 * b * x + b * score) + b * h * z,
        "Going back in time flips the sign of the forward drift -½ b x: add +½ b x h.":
            x + h * (-0.5 * b * x + b * score) + noise,
        "The score term pulls towards the data: add b ∇log p h, do not subtract it.":
            x + h * (0.5 * b * x - b * score) + noise,
    }, hint="x_{t-h} = x_t + h (½ b x_t + b ∇log p_t(x_t)) + sqrt(b h) z.")
    passed("4.1", "one Euler–Maruyama step of the reverse-time VP-SDE.")


def _drift(x: torch.Tensor, t: float) -> torch.Tensor:
    """A made-up nonlinear, time-dependent drift to test the integrator with."""
    return torch.sin(x) * (1 + t) - 0.3 * x.flip(1) * t


def check_heun_step(heun_step: Callable) -> None:
    """Exercise 4.2: heun_step(f, x, t, s) -> x at s < t: Heun's method on dx/dt = f(x, t), backwards."""
    x, _, _ = _data(42)
    t, s = 0.8, 0.5
    got = expect_tensor("4.2", attempt("4.2", heun_step, _drift, x, t, s), x.shape)
    h = t - s
    d = _drift(x, t)
    want = x - h * 0.5 * (d + _drift(x - h * d, s))
    diagnose("4.2", got, want, {
        "That is a plain Euler step: Heun averages the slope at the start with the slope at the Euler guess.":
            x - h * d,
        "The second slope is taken at time s (the end of the step), not at t.":
            x - h * 0.5 * (d + _drift(x - h * d, t)),
        "The step goes backwards in time (s < t): the Euler guess is x - (t - s) f(x, t).":
            x - h * 0.5 * (d + _drift(x + h * d, s)),
        "Average the two slopes (½ each), do not add them.": x - h * (d + _drift(x - h * d, s)),
    }, hint="d = f(x, t); x̃ = x - (t - s) d; return x - (t - s)·½(d + f(x̃, s)).")
    passed("4.2", "one Heun (trapezoidal predictor-corrector) step.")


def check_ddim_ode_step(ddim_ode_step: Callable) -> None:
    """Exercise 4.3: ddim_ode_step(x, eps_hat, a_t, s_t, a_s, s_s): Euler in (σ/α, x/α) equals DDIM."""
    x, eps, _ = _data(43)
    a_t, s_t, a_s, s_s = 0.6, 0.8, 0.96, 0.28
    got = expect_tensor("4.3", attempt("4.3", ddim_ode_step, x, eps, a_t, s_t, a_s, s_s), x.shape)
    x0 = (x - s_t * eps) / a_t
    want = a_s * x0 + s_s * eps
    diagnose("4.3", got, want, {
        "You returned x̄ = x/α at the new time: multiply back by α_s.":
            x / a_t + (s_s / a_s - s_t / a_t) * eps,
        "The step in σ̄ = σ/α goes from σ_t/α_t down to σ_s/α_s; use that difference.":
            a_s * (x / a_t + (s_s - s_t) * eps),
        "Divide x_t by α_t before stepping: the ODE is simple in x̄ = x/α.":
            a_s * (x + (s_s / a_s - s_t / a_t) * eps),
    }, hint="x̄ = x/α_t; x̄' = x̄ + (σ_s/α_s - σ_t/α_t) ε̂; return α_s x̄'.")
    passed("4.3", "DDIM (η = 0) is an Euler step of the ODE dx̄/dσ̄ = ε̂ — here it agrees with DDIM's update.")
