"""Checkers for chapter 3 (DDPM: sampling and the score)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion import p_mean_from_eps
from ..schedules import alpha_bar, beta_schedule
from ._core import attempt, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_ddpm_step", "check_ddim_step", "check_langevin_step"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "3.1": (p_mean_from_eps,),
}

_BETA = beta_schedule("linear", 100, beta_start=1e-3, beta_end=0.05)
_AB = alpha_bar(_BETA)


def _data(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(128, 2, generator=g, dtype=torch.float64) for _ in range(3)]


def check_ddpm_step(ddpm_step: Callable) -> None:
    """Exercise 3.1: ddpm_step(xt, t, eps_hat, beta, z) -> x_{t-1}, with σ_t² = β_t and no noise at t = 1."""
    xt, eps, z = _data(31)
    for t in (40, 1):
        got = expect_tensor("3.1", attempt("3.1", ddpm_step, xt, t, eps, _BETA.clone(), z,
                                            forbidden=ANSWERS["3.1"]), xt.shape)
        mean = p_mean_from_eps(xt, t, eps, _BETA)
        want = mean + (_BETA[t].sqrt() * z if t > 1 else 0)
        b, ab = _BETA[t], _AB[t]
        diagnose("3.1", got, want, {
            "At t = 1 the step returns the mean: no noise is added on the last step.":
                mean + _BETA[t].sqrt() * z,
            "The noise must be scaled by σ_t = sqrt(β_t), not β_t.": mean + b * z,
            "The noise coefficient is β_t / sqrt(1 - ᾱ_t), not β_t / (1 - ᾱ_t).":
                (xt - b / (1 - ab) * eps) / (1 - b).sqrt() + (_BETA[t].sqrt() * z if t > 1 else 0),
            "Divide by sqrt(α_t) = sqrt(1 - β_t) after removing the noise.":
                xt - b / (1 - ab).sqrt() * eps + (_BETA[t].sqrt() * z if t > 1 else 0),
        }, hint="x_{t-1} = (x_t - β_t/sqrt(1-ᾱ_t) ε̂)/sqrt(1-β_t) + sqrt(β_t) z; just the mean at t = 1.")
    passed("3.1", "one ancestral DDPM step, noiseless at t = 1.")


def check_ddim_step(ddim_step: Callable) -> None:
    """Exercise 3.2: ddim_step(xt, t, s, eps_hat, alpha_bar) -> x_s, deterministic (η = 0), s < t."""
    xt, eps, _ = _data(32)
    t, s = 80, 35
    got = expect_tensor("3.2", attempt("3.2", ddim_step, xt, t, s, eps, _AB.clone()), xt.shape)
    x0 = (xt - (1 - _AB[t]).sqrt() * eps) / _AB[t].sqrt()
    want = _AB[s].sqrt() * x0 + (1 - _AB[s]).sqrt() * eps
    diagnose("3.2", got, want, {
        "You returned the predicted x_0: DDIM re-noises it to step s with the same ε̂.": x0,
        "Both terms need square roots: sqrt(ᾱ_s) x̂_0 + sqrt(1 - ᾱ_s) ε̂.": _AB[s] * x0 + (1 - _AB[s]) * eps,
        "Use ᾱ at the target step s, not at t.": _AB[t].sqrt() * x0 + (1 - _AB[t]).sqrt() * eps,
    }, hint="x̂_0 = (x_t - sqrt(1-ᾱ_t) ε̂)/sqrt(ᾱ_t); then x_s = sqrt(ᾱ_s) x̂_0 + sqrt(1-ᾱ_s) ε̂.")
    passed("3.2", "the deterministic DDIM update x_t -> x_s.")


def check_langevin_step(langevin_step: Callable) -> None:
    """Exercise 3.3: langevin_step(x, score, step, z) = x + (step/2)·score + sqrt(step)·z."""
    x, score, z = _data(33)
    step = 0.01
    got = expect_tensor("3.3", attempt("3.3", langevin_step, x, score, step, z), x.shape)
    want = x + step / 2 * score + step**0.5 * z
    noise = step**0.5 * z
    diagnose("3.3", got, want, {
        "The drift is (step/2)·score: with a full step the chain samples p², not p.":
            x + step * score + noise,
        "The noise is sqrt(step)·z, not step·z: its variance must be the step.":
            x + step / 2 * score + step * z,
        "Langevin climbs the log-density: add the score, do not subtract it.": x - step / 2 * score + noise,
    }, hint="x' = x + (ε/2)·∇log p(x) + sqrt(ε)·z with ε the step.")
    passed("3.3", "one step of (unadjusted) Langevin dynamics.")
