"""UniPC: a predictor-corrector solver of the probability-flow ODE (Zhao et al. 2023, NeurIPS).

In data prediction the ODE's exact step from s to t (λ = log(α/σ), h = λ_t - λ_s) is

    x_t = (σ_t/σ_s) x_s + σ_t ∫_{λ_s}^{λ_t} e^λ x̂_0(λ) dλ
        = (σ_t/σ_s) x_s + α_t Σ_{n≥0} h^{n+1} φ_{n+1}(-h) x̂_0^{(n)}(λ_s)                     (1)

(Lu et al. 2022, DPM-Solver++, eq. 9), with φ_1(z) = (e^z - 1)/z and φ_{k+1}(z) = (φ_k(z) - 1/k!)/z.
The n = 0 term is DDIM's step. UniPC replaces the unknown derivatives by differences
D_k = x̂_0(λ_k) - x̂_0(λ_s) at earlier times (r_k = (λ_k - λ_s)/h < 0) and, in the corrector, at the
new time too (r = 1): it writes the tail of (1) as α_t B(h) Σ_k a_k D_k / r_k, and since
D_k / r_k = Σ_{n≥1} r_k^{n-1} h^n / n! x̂_0^{(n)}, matching the first q derivatives asks

    Σ_k a_k r_k^{n-1} = n! h φ_{n+1}(-h) / B(h),    n = 1..q                                   (2)

(Zhao et al. 2023, thm. 3.1; B(h) = e^h - 1, their "B2", cancels when (2) is solved exactly). The
predictor UniP uses the `order - 1` previous predictions; the network is then evaluated at the
predicted point, and the corrector UniC adds that evaluation to (2), raising the order by one at no
extra cost: the same evaluation starts the next step. The last step is not corrected; the sample
is the denoised x̂_0 at the last time, as for the other continuous-time samplers here.
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from ..sde import alpha_sigma
from .continuous import denoise_at
from .denoiser import Denoiser, check_times

__all__ = ["sample_unipc", "unipc_coefficients"]

Tensor = torch.Tensor


def _phis(h: float, n: int) -> list[float]:
    """[φ_1(-h), ..., φ_n(-h)] by the recursion φ_{k+1}(z) = (φ_k(z) - 1/k!)/z."""
    z = -h
    out = [math.expm1(z) / z]
    for k in range(1, n):
        out.append((out[-1] - 1 / math.factorial(k)) / z)
    return out


def unipc_coefficients(rs: list[float], h: float) -> list[float]:
    """The a_k of eq. (2) for the differences at r_k = rs[k], with B(h) = e^h - 1 (a q×q solve)."""
    q = len(rs)
    if q == 0:
        return []
    phi = _phis(h, q + 1)
    b_h = math.expm1(h)
    rhs = torch.tensor([math.factorial(n) * h * phi[n] / b_h for n in range(1, q + 1)], dtype=torch.float64)
    vander = torch.tensor([[r ** (n - 1) for r in rs] for n in range(1, q + 1)], dtype=torch.float64)
    return torch.linalg.solve(vander, rhs).tolist()


@torch.no_grad()
def sample_unipc(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                 callback=None, order: int = 2) -> Tensor:
    """UniPC with data prediction (Zhao et al. 2023, Alg. for x-prediction, B(h) = e^h - 1): multistep
    predictor of order `order`, corrector of order `order + 1`; one network evaluation per step, plus
    the final denoising one."""
    if order not in (1, 2, 3):
        raise UserError(f"UniPC's order must be 1, 2 or 3, got {order!r}.")
    ts = check_times(model, ts)
    a_s = [tuple(float(v) for v in alpha_sigma(model, t)) for t in ts]
    lam = [math.log(a / s) for a, s in a_s]
    m_now, _ = denoise_at(model, x, ts[0])
    history: list[tuple[float, Tensor]] = []  # (λ, x̂_0) of earlier steps, newest first
    for i in range(len(ts) - 1):
        (a_t, s_t), (_, s_s), h = a_s[i + 1], a_s[i], lam[i + 1] - lam[i]
        # 1. the exactly integrated part of eq. (1): DDIM's step from x_s with x̂_0(s)
        base = (s_t / s_s) * x - a_t * math.expm1(-h) * m_now
        # 2. predictor UniP: differences to the order - 1 latest predictions
        prev = history[: order - 1]
        rs = [(lk - lam[i]) / h for lk, _ in prev]
        ds = [mk - m_now for _, mk in prev]
        scale = a_t * math.expm1(h)  # α_t B(h)
        pred = base + scale * sum((a / r) * d for a, r, d in zip(unipc_coefficients(rs, h), rs, ds,
                                                                  strict=True)) if prev else base
        # 3. evaluate at the predicted point; 4. corrector UniC with that evaluation (r = 1)
        m_next, _ = denoise_at(model, pred, ts[i + 1])
        if i + 1 < len(ts) - 1:
            coeffs = unipc_coefficients([*rs, 1.0], h)
            x = base + scale * sum((a / r) * d for a, r, d in zip(coeffs, [*rs, 1.0], [*ds, m_next - m_now],
                                                                   strict=True))
        else:
            x = pred
        history.insert(0, (lam[i], m_now))
        m_now = m_next
        if callback is not None:
            callback(i, ts[i + 1], x, m_next)
    return m_now
