"""Checkers for chapter 2 (the ELBO)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import elbo
from ..data.toy2d import mixture_eps, sample_toy2d
from ..diffusion import (
    gaussian_kl,
    p_mean_from_eps,
    posterior_mean_var,
    posterior_variance,
    reverse_variance,
    x0_from_eps,
)
from ..schedules import alpha_bar, beta_schedule
from ._core import ExerciseWrong, attempt, close, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_posterior_mean", "check_gaussian_kl", "check_x0_from_eps", "check_elbo_terms"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "2.1": (posterior_mean_var,),
    "2.2": (gaussian_kl,),
    "2.3": (x0_from_eps,),
    # the build uses the student's own 2.1-2.3, not the package's
    "2.5": (elbo.negative_elbo, elbo.prior_term, elbo.diffusion_term, elbo.reconstruction_term,
            posterior_mean_var, posterior_variance, p_mean_from_eps, reverse_variance, gaussian_kl,
            x0_from_eps),
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


# ---------------------------------------------------------------- 2.5 (build): the terms of the ELBO


def _kl(m1, v1, m2, v2):
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def elbo_terms_reference(eps_model: Callable, x0: torch.Tensor, beta: torch.Tensor, eps: torch.Tensor,
                         sigma2: str, slip: str | None = None) -> torch.Tensor:
    """L (T + 1, B): L[0] = L_0, L[k] = L_k = KL(q(x_k | x_{k+1}, x_0) || p_θ(x_k | x_{k+1})) for
    k = 1..T-1 at x_{k+1} = sqrt(ᾱ_{k+1}) x_0 + sqrt(1 - ᾱ_{k+1}) eps[k+1], L[T] = L_T; summed over D.

    `slip` makes the mistakes the checker names: 'reverse_kl', 'q_var_beta' (posterior variance β_t),
    'mean_alpha_bar' (μ_θ divided by sqrt(ᾱ_t)), 'no_log_norm' (L_0 without ½ log 2πσ_1²), 'no_prior',
    'mean_over_d' (averaged over D)."""
    T, B = beta.shape[0] - 1, x0.shape[0]
    ab = alpha_bar(beta)
    var_p = reverse_variance(beta, sigma2)
    kl = (lambda m1, v1, m2, v2: _kl(m2, v2, m1, v1)) if slip == "reverse_kl" else _kl
    red = (lambda x: x.mean(-1)) if slip == "mean_over_d" else (lambda x: x.sum(-1))

    def x_at(t):
        return ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps[t]

    def mean_p(xt, t):
        e = eps_model(xt, torch.full((B,), t, dtype=torch.long))
        root = ab[t].sqrt() if slip == "mean_alpha_bar" else (1 - beta[t]).sqrt()
        return (xt - beta[t] / (1 - ab[t]).sqrt() * e) / root

    L = torch.zeros(T + 1, B, dtype=x0.dtype)
    if slip != "no_prior":
        L[T] = red(_kl(ab[T].sqrt() * x0, 1 - ab[T], torch.zeros_like(x0), torch.ones_like(x0)))
    for t in range(2, T + 1):
        xt = x_at(t)
        mq = ab[t - 1].sqrt() * beta[t] / (1 - ab[t]) * x0 + (1 - beta[t]).sqrt() * (1 - ab[t - 1]) / (
            1 - ab[t]) * xt
        vq = beta[t] if slip == "q_var_beta" else (1 - ab[t - 1]) / (1 - ab[t]) * beta[t]
        L[t - 1] = red(kl(mq, vq.expand_as(mq), mean_p(xt, t), var_p[t].expand_as(mq)))
    v1 = var_p[1]
    norm = 0 if slip == "no_log_norm" else 0.5 * torch.log(2 * math.pi * v1)
    L[0] = red(norm + (x0 - mean_p(x_at(1), 1)) ** 2 / (2 * v1))
    return L


def _elbo_inputs():
    g = torch.Generator().manual_seed(25)
    T, B = 20, 64
    beta = beta_schedule("linear", T, beta_start=1e-3, beta_end=0.1)  # ᾱ_T ≈ 0.35: L_T is not negligible
    x0 = sample_toy2d("8gaussians", B, generator=g, dtype=torch.float64)
    eps = torch.randn(T + 1, B, 2, generator=g, dtype=torch.float64)
    eps[0] = 0  # not used: x_t takes eps[t], t = 1..T
    return beta, x0, eps


def _rows(T: int, bad: torch.Tensor) -> str:
    names = {0: "row 0 (L_0, the decoder)", T: f"row {T} (L_T, the prior)"}
    mid = [int(k) for k in bad if 0 < int(k) < T]
    parts = [names[k] for k in (0, T) if k in bad.tolist()]
    if mid:
        parts.append(f"{len(mid)} of the diffusion rows 1..{T - 1} (first: row {mid[0]}, L_{mid[0]})")
    return ", ".join(parts)


def check_elbo_terms(elbo_terms: Callable) -> None:
    """Exercise 2.5: elbo_terms(eps_model, x0, beta, eps, sigma2) -> L (T + 1, B), row k = L_k (Ho et al.'s
    numbering), summed over the data dimensions; x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) eps[t]. Checked for
    σ_t² = β_t and β̃_t against the closed forms, exactly (float64), on the 8-Gaussian mixture with its
    exact noise predictor; the slips it names are those of `elbo_terms_reference`."""
    beta, x0, eps = _elbo_inputs()
    T, B = beta.shape[0] - 1, x0.shape[0]
    ab = alpha_bar(beta)

    def eps_model(xt, t):
        """The exact ε* of the mixture; t: (B,) long steps (an int is accepted too)."""
        return mixture_eps(xt, torch.as_tensor(t).expand(xt.shape[0]), ab)

    results = {}
    for sigma2 in ("beta", "beta_tilde"):
        out = attempt("2.5", elbo_terms, eps_model, x0.clone(), beta.clone(), eps.clone(), sigma2,
                      forbidden=ANSWERS["2.5"])
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (T + 1, B, x0.shape[1]):
            raise ExerciseWrong("Exercise 2.5: not yet. Each term is a number per data point: sum the "
                                "KL (and L_0) over the data dimensions, to shape (T + 1, B).")
        got = expect_tensor("2.5", out, (T + 1, B)).double()
        want = elbo_terms_reference(eps_model, x0, beta, eps, sigma2)
        other = "beta_tilde" if sigma2 == "beta" else "beta"
        tol = 1e-6 * max(1.0, float(want.abs().max()))
        if not close(got, want, tol) and close(got, elbo_terms_reference(eps_model, x0, beta, eps, other),
                                                 tol):
            raise ExerciseWrong(f"Exercise 2.5: not yet. With sigma2={sigma2!r} your terms are those of "
                                f"sigma2={other!r}: σ_t² = β_t for 'beta', β̃_t = (1 - ᾱ_{{t-1}}) / (1 - ᾱ_t) "
                                "β_t for 'beta_tilde' (and β̃_2 at t = 1).")
        if not close(got, want, tol) and close(got[2:], want[1:-1], tol):
            raise ExerciseWrong("Exercise 2.5: not yet. Your row t holds L_{t-1}: row k must hold L_k "
                                "(the KL of the step from x_{k+1} to x_k), row 0 L_0 and row T L_T.")
        slips = {
            "The KL is the wrong way round: L_k = KL(q(x_k | x_{k+1}, x_0) || p_θ(x_k | x_{k+1})), the "
            "posterior first (the expectation is under q).": "reverse_kl",
            "The posterior's variance is β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t, not β_t.": "q_var_beta",
            "μ_θ divides by sqrt(ᾱ_t); eq. 11 divides by sqrt(α_t) = sqrt(1 - β_t).": "mean_alpha_bar",
            "L_0 lacks the Gaussian's normaliser ½ log(2π σ_1²) per coordinate: it is -log p_θ(x_0 | x_1), "
            "a density.": "no_log_norm",
            "Row T is zero: L_T = KL(q(x_T | x_0) || N(0, I)) is small but not zero here (ᾱ_T is not).":
                "no_prior",
            "The terms are averaged over the data dimensions; the ELBO sums them.": "mean_over_d",
        }
        bad = (~((got - want).abs() <= tol)).any(1).nonzero().flatten()  # NaN counts as wrong
        if not torch.isfinite(got).all():
            first = "" if sigma2 == "beta" or torch.isfinite(got[0]).all() else (
                " With sigma2='beta_tilde', σ_1² = β̃_1 = 0 would make L_0 infinite: use β̃_2 at t = 1.")
            raise ExerciseWrong(f"Exercise 2.5: not yet. With sigma2={sigma2!r}, {_rows(T, bad)} "
                                f"{'is' if len(bad) == 1 else 'are'} not finite.{first}")
        if not close(got, want, tol):
            named = {m: elbo_terms_reference(eps_model, x0, beta, eps, sigma2, slip)
                     for m, slip in slips.items()}
            diagnose("2.5", got, want, named, hint=f"with sigma2={sigma2!r}, wrong: {_rows(T, bad)}. Row k = "
                     "KL(N(μ̃_{k+1}, β̃_{k+1}) || N(μ_θ(x_{k+1}), σ_{k+1}²)) summed over D.", tol=tol)
        results[sigma2] = float(got.sum(0).mean())
    passed("2.5", f"every term of -ELBO for σ² = β and β̃ (mean -ELBO at this draw {results['beta']:.3f} "
                  f"and {results['beta_tilde']:.3f} nats).")
