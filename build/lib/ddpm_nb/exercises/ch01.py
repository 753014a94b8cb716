"""Checkers for chapter 1 (the Markov property and the forward chain)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion import q_mean_var, q_sample, q_step, simulate_forward
from ..markov import gaussian_chain, stationary_distribution
from ..schedules import alpha_bar, beta_schedule
from ._core import ExerciseWrong, attempt, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_forward_step", "check_alpha_bar", "check_stationary", "check_forward_chain"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "1.1": (q_step,),
    "1.2": (alpha_bar,),
    "1.3": (stationary_distribution,),
    "1.5": (q_step, simulate_forward, gaussian_chain, q_sample, q_mean_var, alpha_bar),
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


# ---------------------------------------------------------------- 1.5 (build): the chain and its closed form


def chain_reference(x0: torch.Tensor, beta: torch.Tensor, eps: torch.Tensor, *, noise_scale=None,
                    signal_scale=None, beta_shift: int = 0, eps_row=None) -> torch.Tensor:
    """The path (T + 1, B, D) of x_t = sqrt(1 - β_t) x_{t-1} + sqrt(β_t) ε_t with ε_t = eps[t].

    The keywords make the slips the checker names: other scales, β_{t - beta_shift}, ε = eps[eps_row(t)]."""
    T = beta.shape[0] - 1
    path = [x0]
    for t in range(1, T + 1):
        b = beta[t - beta_shift]
        a_t = (1 - b).sqrt() if signal_scale is None else signal_scale(b)
        s_t = b.sqrt() if noise_scale is None else noise_scale(b)
        path.append(a_t * path[-1] + s_t * eps[t if eps_row is None else eps_row(t)])
    return torch.stack(path)


def combined_reference(eps: torch.Tensor, beta: torch.Tensor, *, shrink: bool = True) -> torch.Tensor:
    """ε̄ (T + 1, B, D) with x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε̄_t along the path of `eps`; ε̄_0 = 0.

    ε̄_t = (sqrt(α_t (1 - ᾱ_{t-1})) ε̄_{t-1} + sqrt(β_t) ε_t) / sqrt(1 - ᾱ_t);
    shrink=False drops α_t (a slip)."""
    ab = alpha_bar(beta)
    out = [torch.zeros_like(eps[0])]
    for t in range(1, beta.shape[0]):
        keep = (1 - beta[t]) * (1 - ab[t - 1]) if shrink else 1 - ab[t - 1]
        out.append((keep.sqrt() * out[-1] + beta[t].sqrt() * eps[t]) / (1 - ab[t]).sqrt())
    return torch.stack(out)


def _chain_inputs():
    g = torch.Generator().manual_seed(15)
    T, B, D = 30, 128, 2
    beta = beta_schedule("linear", T, beta_start=0.02, beta_end=0.3)
    shift = torch.tensor([1.0, -0.5], dtype=torch.float64)
    x0 = 2 * torch.randn(B, D, generator=g, dtype=torch.float64) + shift
    eps = torch.randn(T + 1, B, D, generator=g, dtype=torch.float64)
    eps[0] = 0  # not used: ε_t is eps[t], t = 1..T
    return beta, x0, eps


def _expect_path(exercise: str, out, T: int, rest: tuple, what: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (T, *rest):
        raise ExerciseWrong(f"Exercise {exercise}: {what} has {T} rows; it needs T + 1 = {T + 1}, row t "
                            "for step t, row 0 included.")
    return expect_tensor(exercise, out, (T + 1, *rest))


def check_forward_chain(forward_chain: Callable, jump: Callable, combined_noise: Callable) -> None:
    """Exercise 1.5: forward_chain(x0, beta, eps) -> path (T + 1, B, D); jump(x0, t, alpha_bar, eps_bar)
    -> x_t (B, D); combined_noise(eps, beta) -> ε̄ (T + 1, B, D); eps and ε̄ indexed by step (row 0 unused
    / zero). Exact comparisons (float64) with the reference, slips named, then the closed form along the
    student's own paths: forward_chain(...)[t] = jump(x0, t, ᾱ, combined_noise(eps, beta)[t]) for all t."""
    beta, x0, eps = _chain_inputs()
    T, shape = beta.shape[0] - 1, tuple(x0.shape)
    ab = alpha_bar(beta)
    forbidden = ANSWERS["1.5"]

    # 1. the chain, step by step
    out = attempt("1.5", forward_chain, x0.clone(), beta.clone(), eps.clone(), forbidden=forbidden)
    path = _expect_path("1.5", out, T, shape, "the path from `forward_chain`")
    diagnose("1.5", path, chain_reference(x0, beta, eps), {
        "`forward_chain`: the noise is scaled by β_t; it should be sqrt(β_t) (β_t is a variance).":
            chain_reference(x0, beta, eps, noise_scale=lambda b: b),
        "`forward_chain`: the signal is scaled by (1 - β_t); it should be sqrt(1 - β_t).":
            chain_reference(x0, beta, eps, signal_scale=lambda b: 1 - b),
        "`forward_chain`: step t used β_{t-1}; index t of beta holds β_t (beta[0] = 0 is not a step).":
            chain_reference(x0, beta, eps, beta_shift=1),
        "`forward_chain`: step t used eps[t - 1]; ε_t is eps[t] (row 0 is not used).":
            chain_reference(x0, beta, eps, eps_row=lambda t: t - 1),
        "`forward_chain`: every step used the same noise; each step t draws its own, eps[t].":
            chain_reference(x0, beta, eps, eps_row=lambda t: 1),
    }, hint="path[0] = x0, then for t = 1..T: path[t] = sqrt(1 - beta[t]) path[t-1] + sqrt(beta[t]) eps[t].",
        tol=1e-9)

    # 2. the jump to step t in one draw
    for t in (1, 9, T):
        xi = eps[t]
        out = attempt("1.5", jump, x0.clone(), t, ab.clone(), xi.clone(), forbidden=forbidden)
        got = expect_tensor("1.5", out, shape)
        diagnose("1.5", got, ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * xi, {
            "`jump`: the square roots are missing: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε̄ (1 - ᾱ_t is a "
            "variance).": ab[t] * x0 + (1 - ab[t]) * xi,
            "`jump`: you used ᾱ_{t-1}; the closed form at step t uses alpha_bar[t].":
                ab[t - 1].sqrt() * x0 + (1 - ab[t - 1]).sqrt() * xi,
            "`jump`: the noise is scaled by sqrt(ᾱ_t); it should be sqrt(1 - ᾱ_t).":
                ab[t].sqrt() * (x0 + xi),
        }, hint=f"at t = {t}: x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps_bar.", tol=1e-9)

    # 3. the noise of the jump, from the noises of the steps
    out = attempt("1.5", combined_noise, eps.clone(), beta.clone(), forbidden=forbidden)
    bar = _expect_path("1.5", out, T, shape, "ε̄ from `combined_noise`")
    want = combined_reference(eps, beta)
    steps = torch.arange(1, T + 1, dtype=eps.dtype).reshape(-1, 1, 1)
    diagnose("1.5", bar[1:], want[1:], {
        "`combined_noise` returned the noise part of x_t, sqrt(1 - ᾱ_t) ε̄_t: divide by sqrt(1 - ᾱ_t), "
        "so that ε̄_t ~ N(0, I).": (1 - ab[1:]).sqrt().reshape(-1, 1, 1) * want[1:],
        "`combined_noise`: ε̄_t is not the plain average of ε_1..ε_t: each earlier noise has been shrunk "
        "by the sqrt(α_s) of every later step, so recent noises weigh more.":
            torch.cumsum(eps[1:], 0) / steps.sqrt(),
        "`combined_noise`: the step t also shrinks the earlier noise by sqrt(α_t): ε̄_t = (sqrt(α_t (1 - "
        "ᾱ_{t-1})) ε̄_{t-1} + sqrt(β_t) ε_t) / sqrt(1 - ᾱ_t).":
            combined_reference(eps, beta, shrink=False)[1:],
        "`combined_noise` returned the step noises themselves: ε̄_t mixes all of ε_1..ε_t.": eps[1:],
    }, hint="write x_t - sqrt(ᾱ_t) x_0 as sqrt(α_t)(x_{t-1} - sqrt(ᾱ_{t-1}) x_0) + sqrt(β_t) ε_t and "
            "divide by sqrt(1 - ᾱ_t): a recursion from ε̄_0 = 0.", tol=1e-9)

    # 4. the closed form along the student's own paths (implied by 1-3; stated as the chapter states it)
    worst = max(float((attempt("1.5", jump, x0.clone(), t, ab.clone(), bar[t].clone(), forbidden=forbidden)
                       - path[t]).abs().max()) for t in range(1, T + 1))
    if worst > 1e-9:
        raise ExerciseWrong(f"Exercise 1.5: not yet. jump(x0, t, ᾱ, ε̄_t) differs from the chain's x_t by "
                            f"{worst:.3g}.")
    passed("1.5", f"the chain step by step = the closed form in one jump, at all {T} steps of "
                  f"{shape[0]} paths.")
