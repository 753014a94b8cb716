"""Checkers for chapter 2 (the ELBO)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion import gaussian_kl, posterior_mean_var, x0_from_eps
from ..schedules import alpha_bar, beta_schedule
from ._core import attempt, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_posterior_mean", "check_gaussian_kl", "check_x0_from_eps"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "2.1": (posterior_mean_var,),
    "2.2": (gaussian_kl,),
    "2.3": (x0_from_eps,),
}

_BETA = beta_schedule("linear", 50, beta_start=1e-3, beta_end=0.2)
_AB = alpha_bar(_BETA)


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(64, 2, generator=g, dtype=torch.float64),
            torch.randn(64, 2, generator=g, dtype=torch.float64))


def check_posterior_mean(posterior_mean: Callable) -> None:
    """Exercise 2.1: posterior_mean(x0, xt, t, beta) -> μ̃_t (B, D), for an int t >= 2."""
    x0, xt = _inputs(21)
    t = 17
    got = expect_tensor("2.1", attempt("2.1", posterior_mean, x0, xt, t, _BETA.clone(),
                                        forbidden=ANSWERS["2.1"]), x0.shape)
    want, _ = posterior_mean_var(x0, xt, t, _BETA)
    ab_t, ab_p, b = _AB[t], _AB[t - 1], _BETA[t]
    c0, ct = ab_p.sqrt() * b / (1 - ab_t), (1 - b).sqrt() * (1 - ab_p) / (1 - ab_t)
    diagnose("2.1", got, want, {
        "The two coefficients are swapped: the one with β_t multiplies x_0, the one with (1 - ᾱ_{t-1}) "
        "multiplies x_t.": ct * x0 + c0 * xt,
        "You used ᾱ_t where ᾱ_{t-1} belongs (in sqrt(ᾱ_{t-1}) and in 1 - ᾱ_{t-1}).":
            ab_t.sqrt() * b / (1 - ab_t) * x0 + (1 - b).sqrt() * (1 - ab_t) / (1 - ab_t) * xt,
        "The square roots are missing: sqrt(ᾱ_{t-1}) and sqrt(α_t).":
            ab_p * b / (1 - ab_t) * x0 + (1 - b) * (1 - ab_p) / (1 - ab_t) * xt,
    }, hint="μ̃_t = sqrt(ᾱ_{t-1}) β_t/(1-ᾱ_t) · x_0 + sqrt(α_t)(1-ᾱ_{t-1})/(1-ᾱ_t) · x_t, with "
            "beta[t] = β_t and alpha_bar computed from beta.")
    passed("2.1", "the posterior mean μ̃_t(x_t, x_0).")


def check_gaussian_kl(kl: Callable) -> None:
    """Exercise 2.2: kl(m1, v1, m2, v2) = KL(N(m1, v1) || N(m2, v2)) elementwise, in nats."""
    g = torch.Generator().manual_seed(22)
    m1 = torch.randn(100, generator=g, dtype=torch.float64)
    m2 = torch.randn(100, generator=g, dtype=torch.float64)
    v1 = torch.rand(100, generator=g, dtype=torch.float64) + 0.1
    v2 = torch.rand(100, generator=g, dtype=torch.float64) + 0.1
    got = expect_tensor("2.2", attempt("2.2", kl, m1, v1, m2, v2, forbidden=ANSWERS["2.2"]), m1.shape)
    diagnose("2.2", got, gaussian_kl(m1, v1, m2, v2), {
        "This is KL(p || q): the divergence is not symmetric; the first Gaussian is the one the "
        "expectation is taken under.": gaussian_kl(m2, v2, m1, v1),
        "The factor 1/2 is missing.": 2 * gaussian_kl(m1, v1, m2, v2),
        "You took the log of the standard deviations' ratio without the factor 2 (log σ2/σ1 = ½ log v2/v1).":
            gaussian_kl(m1, v1, m2, v2) - 0.25 * torch.log(v2 / v1),
    }, hint="KL = ½ [log(v2/v1) + (v1 + (m1 - m2)²)/v2 - 1].")
    passed("2.2", "KL between two Gaussians in closed form.")


def check_x0_from_eps(x0_from_noise: Callable) -> None:
    """Exercise 2.3: x0_from_noise(xt, t, eps, alpha_bar) -> x_0 (B, D), for an int t."""
    xt, eps = _inputs(23)
    t = 30
    got = expect_tensor("2.3", attempt("2.3", x0_from_noise, xt, t, eps, _AB.clone(),
                                        forbidden=ANSWERS["2.3"]), xt.shape)
    ab = _AB[t]
    diagnose("2.3", got, x0_from_eps(xt, t, eps, _AB), {
        "The square roots are missing: divide by sqrt(ᾱ_t) and scale ε by sqrt(1 - ᾱ_t).":
            (xt - (1 - ab) * eps) / ab,
        "The sign of the noise is flipped: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, so subtract it.":
            (xt + (1 - ab).sqrt() * eps) / ab.sqrt(),
        "You forgot to divide by sqrt(ᾱ_t).": xt - (1 - ab).sqrt() * eps,
    }, hint="solve x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε for x_0.")
    passed("2.3", "x_0 recovered from x_t and the noise.")
