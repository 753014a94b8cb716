"""Checkers for chapter 6 (NoProp: the residual coefficients, the block weights, one inference step)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..noprop import alphas_from, block_weights, noprop_alpha_bar, residual_coefficients
from ._core import ExerciseWrong, attempt, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_abc", "check_block_weight", "check_inference_step"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "6.1": (residual_coefficients, alphas_from),
    "6.2": (block_weights,),
    "6.3": (residual_coefficients,),
}

_T = 8
_AB = noprop_alpha_bar("cosine", _T)


def _as_tensor(exercise: str, value) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64).reshape(())
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseWrong(f"Exercise {exercise}: return numbers (floats or 0-d tensors), "
                            f"got {type(value).__name__}.") from None


def check_abc(abc: Callable) -> None:
    """Exercise 6.1: abc(alpha_bar, t) -> (a_t, b_t, c_t), NoProp's convention (ᾱ grows towards the label)."""
    alpha = alphas_from(_AB)
    a, b, c = residual_coefficients(_AB)
    for t in (1, 4, _T):
        out = attempt("6.1", abc, _AB.clone(), t, forbidden=ANSWERS["6.1"])
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise ExerciseWrong("Exercise 6.1: return the three numbers (a_t, b_t, c_t) as a tuple.")
        got = torch.stack([_as_tensor("6.1", v) for v in out])
        want = torch.stack([a[t], b[t], c[t]])
        ab, abp, ap = _AB[t], _AB[t - 1], alpha[t - 1]
        at_t = alpha[t]
        diagnose("6.1", got, want, {
            "Use α_{t-1} = ᾱ_{t-1}/ᾱ_t, the step between z_t and z_{t-1}, not α_t.":
                torch.stack([ab.sqrt() * (1 - at_t) / (1 - abp), at_t.sqrt() * (1 - ab) / (1 - abp),
                             (1 - ab) * (1 - at_t) / (1 - abp)]),
            "a_t and b_t carry square roots: sqrt(ᾱ_t) in a_t and sqrt(α_{t-1}) in b_t.":
                torch.stack([ab * (1 - ap) / (1 - abp), ap * (1 - ab) / (1 - abp), c[t]]),
            "a_t multiplies the label u_y and b_t the noisier z_{t-1}: you swapped them.":
                torch.stack([b[t], a[t], c[t]]),
        }, hint="a_t = sqrt(ᾱ_t)(1-α_{t-1})/(1-ᾱ_{t-1}), b_t = sqrt(α_{t-1})(1-ᾱ_t)/(1-ᾱ_{t-1}), "
                "c_t = (1-ᾱ_t)(1-α_{t-1})/(1-ᾱ_{t-1}), with α_{t-1} = ᾱ_{t-1}/ᾱ_t.", tol=1e-9)
    passed("6.1", "a_t, b_t, c_t of q(z_t | z_{t-1}, y) in NoProp's convention.")


def check_block_weight(block_weight: Callable) -> None:
    """Exercise 6.2: block_weight(alpha_bar, t, eta) -> (T/2)·η·(SNR(t) - SNR(t-1))."""
    eta = 0.1
    w = block_weights(_AB, eta)
    snr = _AB / (1 - _AB)
    for t in (1, 5, _T):
        got = _as_tensor("6.2", attempt("6.2", block_weight, _AB.clone(), t, eta, forbidden=ANSWERS["6.2"]))
        diagnose("6.2", got, w[t], {
            "Use the difference SNR(t) - SNR(t-1): block t moves z from t-1 to t.":
                _T / 2 * eta * (snr[min(t + 1, _T)] - snr[t]),
            "Multiply by T/2 (the T blocks each sampled with probability 1/T, and the ½ of the Gaussian).":
                eta * (snr[t] - snr[t - 1]),
            "SNR(t) = ᾱ_t / (1 - ᾱ_t), not (1 - ᾱ_t)/ᾱ_t.":
                _T / 2 * eta * ((1 - _AB[t]) / _AB[t] - (1 - _AB[t - 1]) / _AB[t - 1]),
        }, hint="w_t = (T/2)·η·(SNR(t) - SNR(t-1)) with SNR(t) = ᾱ_t/(1-ᾱ_t) and T = len(alpha_bar) - 1.",
           tol=1e-9 * max(1.0, float(w[t])))
    passed("6.2", "the weight of block t's loss.")


def check_inference_step(inference_step: Callable) -> None:
    """Exercise 6.3: inference_step(z_prev, u_hat, t, alpha_bar, eps) = a_t û + b_t z_{t-1} + sqrt(c_t) ε."""
    g = torch.Generator().manual_seed(63)
    z, u, eps = (torch.randn(64, 10, generator=g, dtype=torch.float64) for _ in range(3))
    a, b, c = residual_coefficients(_AB)
    t = 3
    got = expect_tensor("6.3", attempt("6.3", inference_step, z, u, t, _AB.clone(), eps,
                                        forbidden=ANSWERS["6.3"]), z.shape)
    diagnose("6.3", got, a[t] * u + b[t] * z + c[t].sqrt() * eps, {
        "c_t is a variance: the noise is sqrt(c_t)·ε.": a[t] * u + b[t] * z + c[t] * eps,
        "a_t goes with the prediction û and b_t with z_{t-1}.": b[t] * u + a[t] * z + c[t].sqrt() * eps,
        "Add the noise sqrt(c_t)·ε: the step samples q(z_t | z_{t-1}, û).": a[t] * u + b[t] * z,
    }, hint="z_t = a_t·û + b_t·z_{t-1} + sqrt(c_t)·ε with the coefficients of exercise 6.1.")
    passed("6.3", "one step of NoProp's inference.")
