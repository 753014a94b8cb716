"""Checkers for chapter 1 (the Markov property and the forward chain)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion import q_step
from ..markov import stationary_distribution
from ..schedules import alpha_bar, beta_schedule
from ._core import ExerciseWrong, attempt, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_forward_step", "check_alpha_bar", "check_stationary"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "1.1": (q_step,),
    "1.2": (alpha_bar,),
    "1.3": (stationary_distribution,),
}


def check_forward_step(forward_step: Callable) -> None:
    """Exercise 1.1: forward_step(x_prev, beta_t, eps) -> x_t, one step of q(x_t | x_{t-1})."""
    g = torch.Generator().manual_seed(11)
    x_prev, eps = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
    beta = 0.3  # passed as a 0-d tensor: math.sqrt and torch.sqrt both accept it
    out = attempt("1.1", forward_step, x_prev, torch.tensor(beta), eps, forbidden=ANSWERS["1.1"])
    got = expect_tensor("1.1", out, x_prev.shape)
    sb, s1 = beta**0.5, (1 - beta) ** 0.5
    diagnose("1.1", got, q_step(x_prev, beta, eps), {
        "The noise is scaled by β_t; it should be sqrt(β_t), so that the variance added is β_t.":
            s1 * x_prev + beta * eps,
        "The signal is scaled by (1 - β_t); it should be sqrt(1 - β_t).": (1 - beta) * x_prev + sb * eps,
        "Both scales lack their square roots: x_t = sqrt(1 - β_t) x_{t-1} + sqrt(β_t) ε.":
            (1 - beta) * x_prev + beta * eps,
    }, hint="x_t = sqrt(1 - β_t)·x_{t-1} + sqrt(β_t)·ε, elementwise.")
    passed("1.1", "one step of q(x_t | x_{t-1}), noise scaled by sqrt(β_t).")


def check_alpha_bar(alpha_bar_from_beta: Callable) -> None:
    """Exercise 1.2: alpha_bar_from_beta(beta) -> ᾱ, both (T + 1,) with β_0 = 0 and ᾱ_0 = 1."""
    beta = beta_schedule("linear", 50, beta_start=0.01, beta_end=0.2)
    out = attempt("1.2", alpha_bar_from_beta, beta.clone(), forbidden=ANSWERS["1.2"])
    got = expect_tensor("1.2", out, beta.shape)
    want = alpha_bar(beta)
    diagnose("1.2", got, want, {
        "You summed the β's: ᾱ_t is a product, Π_{s<=t} (1 - β_s), not 1 - Σ β_s.": 1 - torch.cumsum(beta, 0),
        "You multiplied the β's themselves: multiply (1 - β_s) instead.": torch.cumprod(beta, 0),
        "Off by one step: index t must hold Π_{s=1..t} (1 - β_s), and index 0 holds ᾱ_0 = 1.":
            torch.cat([torch.ones(1, dtype=beta.dtype), want[:-1]]),
    }, hint="use torch.cumprod over (1 - beta); beta[0] = 0 makes ᾱ_0 = 1 automatically.")
    passed("1.2", "ᾱ_t = Π (1 - β_s), with ᾱ_0 = 1.")


def check_stationary(stationary: Callable) -> None:
    """Exercise 1.3: stationary(P) -> π (S,) with π P = π, π >= 0, Σ π = 1."""
    g = torch.Generator().manual_seed(13)
    for S in (2, 3, 5):
        P = torch.rand(S, S, generator=g, dtype=torch.float64) + 0.05
        P = P / P.sum(1, keepdim=True)
        out = attempt("1.3", stationary, P.clone(), forbidden=ANSWERS["1.3"])
        got = expect_tensor("1.3", out, (S,)).double()
        if torch.allclose(got, torch.full_like(got, float(got[0])), atol=1e-9) and not torch.allclose(
                got, stationary_distribution(P), atol=1e-6):
            raise ExerciseWrong("Exercise 1.3: not yet. Every entry is equal: that is the right "
                                "eigenvector of P (P·1 = 1). You need a left one: π P = π, i.e. an "
                                "eigenvector of P.T.")
        if abs(got.sum().item() - 1) > 1e-6:
            raise ExerciseWrong(f"Exercise 1.3: not yet. π sums to {got.sum().item():.4g}; a law "
                                "must sum to 1: divide by its sum.")
        if torch.any(got < -1e-9):
            raise ExerciseWrong("Exercise 1.3: not yet. π has negative entries; if you took an "
                                "eigenvector, fix its sign before normalising.")
        resid = (got @ P - got).abs().max().item()
        if resid > 1e-6:
            raise ExerciseWrong(f"Exercise 1.3: not yet. π P differs from π by {resid:.3g} for a "
                                f"{S}-state chain. Hint: solve π (P - I) = 0 with Σ π = 1.")
    passed("1.3", "π P = π with Σ π = 1 on chains of 2, 3 and 5 states.")
