"""Noise schedules as pure functions over tensors.

Convention used throughout the book: a schedule for T steps is a tensor of length T + 1 indexed by
the step t itself, so ``beta[t]`` is β_t and ``alpha_bar[t]`` is ᾱ_t for t = 1..T, with the
conventions β_0 = 0 and ᾱ_0 = 1 stored at index 0. No off-by-one between the page and the code.

- linear: β_t evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. 2020, sec. 4).
- cosine: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T + s)/(1 + s))·π/2), β_t = min(1 - ᾱ_t/ᾱ_{t-1}, 0.999)
  (Nichol & Dhariwal 2021, eq. 17), the schedule Diffusion Policy uses.
"""

from __future__ import annotations

import math

import torch

from .errors import UserError

__all__ = [
    "SCHEDULES",
    "beta_schedule",
    "check_beta",
    "alpha_bar",
    "snr",
    "beta_continuous",
    "alpha_bar_continuous",
    "discretize_continuous",
    "check_schedule_tensor",
    "schedule_from",
    "log_alpha_bar_at",
    "log_alpha_bar_slope_at",
    "half_log_snr",
]

SCHEDULES = ("linear", "cosine")
Tensor = torch.Tensor


def _check_kind(kind: str) -> None:
    if kind not in SCHEDULES:
        raise UserError(f"Unknown schedule {kind!r}: choose one of {', '.join(SCHEDULES)}.")


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise UserError(f"T must be a positive integer number of steps, got {T!r}.")


def _check_beta_range(beta_start: float, beta_end: float) -> None:
    if not (0.0 < beta_start < 1.0 and 0.0 < beta_end < 1.0):
        raise UserError(
            f"beta_start and beta_end must lie strictly between 0 and 1, got {beta_start} and "
            f"{beta_end}: a variance fraction of 0 adds no noise and 1 erases the signal at once."
        )
    if beta_start > beta_end:
        raise UserError(f"beta_start ({beta_start}) must not exceed beta_end ({beta_end}).")


def _cosine_f(u: Tensor, s: float) -> Tensor:
    return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def beta_schedule(
    kind: str,
    T: int,
    *,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    s: float = 0.008,
    max_beta: float = 0.999,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """β_0..β_T, shape (T + 1,), with β_0 = 0. `kind` is 'linear' or 'cosine'.

    linear uses beta_start..beta_end (Ho et al. 2020); cosine uses the offset `s` and caps β at
    `max_beta` (Nichol & Dhariwal 2021, eq. 17).
    """
    _check_kind(kind)
    _check_T(T)
    beta = torch.zeros(T + 1, dtype=dtype)
    if kind == "linear":
        _check_beta_range(beta_start, beta_end)
        beta[1:] = torch.linspace(beta_start, beta_end, T, dtype=dtype)
    else:
        if s <= 0:
            raise UserError(f"The cosine offset s must be positive, got {s}.")
        if not 0.0 < max_beta < 1.0:
            raise UserError(f"max_beta must lie strictly between 0 and 1, got {max_beta}.")
        f = _cosine_f(torch.arange(T + 1, dtype=dtype) / T, s)
        beta[1:] = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return beta


def check_schedule_tensor(name: str, x: Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 1 or x.numel() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"{name} must be a 1-D tensor of length T + 1 (index = step t), got {shape}.")


def schedule_from(spec: dict, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """β_0..β_T of a stored schedule spec {"kind": "linear" | "cosine", "T": int} (a recipe's or a
    checkpoint's config["schedule"])."""
    if not isinstance(spec, dict) or "kind" not in spec or "T" not in spec:
        raise UserError(f"A schedule spec is a dict with 'kind' and 'T', got {spec!r}.")
    return beta_schedule(spec["kind"], spec["T"], dtype=dtype)


def check_beta(beta: Tensor) -> None:
    """Raise a `ValueError` unless beta is a schedule: (T + 1,), β_0 = 0, 0 < β_t < 1 for t >= 1."""
    check_schedule_tensor("beta", beta)
    if beta[0] != 0:
        raise UserError("beta[0] must be 0: index t of a schedule is the step t, and β_0 = 0.")
    if torch.any(beta[1:] <= 0) or torch.any(beta >= 1):
        raise UserError("Every β_t for t >= 1 must lie strictly between 0 and 1.")


def alpha_bar(beta: Tensor) -> Tensor:
    """ᾱ_t = Π_{s<=t} (1 - β_s), shape (T + 1,), with ᾱ_0 = 1 (Ho et al. 2020, eq. 4)."""
    check_beta(beta)
    return torch.cumprod(1 - beta, dim=0)


def snr(alpha_bar: Tensor) -> Tensor:
    """Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t), same shape (infinite at t = 0)."""
    if not isinstance(alpha_bar, torch.Tensor):
        raise UserError("alpha_bar must be a torch.Tensor.")
    if torch.any(alpha_bar <= 0) or torch.any(alpha_bar > 1):
        raise UserError("alpha_bar must lie in (0, 1].")
    return alpha_bar / (1 - alpha_bar)


def beta_continuous(t: Tensor, kind: str = "linear", *, beta_min: float = 0.1,
                    beta_max: float = 20.0, s: float = 0.008) -> Tensor:
    """β(t) on t ∈ [0, 1], the rate of the VP-SDE dx = -½β(t)x dt + sqrt(β(t)) dW (Song et al. 2021).

    linear: β(t) = β_min + t(β_max - β_min), the limit of DDPM's linear schedule in the VP discretisation
    β_t = [β_min + (t-1)/(T-1)·(β_max - β_min)]/T (Song et al. 2021, appendix B).
    cosine: β(t) = -d log ᾱ(t)/dt = π/(1+s) · tan(((t + s)/(1 + s))·π/2) (uncapped).
    """
    _check_kind(kind)
    t = _check_time(t)
    if kind == "linear":
        return beta_min + t * (beta_max - beta_min)
    return math.pi / (1 + s) * torch.tan((t + s) / (1 + s) * math.pi / 2)


def alpha_bar_continuous(t: Tensor, kind: str = "linear", *, beta_min: float = 0.1,
                        beta_max: float = 20.0, s: float = 0.008) -> Tensor:
    """ᾱ(t) = exp(-∫_0^t β(u) du) on t ∈ [0, 1]; same shape as t."""
    _check_kind(kind)
    t = _check_time(t)
    if kind == "linear":
        return torch.exp(-(beta_min * t + 0.5 * (beta_max - beta_min) * t**2))
    return _cosine_f(t, s) / _cosine_f(torch.zeros_like(t), s)


def discretize_continuous(T: int, *, beta_min: float = 0.1, beta_max: float = 20.0) -> Tensor:
    """The discrete linear schedule whose limit is β(t) = β_min + t(β_max - β_min): shape (T + 1,).

    β_t = β_min/T + (t-1)/(T-1)·(β_max - β_min)/T; with T = 1000 this is DDPM's 1e-4..0.02.
    """
    _check_T(T)
    if T < 2:
        raise UserError("T must be at least 2 to discretise a continuous schedule.")
    if not 0 < beta_min <= beta_max < T:
        raise UserError(f"Need 0 < beta_min <= beta_max < T so that every step's "
                        f"β_t = [β_min + (t-1)/(T-1)·(β_max - β_min)]/T is below 1; got beta_min={beta_min}, "
                        f"beta_max={beta_max}, T={T}: use more steps.")
    return beta_schedule("linear", T, beta_start=beta_min / T, beta_end=beta_max / T)


def _check_time(t) -> Tensor:
    t = torch.as_tensor(t, dtype=torch.float64)
    if torch.any(t < 0) or torch.any(t > 1):
        raise UserError("Continuous time t must lie in [0, 1].")
    return t


# ---------------------------------------------------------------- continuous time between the steps

def _pchip_slopes(y: Tensor) -> Tensor:
    """Knot slopes of the monotone cubic through (k, y_k), k = 0..T (unit spacing): Fritsch & Carlson
    (1980) with Fritsch & Butland's harmonic mean inside and a shape-preserving three-point end rule,
    the same construction as scipy's PchipInterpolator."""
    m = y[1:] - y[:-1]  # secants, unit spacing
    if y.shape[0] == 2:
        return torch.stack([m[0], m[0]])
    inner = torch.where((m[1:] * m[:-1] > 0), 2 / (1 / m[:-1].where(m[:-1] != 0, torch.ones_like(m[:-1]))
                                                   + 1 / m[1:].where(m[1:] != 0, torch.ones_like(m[1:]))),
                        torch.zeros_like(m[1:]))

    def end(m0: Tensor, m1: Tensor) -> Tensor:  # tensor ops only: runs on any device, no sync
        d = (3 * m0 - m1) / 2
        flips = torch.sign(d) != torch.sign(m0)
        d = torch.where((torch.sign(m0) != torch.sign(m1)) & (d.abs() > 3 * m0.abs()), 3 * m0, d)
        return torch.where(flips, torch.zeros_like(d), d)

    return torch.cat([end(m[0], m[1]).reshape(1), inner, end(m[-1], m[-2]).reshape(1)])


def _hermite(log_ab: Tensor, t: Tensor, derivative: bool) -> Tensor:
    T = log_ab.shape[0] - 1
    t = torch.as_tensor(t, dtype=log_ab.dtype, device=log_ab.device)
    if t.device.type != "meta" and (torch.any(t < 0) or torch.any(t > T)):
        raise UserError(f"Continuous time t must lie in [0, {T}], got {t.min().item()}..{t.max().item()}.")
    d = _pchip_slopes(log_ab)
    k = t.floor().long().clamp(0, T - 1)
    u = t - k
    y0, y1, d0, d1 = log_ab[k], log_ab[k + 1], d[k], d[k + 1]
    if derivative:  # d/du of the cubic Hermite basis
        return ((6 * u**2 - 6 * u) * y0 + (3 * u**2 - 4 * u + 1) * d0 + (-6 * u**2 + 6 * u) * y1
                + (3 * u**2 - 2 * u) * d1)
    return ((2 * u**3 - 3 * u**2 + 1) * y0 + (u**3 - 2 * u**2 + u) * d0 + (-2 * u**3 + 3 * u**2) * y1
            + (u**3 - u**2) * d1)


def log_alpha_bar_at(beta: Tensor, t, *, knots: Tensor | None = None) -> Tensor:
    """log ᾱ(t) for real t ∈ [0, T]: the schedule's value at every integer step, a monotone cubic
    (PCHIP) in between, so b(t) = -d log ᾱ/dt is continuous and never negative.

    The one continuous-time schedule of the book: the SDE/ODE samplers and the v-prediction wrapper
    both read α(t) = exp(½ log ᾱ(t)) and σ(t) = sqrt(1 - ᾱ(t)) from here. beta: (T + 1,); t: a number
    or a tensor of any shape (result: same shape, beta's dtype and device). `knots` (T + 1,) = log ᾱ_k,
    when the caller keeps them (then beta may be None).
    """
    return _hermite(_knots(beta, knots), t, derivative=False)


def log_alpha_bar_slope_at(beta: Tensor, t, *, knots: Tensor | None = None) -> Tensor:
    """d log ᾱ(t)/dt of `log_alpha_bar_at` (so b(t) = -this): same arguments, same shape."""
    return _hermite(_knots(beta, knots), t, derivative=True)


def _knots(beta: Tensor | None, knots: Tensor | None) -> Tensor:
    if knots is not None:
        check_schedule_tensor("knots", knots)
        return knots
    return torch.log(alpha_bar(beta))


def half_log_snr(log_ab: Tensor) -> Tensor:
    """λ = log(α/σ) = ½ log(ᾱ/(1 - ᾱ)), half the log-SNR (Lu et al. 2022, sec. 3.1), from log ᾱ."""
    return 0.5 * (log_ab - torch.log(-torch.expm1(log_ab)))
