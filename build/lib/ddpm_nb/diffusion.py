"""The DDPM forward process q and the Gaussian facts it rests on (Ho et al. 2020).

q(x_t | x_{t-1})      = N(sqrt(1 - β_t) x_{t-1}, β_t I)                      (eq. 2)
q(x_t | x_0)          = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I)                         (eq. 4)
q(x_{t-1} | x_t, x_0) = N(μ̃_t(x_t, x_0), β̃_t I), β̃_t = (1 - ᾱ_{t-1})/(1 - ᾱ_t) β_t   (eqs. 6-7)
x_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)                                      (from eq. 4)
Schedules are indexed by the step t itself (see `ddpm_nb.schedules`).
"""

from __future__ import annotations

import torch

from .errors import UserError
from .markov import gaussian_chain
from .schedules import alpha_bar, check_beta, check_schedule_tensor

__all__ = [
    "noise_like", "q_step", "simulate_forward", "q_mean_var", "q_sample", "gaussian_kl",
    "posterior_variance", "posterior_mean_var", "x0_from_eps", "eps_from_x0", "p_mean_from_eps",
    "SIGMA2", "reverse_variance",
]

Tensor = torch.Tensor
SIGMA2 = ("beta", "beta_tilde")  # the reverse variances σ_t² = β_t or β̃_t


def noise_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise of x's shape, dtype and device (B, ...), drawn where `generator` lives and
    then moved to x's device: a CPU generator gives the same numbers whether x is on the CPU or a GPU."""
    device = x.device if generator is None else generator.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def q_step(x_prev: Tensor, beta_t: float | Tensor, eps: Tensor) -> Tensor:
    """One forward step x_t = sqrt(1 - β_t) x_{t-1} + sqrt(β_t) ε (eq. 2). x_prev, eps: (B, ...)."""
    if eps.shape != x_prev.shape:
        raise UserError(f"eps must have the shape of x_prev {tuple(x_prev.shape)}, got {tuple(eps.shape)}.")
    beta_t = torch.as_tensor(beta_t, dtype=x_prev.dtype)
    if torch.any(beta_t <= 0) or torch.any(beta_t >= 1):
        raise UserError("beta_t must lie strictly between 0 and 1.")
    # the noise is sqrt(β_t)·ε, so that Var = (1 - β_t)·Var(x_{t-1}) + β_t stays 1 for unit data
    return torch.sqrt(1 - beta_t) * x_prev + torch.sqrt(beta_t) * eps


def simulate_forward(x0: Tensor, beta: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Run the chain step by step from x0 (N, D) with schedule beta (T + 1,): path (T + 1, N, D)."""
    check_beta(beta)
    b = beta[1:].to(x0.dtype)
    return gaussian_chain(x0, torch.sqrt(1 - b), torch.sqrt(b), generator=generator)


def _gather(alpha_bar: Tensor, t, x0: Tensor, name: str = "alpha_bar") -> Tensor:
    """alpha_bar[t] (any schedule tensor) broadcastable against x0 (B, ...); t an int or (B,) ints."""
    check_schedule_tensor(name, alpha_bar)
    T = alpha_bar.shape[0] - 1
    t = torch.as_tensor(t)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise UserError("t must be an integer step (or a tensor of integer steps).")
    if t.dim() == 1:
        if x0.dim() == 0 or t.shape[0] != x0.shape[0]:
            raise UserError(f"t has {t.shape[0]} steps but x0 has batch shape {tuple(x0.shape[:1])}: "
                            "give one t per example, or a single int.")
    elif t.dim() != 0:
        raise UserError(f"t must be an int or a 1-D tensor (B,), got shape {tuple(t.shape)}.")
    if torch.any(t < 0) or torch.any(t > T):
        raise UserError(f"t must lie in 0..{T} for this schedule.")
    ab = alpha_bar.to(device=x0.device, dtype=x0.dtype)[t.to(x0.device)]
    return ab.reshape(ab.shape + (1,) * (x0.dim() - ab.dim()))


def q_mean_var(x0: Tensor, t, alpha_bar: Tensor) -> tuple[Tensor, Tensor]:
    """Mean sqrt(ᾱ_t)·x0 (B, ...) and variance (1 - ᾱ_t) (broadcastable) of q(x_t | x_0) (eq. 4)."""
    ab = _gather(alpha_bar, t, x0)
    return torch.sqrt(ab) * x0, 1 - ab


def q_sample(x0: Tensor, t, alpha_bar: Tensor, eps: Tensor | None = None, *,
             generator: torch.Generator | None = None) -> Tensor:
    """Draw x_t ~ q(x_t | x_0) in one shot: sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε. x0, eps: (B, ...)."""
    if eps is None:
        eps = noise_like(x0, generator)
    elif eps.shape != x0.shape:
        raise UserError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}.")
    mean, var = q_mean_var(x0, t, alpha_bar)
    return mean + torch.sqrt(var) * eps


def gaussian_kl(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) per coordinate, for diagonal Gaussians (nats).

    KL = ½ [log(var_p/var_q) + (var_q + (mean_q - mean_p)²)/var_p - 1]; inputs broadcast together.
    """
    dtype = mean_q.dtype if isinstance(mean_q, torch.Tensor) else torch.get_default_dtype()
    var_q, var_p = torch.as_tensor(var_q, dtype=dtype), torch.as_tensor(var_p, dtype=dtype)
    if torch.any(var_q <= 0) or torch.any(var_p <= 0):
        raise UserError("Variances must be positive.")
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)



def posterior_variance(beta: Tensor) -> Tensor:
    """β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t for t = 1..T, shape (T + 1,), β̃_0 = 0 (eq. 7)."""
    ab = alpha_bar(beta)
    out = torch.zeros_like(beta)
    out[1:] = (1 - ab[:-1]) / (1 - ab[1:]) * beta[1:]
    return out


def reverse_variance(beta: Tensor, sigma2: str) -> Tensor:
    """σ_t² of the reverse steps, (T + 1,): 'beta' (σ_t² = β_t) or 'beta_tilde' (σ_t² = β̃_t).

    β̃_1 = 0 would make the decoder p(x_0 | x_1) a point mass, so 'beta_tilde' uses β̃_2 at t = 1,
    as Ho et al.'s code does ("clipped" posterior variance).
    """
    check_beta(beta)
    if sigma2 == "beta":
        return beta.clone()
    if sigma2 == "beta_tilde":
        if beta.shape[0] < 3:
            raise UserError("sigma2='beta_tilde' needs T >= 2 (β̃_1 is replaced by β̃_2).")
        var = posterior_variance(beta)
        var[1] = var[2]
        return var
    raise UserError(f"Unknown reverse variance {sigma2!r}: choose one of {', '.join(SIGMA2)}.")


def posterior_mean_var(x0: Tensor, xt: Tensor, t, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Mean μ̃_t (B, ...) and variance β̃_t (broadcastable) of q(x_{t-1} | x_t, x_0), t >= 1 (eq. 7).

    μ̃_t = sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t) · x_0 + sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · x_t.
    """
    if xt.shape != x0.shape:
        raise UserError(f"xt must have the shape of x0 {tuple(x0.shape)}, got {tuple(xt.shape)}.")
    _check_step_at_least_one(t)
    ab = alpha_bar(beta)
    ab_t, ab_prev = _gather(ab, t, x0), _gather(ab, torch.as_tensor(t) - 1, x0)
    b = _gather(beta, t, x0, "beta")
    mean = torch.sqrt(ab_prev) * b / (1 - ab_t) * x0 + torch.sqrt(1 - b) * (1 - ab_prev) / (1 - ab_t) * xt
    return mean, (1 - ab_prev) / (1 - ab_t) * b


def x0_from_eps(xt: Tensor, t, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t): the clean point implied by a noise guess. (B, ...)."""
    if eps.shape != xt.shape:
        raise UserError(f"eps must have the shape of xt {tuple(xt.shape)}, got {tuple(eps.shape)}.")
    ab = _gather(alpha_bar, t, xt)
    return (xt - torch.sqrt(1 - ab) * eps) / torch.sqrt(ab)


def eps_from_x0(xt: Tensor, t, x0: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε = (x_t - sqrt(ᾱ_t) x_0) / sqrt(1 - ᾱ_t): the noise that takes x_0 to x_t. (B, ...); t >= 1."""
    if x0.shape != xt.shape:
        raise UserError(f"x0 must have the shape of xt {tuple(xt.shape)}, got {tuple(x0.shape)}.")
    _check_step_at_least_one(t)
    ab = _gather(alpha_bar, t, xt)
    return (xt - torch.sqrt(ab) * x0) / torch.sqrt(1 - ab)


def p_mean_from_eps(xt: Tensor, t, eps: Tensor, beta: Tensor) -> Tensor:
    """Mean of p_θ(x_{t-1} | x_t) from a predicted ε: (x_t - β_t/sqrt(1 - ᾱ_t) ε)/sqrt(α_t) (eq. 11).

    It equals μ̃_t(x_t, x̂_0) with x̂_0 = x0_from_eps(x_t, t, ε).
    """
    if eps.shape != xt.shape:
        raise UserError(f"eps must have the shape of xt {tuple(xt.shape)}, got {tuple(eps.shape)}.")
    _check_step_at_least_one(t)
    ab = _gather(alpha_bar(beta), t, xt)
    b = _gather(beta, t, xt, "beta")
    return (xt - b / torch.sqrt(1 - ab) * eps) / torch.sqrt(1 - b)


def _check_step_at_least_one(t) -> None:
    if torch.any(torch.as_tensor(t) < 1):
        raise UserError("t must be at least 1 here: the posterior and ε are defined for steps 1..T.")
