"""Checkers for chapter 4 (the SDE/ODE view: Euler–Maruyama, Heun, DDIM as an ODE step)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..samplers.continuous import denoise_at, sample_dpm_solver
from ..samplers.denoiser import Denoiser
from ..samplers.grids import continuous_timesteps
from ..schedules import beta_schedule, log_alpha_bar_at
from ..sde import alpha_sigma
from ._core import ExerciseWrong, attempt, close, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_em_step", "check_heun_step", "check_ddim_ode_step", "check_dpm_solver_build"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "4.4": (sample_dpm_solver,),
}


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


# ---------------------------------------------------------------- 4.4 build: DPM-Solver++(2M)

def _dpm(x, x0, x0_prev, h_prev, a_t, s_t, a_s, s_s, *, first_order=False, r_inv=False, one_over_r=False,
         alpha_t=False, sigma_inv=False, h_sign=1.0, h_scale=1.0):
    """One DPM-Solver++(2M) step as a student might have written it (the defaults are right)."""
    h = h_sign * h_scale * (math.log(a_s / s_s) - math.log(a_t / s_t))
    if x0_prev is None or first_order:
        d = x0
    else:
        r = (h / (h_scale * h_prev)) if r_inv else (h_scale * h_prev / h)
        k = 1 / r if one_over_r else 1 / (2 * r)
        d = (1 + k) * x0 - k * x0_prev
    ratio = s_t / s_s if sigma_inv else s_s / s_t
    return ratio * x - (a_t if alpha_t else a_s) * math.expm1(-h) * d


def _check_step(dpm_step: Callable) -> None:
    x, x0, x0_prev = _data(44)
    t, s = (0.6, 0.8), (0.8, 0.6)  # (α, σ) at t and at the later (less noisy) time s
    h_prev = 0.4
    for prev, hp, slips in (
        (None, None, {
            "The linear part is α_s (e^{-h} - 1) D with α at the new time s, not at t.": {"alpha_t": True},
            "x is carried over by σ_s/σ_t (the new σ over the old), not σ_t/σ_s.": {"sigma_inv": True},
            "h = λ_s - λ_t > 0: λ = log(α/σ) grows towards the data.": {"h_sign": -1.0},
            "λ is half the log-SNR, log(α/σ), not log(α²/σ²).": {"h_scale": 2.0},
        }),
        (x0_prev, h_prev, {
            "That is the first-order step (DDIM): with a previous x̂_0, use D = (1 + 1/(2r)) x̂_0 - "
            "1/(2r) x̂_0,prev.": {"first_order": True},
            "r = h_prev / h, the previous step over this one, not h / h_prev.": {"r_inv": True},
            "The extrapolation weight is 1/(2r), not 1/r.": {"one_over_r": True},
        }),
    ):
        out = attempt("4.4", dpm_step, x, x0, prev, hp, *t, *s, forbidden=ANSWERS["4.4"])
        where = "dpm_step, first step" if prev is None else "dpm_step"
        diagnose("4.4", expect_tensor("4.4", out, x.shape), _dpm(x, x0, prev, hp, *t, *s),
                 {f"({where}) {m}": _dpm(x, x0, prev, hp, *t, *s, **k) for m, k in slips.items()},
                 hint="h = λ_s - λ_t with λ = log(α/σ); D = x̂_0 at the first step, else (1 + 1/(2r)) x̂_0 - "
                      "1/(2r) x̂_0,prev with r = h_prev/h; x_s = (σ_s/σ_t) x - α_s (e^{-h} - 1) D.", tol=1e-9)


# Gaussian data N(m, s² I): the exact ε*, and the exact solution of the probability-flow ODE.
_M44, _S44 = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.7
_BETA44 = beta_schedule("linear", 1000)


def _gaussian_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    ab = log_alpha_bar_at(_BETA44.double(), float(t[0])).exp()
    return (1 - ab).sqrt() * (x - ab.sqrt() * _M44) / (ab * _S44**2 + 1 - ab)


_GAUSS = Denoiser(_gaussian_eps, _BETA44)


def _grid(n: int, spacing: str) -> list[float]:
    # times rounded to float32, the precision the network is called with: the exact solution sees the same
    ts = continuous_timesteps(_GAUSS, n, spacing=spacing, t_min=1.0)
    return [float(torch.tensor(t, dtype=torch.float32)) for t in ts]


def _exact(x: torch.Tensor, ts: list[float]) -> torch.Tensor:
    """x̂_0 at ts[-1] of the exact ODE solution from x at ts[0]: the standardised x_t is constant along it."""
    (a0, s0), (a1, s1) = (tuple(float(v) for v in alpha_sigma(_GAUSS, t)) for t in (ts[0], ts[-1]))
    k0, k1 = math.hypot(a0 * _S44, s0), math.hypot(a1 * _S44, s1)
    return denoise_at(_GAUSS, a1 * _M44 + k1 / k0 * (x - a0 * _M44), ts[-1])[0]


def _loop(x, ts, *, first_order=False, final=True, same_h=False):
    """The sampler as a student might have written it from the right step (the defaults are right)."""
    x0_prev, h_prev = None, None
    for t, s in zip(ts, ts[1:], strict=False):
        (a_t, s_t), (a_s, s_s) = (tuple(float(v) for v in alpha_sigma(_GAUSS, u)) for u in (t, s))
        x0 = denoise_at(_GAUSS, x, t)[0]
        h = math.log(a_s / s_s) - math.log(a_t / s_t)
        x = _dpm(x, x0, None if first_order else x0_prev, h if same_h else h_prev, a_t, s_t, a_s, s_s)
        x0_prev, h_prev = x0, h
    return denoise_at(_GAUSS, x, ts[-1])[0] if final else x


_STEPS44 = (20, 40, 80)


def _run(fn: Callable, x: torch.Tensor, ts: list[float]) -> torch.Tensor:
    with torch.no_grad():
        out = attempt("4.4", fn, _GAUSS, x.clone(), list(ts), forbidden=ANSWERS["4.4"])
    return expect_tensor("4.4", out, x.shape).detach().double()


def _order(sample_dpm_loop: Callable, x: torch.Tensor) -> float:
    """The fitted order of the loop's error against the exact solution (grids evenly spaced in λ)."""
    grids = [_grid(n, "lambda") for n in _STEPS44]
    errors = [float((_run(sample_dpm_loop, x, ts) - _exact(x, ts)).norm(dim=1).mean()) for ts in grids]
    if not all(math.isfinite(e) and e > 0 for e in errors):
        return float("nan")
    order = math.log(errors[0] / errors[-1]) / math.log(_STEPS44[-1] / _STEPS44[0])
    if order < 1.6:
        first = " (about 1: a first-order method, like DDIM)" if 0.7 < order < 1.3 else ""
        raise ExerciseWrong(
            f"Exercise 4.4 (sample_dpm_loop): on Gaussian data with the exact score, its error falls as "
            f"h^{order:.2f}{first} from {_STEPS44[0]} to {_STEPS44[-1]} steps (errors "
            f"{errors[0]:.2e} -> {errors[-1]:.2e}); DPM-Solver++(2M) is second order. Does every step after "
            "the first get the previous x̂_0 and h?")
    return order


def _check_loop(sample_dpm_loop: Callable) -> float:
    x = _data(45)[0]
    # 1. draw for draw with the package's solver, on a grid evenly spaced in t (so its steps h differ)
    ts = _grid(12, "time")
    got = _run(sample_dpm_loop, x, ts)
    with torch.no_grad():
        want = sample_dpm_solver(_GAUSS, x.clone(), ts)
    if not close(got, want, 1e-8):
        for message, wrong in {
            "End with one more evaluation: return x̂_0 at the last time ts[-1], as the book's samplers do.":
                _loop(x, ts, final=False),
            "r = h_prev/h needs the previous step's h, not this one's: on a grid whose steps differ they "
            "are not equal.": _loop(x, ts, same_h=True),
        }.items():
            if close(got, wrong, 1e-8):
                raise ExerciseWrong(f"Exercise 4.4 (sample_dpm_loop): not yet. {message}")
        _order(sample_dpm_loop, x)  # names a first-order loop
        err = float((got - want).abs().max())
        raise ExerciseWrong(
            f"Exercise 4.4 (sample_dpm_loop): not yet (largest difference from the package's "
            f"sample_dpm_solver {err:.3g}). Hint: for each (t, s) of consecutive times: "
            "x̂_0 = denoise_at(model, x, t)[0]; x = dpm_step(x, x̂_0, previous x̂_0, previous h, α_t, σ_t, "
            "α_s, σ_s); keep x̂_0 and h; at the end return denoise_at(model, x, ts[-1])[0].")
    # 2. the order of convergence, against the exact solution of the ODE
    return _order(sample_dpm_loop, x)


def check_dpm_solver_build(dpm_step: Callable, sample_dpm_loop: Callable) -> None:
    """Exercise 4.4 (build): dpm_step(x, x0_hat, x0_prev, h_prev, a_t, s_t, a_s, s_s) -> x_s, one step of
    DPM-Solver++(2M) (first order when x0_prev is None); sample_dpm_loop(model, x, ts) -> x̂_0 at ts[-1].
    The step is compared with the formula, the loop with the exact solution on Gaussian data (its fitted
    order must be about 2) and with ddpm_nb.samplers.sample_dpm_solver on the same grid."""
    _check_step(dpm_step)
    order = _check_loop(sample_dpm_loop)
    passed("4.4", f"one DPM-Solver++(2M) step and its sampler: second order on Gaussian data (fitted order "
                  f"{order:.2f}) and equal to the package's sample_dpm_solver on the same grid.")
