"""The evidence lower bound of DDPM, term by term, and the training loss L_simple (Ho et al. 2020).

-log p_θ(x_0) <= -ELBO = L_T + Σ_{t=2}^T L_{t-1} + L_0                                 (eq. 5)
  L_T     = KL(q(x_T | x_0) || N(0, I))                      prior, no parameters
  L_{t-1} = E_q KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t))   diffusion, closed form given x_t
  L_0     = -E_q log p_θ(x_0 | x_1)                          reconstruction (decoder)
p_θ(x_{t-1} | x_t) = N(μ_θ(x_t, t), σ_t² I), μ_θ from the predicted noise (eq. 11), σ_t² = β_t or β̃_t.
All terms are in nats and summed over the data dimensions: shape (B,).
An `eps_model` is any callable (x_t (B, ...), t (B,) long) -> ε̂ (B, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .diffusion import (
    SIGMA2,
    gaussian_kl,
    noise_like,
    p_mean_from_eps,
    posterior_mean_var,
    q_mean_var,
    q_sample,
    reverse_variance,
)
from .errors import UserError
from .progress import progress_bar
from .schedules import alpha_bar as alpha_bar_of
from .schedules import check_beta

__all__ = [
    "SIGMA2", "DECODERS", "reverse_variance", "prior_term", "diffusion_term", "reconstruction_term",
    "negative_elbo", "elbo_weights", "l_simple", "discretized_gaussian_nll",
]

Tensor = torch.Tensor
EpsModel = Callable[[Tensor, Tensor], Tensor]
DECODERS = ("gaussian", "discretized")


def _sum_dims(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(1)


def prior_term(x0: Tensor, beta: Tensor) -> Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example, (B,)."""
    ab = alpha_bar_of(beta)
    T = beta.shape[0] - 1
    mean, var = q_mean_var(x0, T, ab)
    return _sum_dims(gaussian_kl(mean, var.expand_as(mean), torch.zeros_like(mean), torch.ones_like(mean)))


def diffusion_term(eps_model: EpsModel, x0: Tensor, t: Tensor, beta: Tensor, sigma2: str = "beta", *,
                   generator: torch.Generator | None = None) -> Tensor:
    """L_{t-1} at one draw x_t ~ q(x_t | x_0): KL(q(x_{t-1}|x_t,x_0) || p_θ(x_{t-1}|x_t)), (B,); t >= 2."""
    t = _steps(t, x0, lowest=2)
    var_p = reverse_variance(beta, sigma2)
    xt = q_sample(x0, t, alpha_bar_of(beta), generator=generator)
    mean_q, var_q = posterior_mean_var(x0, xt, t, beta)
    mean_p = p_mean_from_eps(xt, t, eps_model(xt, t), beta)
    var_p_t = var_p.to(x0)[t].reshape((-1,) + (1,) * (x0.dim() - 1))
    return _sum_dims(gaussian_kl(mean_q, var_q.expand_as(mean_q), mean_p, var_p_t.expand_as(mean_p)))


def reconstruction_term(eps_model: EpsModel, x0: Tensor, beta: Tensor, sigma2: str = "beta",
                        decoder: str = "gaussian", *, generator: torch.Generator | None = None) -> Tensor:
    """L_0 = -log p_θ(x_0 | x_1) at one draw x_1 ~ q(x_1 | x_0), (B,).

    'gaussian': a Gaussian decoder N(μ_θ(x_1, 1), σ_1²) for continuous data (a density, in nats).
    'discretized': Ho et al.'s eq. 13 for 8-bit images scaled to [-1, 1]: the Gaussian mass of the
    pixel's bin of width 2/255 (the outer bins reach to ±∞); a probability, so L_0 >= 0.
    """
    if decoder not in DECODERS:
        raise UserError(f"Unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}.")
    t = torch.ones(x0.shape[0], dtype=torch.long, device=x0.device)
    x1 = q_sample(x0, t, alpha_bar_of(beta), generator=generator)
    mean = p_mean_from_eps(x1, t, eps_model(x1, t), beta)
    std = math.sqrt(float(reverse_variance(beta, sigma2)[1]))
    if decoder == "gaussian":
        return _sum_dims(0.5 * math.log(2 * math.pi * std**2) + (x0 - mean) ** 2 / (2 * std**2))
    return _sum_dims(discretized_gaussian_nll(x0, mean, std))


def discretized_gaussian_nll(x0: Tensor, mean: Tensor, std: float | Tensor) -> Tensor:
    """-log of the N(mean, std²) mass of each 8-bit pixel's bin (Ho et al. 2020, eq. 13), elementwise.

    x0 in [-1, 1] on the grid k/127.5 - 1; bins have width 2/255 and the outer two reach to ±∞,
    so the masses of the 256 levels sum to one.
    """
    if torch.any(x0.abs() > 1 + 1e-6):
        raise UserError("The discretized decoder expects images scaled to [-1, 1].")
    normal = torch.distributions.Normal(mean, std)
    upper = torch.where(x0 > 1 - 1e-3, torch.ones_like(x0), normal.cdf(x0 + 1 / 255))
    lower = torch.where(x0 < -1 + 1e-3, torch.zeros_like(x0), normal.cdf(x0 - 1 / 255))
    return -torch.log((upper - lower).clamp(min=1e-12))


@torch.no_grad()
def negative_elbo(eps_model: EpsModel, x0: Tensor, beta: Tensor, *, sigma2: str = "beta",
                  decoder: str = "gaussian", n_mc: int = 2, t_samples: int | None = None,
                  generator: torch.Generator | None = None, progress: bool = False) -> dict[str, Tensor]:
    """Per-example -ELBO (nats) with its Monte-Carlo standard error. x0: (B, ...).

    Each of `n_mc` >= 2 independent replicates draws fresh x_t for every term; with t_samples=None
    the sum over t = 2..T is computed term by term, otherwise estimated as (T - 1)·mean of
    `t_samples` uniform draws of t per example. Returns (B,) tensors: 'nelbo' (replicate mean),
    'stderr' (replicate std / sqrt(n_mc)), and the terms 'prior', 'diffusion', 'reconstruction'.
    """
    check_beta(beta)
    if n_mc < 2:
        raise UserError("n_mc must be at least 2 to estimate a standard error.")
    T = beta.shape[0] - 1
    if T < 2:
        raise UserError("The ELBO decomposition needs T >= 2 steps.")
    prior = prior_term(x0, beta)
    reps = []
    bar = progress_bar(total=n_mc * (T - 1 if t_samples is None else t_samples), desc="-ELBO",
                       disable=not progress)
    for _ in range(n_mc):
        diff = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
        if t_samples is None:
            for t in range(2, T + 1):
                diff += diffusion_term(eps_model, x0, t, beta, sigma2, generator=generator)
                bar.update()
        else:
            for _ in range(t_samples):
                t = torch.randint(2, T + 1, (x0.shape[0],), generator=generator).to(x0.device)
                term = diffusion_term(eps_model, x0, t, beta, sigma2, generator=generator)
                diff += (T - 1) / t_samples * term
                bar.update()
        rec = reconstruction_term(eps_model, x0, beta, sigma2, decoder, generator=generator)
        reps.append(torch.stack([diff, rec]))
    bar.close()
    reps = torch.stack(reps)  # (n_mc, 2, B)
    total = prior + reps.sum(1)  # (n_mc, B)
    return {"nelbo": total.mean(0), "stderr": total.std(0) / math.sqrt(n_mc), "prior": prior,
            "diffusion": reps[:, 0].mean(0), "reconstruction": reps[:, 1].mean(0)}


def elbo_weights(beta: Tensor, sigma2: str = "beta") -> Tensor:
    """λ_t such that the mean part of L_{t-1} is λ_t ‖ε - ε_θ‖²: β_t² / (2 σ_t² α_t (1 - ᾱ_t)) (eq. 12).

    Shape (T + 1,), with λ_0 = 0. L_simple sets every λ_t to 1.
    """
    var = reverse_variance(beta, sigma2)
    ab = alpha_bar_of(beta)
    w = torch.zeros_like(beta)
    w[1:] = beta[1:] ** 2 / (2 * var[1:] * (1 - beta[1:]) * (1 - ab[1:]))
    return w


def l_simple(eps_model: EpsModel, x0: Tensor, beta: Tensor, *, weights: Tensor | None = None,
             generator: torch.Generator | None = None, t_power: float = 1.0) -> Tensor:
    """L_simple = E_{t, ε} λ_t ‖ε - ε_θ(sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, t)‖² / D, a scalar (eq. 14).

    t ~ U{1..T}, or with t_power p > 1, t = ceil(T u^p), u ~ U(0, 1): more of the training where t is
    small (the optimum at each t is still ε*, only the effort moves). Weights λ (T + 1,) default to 1.
    Averaged over the batch and the D data dimensions.
    """
    T = beta.shape[0] - 1
    gen_device = generator.device if generator is not None else x0.device
    if t_power < 1:
        raise UserError(f"t_power must be >= 1 (1 = uniform steps), got {t_power}.")
    if t_power == 1:
        t = torch.randint(1, T + 1, (x0.shape[0],), generator=generator, device=gen_device)
    else:
        u = torch.rand(x0.shape[0], generator=generator, device=gen_device, dtype=torch.float64)
        t = (T * u**t_power).ceil().clamp(1, T).long()
    t = t.to(x0.device)
    eps = noise_like(x0, generator)
    xt = q_sample(x0, t, alpha_bar_of(beta).to(x0.device), eps)
    err = ((eps - eps_model(xt, t)) ** 2).reshape(x0.shape[0], -1).mean(1)
    if weights is not None:
        err = err * weights.to(err)[t]
    return err.mean()


def _steps(t, x0: Tensor, lowest: int) -> Tensor:
    t = torch.as_tensor(t, device=x0.device)
    if t.dim() == 0:
        t = t.expand(x0.shape[0])
    if t.is_floating_point() or t.dtype == torch.bool:
        raise UserError("t must be integer steps.")
    if torch.any(t < lowest):
        raise UserError(f"t must be at least {lowest} for this term.")
    return t.long()
