"""NoProp's noise schedule, in its own convention (Li, Teh & Pascanu 2025, eqs. 3 and 8).

ᾱ is indexed from the LABEL end, ᾱ_t = Π_{s=t}^{T} α_s, so ᾱ increases with t: ᾱ_0 ≈ 0 (noise) and
ᾱ_T ≈ 1 (label). Schedules are (T + 1,) float64 tensors indexed by t = 0..T;
q(z_t|y) = N(sqrt(ᾱ_t) u_y, (1 - ᾱ_t) I) and z_{t-1} = sqrt(α_{t-1}) z_t + sqrt(1 - α_{t-1}) ε.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from ..schedules import SCHEDULES, alpha_bar_continuous, snr

__all__ = ["check_T", "noprop_alpha_bar", "alphas_from", "residual_coefficients", "block_weights", "q_z",
           "kl_z0"]

Tensor = torch.Tensor


def check_T(T) -> None:
    """One clear error unless T is a whole number of blocks, at least 1."""
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise UserError(f"T must be a whole number of blocks, at least 1, got {T!r}.")


def noprop_alpha_bar(kind: str, T: int) -> Tensor:
    """ᾱ_0..ᾱ_T in NoProp's convention, shape (T + 1,) float64, increasing in t.

    ᾱ_t = ᾱ(s_t) with s_t = 1 - t/(T + 1): the book's continuous schedule (`alpha_bar_continuous`,
    'linear' = the VP-SDE limit of DDPM's linear β, 'cosine' = Nichol & Dhariwal) read from the
    noise end (s = 1, t = 0) towards the label end (s = 1/(T + 1), t = T), so ᾱ_T < 1 strictly.
    """
    if kind not in SCHEDULES:
        raise UserError(f"Unknown schedule {kind!r}: choose one of {', '.join(SCHEDULES)}.")
    check_T(T)
    s = 1.0 - torch.arange(T + 1, dtype=torch.float64) / (T + 1)
    return alpha_bar_continuous(s, kind).clamp(min=1e-12)


def alphas_from(alpha_bar: Tensor) -> Tensor:
    """α_t = ᾱ_t / ᾱ_{t+1} for t < T and α_T = ᾱ_T, so that ᾱ_t = Π_{s>=t} α_s. Shape (T + 1,)."""
    if not isinstance(alpha_bar, Tensor) or alpha_bar.dim() != 1 or alpha_bar.numel() < 2:
        raise UserError("alpha_bar must be a 1-D tensor ᾱ_0..ᾱ_T of length T + 1 >= 2.")
    if torch.any(alpha_bar <= 0) or torch.any(alpha_bar >= 1) or torch.any(alpha_bar[1:] < alpha_bar[:-1]):
        raise UserError("alpha_bar must lie in (0, 1) and increase with t (NoProp indexes it from the "
                        "label end: ᾱ_0 ≈ 0 is noise, ᾱ_T ≈ 1 the label).")
    return torch.cat([alpha_bar[:-1] / alpha_bar[1:], alpha_bar[-1:]])


def residual_coefficients(alpha_bar: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """a_t, b_t, c_t, each (T + 1,) with index 0 unused (= 0), of
    q(z_t | z_{t-1}, y) = N(a_t u_y + b_t z_{t-1}, c_t I):

    a_t = sqrt(ᾱ_t)(1 - α_{t-1})/(1 - ᾱ_{t-1}), b_t = sqrt(α_{t-1})(1 - ᾱ_t)/(1 - ᾱ_{t-1}),
    c_t = (1 - ᾱ_t)(1 - α_{t-1})/(1 - ᾱ_{t-1})  (Li et al. 2025, eq. 3: the Gaussian posterior of
    the noising chain, the roles of DDPM's eq. 7 with time reversed).
    """
    alpha = alphas_from(alpha_bar)
    ab, ab_prev, a_prev = alpha_bar[1:], alpha_bar[:-1], alpha[:-1]
    zero = alpha_bar.new_zeros(1)
    a = torch.cat([zero, ab.sqrt() * (1 - a_prev) / (1 - ab_prev)])
    b = torch.cat([zero, a_prev.sqrt() * (1 - ab) / (1 - ab_prev)])
    c = torch.cat([zero, (1 - ab) * (1 - a_prev) / (1 - ab_prev)])
    return a, b, c


def block_weights(alpha_bar: Tensor, eta: float = 1.0) -> Tensor:
    """w_t = (T/2)·η·(SNR(t) - SNR(t-1)), SNR(t) = ᾱ_t/(1 - ᾱ_t): shape (T + 1,), w_0 = 0 (eq. 8)."""
    alphas_from(alpha_bar)  # validates
    T = alpha_bar.numel() - 1
    s = snr(alpha_bar)
    return torch.cat([alpha_bar.new_zeros(1), T / 2 * eta * (s[1:] - s[:-1])])


def q_z(u: Tensor, t: int, alpha_bar: Tensor, eps: Tensor) -> Tensor:
    """A draw of z_t ~ q(z_t|y) = N(sqrt(ᾱ_t) u_y, (1 - ᾱ_t) I): u, eps (B, d) -> (B, d)."""
    return alpha_bar[t].sqrt() * u + (1 - alpha_bar[t]).sqrt() * eps


def kl_z0(u: Tensor, alpha_bar: Tensor) -> Tensor:
    """KL(q(z_0|y) || N(0, I)) per example, (B,): ½(ᾱ_0|u|² + d(1 - ᾱ_0) - d - d·log(1 - ᾱ_0))."""
    d, ab0 = u.shape[1], alpha_bar[0]
    return 0.5 * (ab0 * (u**2).sum(1) + d * (1 - ab0) - d - d * torch.log1p(-ab0))
