"""Samplers. One signature for all: `sample_x(model, x, ts, *, generator=None, callback=None) -> x`.

`model` is a `Denoiser`: a network ε_θ(x_t, t) together with its schedule β (T + 1,).
`x` is the starting noise x_T (B, ...); `ts` the decreasing times to visit, from ts[0] down to
ts[-1] > 0, after which the sampler lands on x_0. `callback(i, t, x, x0_hat)` sees every step
(the book draws trajectories with it). `ddpm` and `ddim` visit integer steps; the continuous-time
solvers (`euler_maruyama`, `euler`, `heun`, `dpm_solver`, `rk45`) accept real times (see
`continuous_timesteps`) and end with one denoising evaluation x_0 = (x - σ ε_θ)/α at ts[-1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .diffusion import p_mean_from_eps, x0_from_eps
from .elbo import reverse_variance
from .schedules import alpha_bar, check_beta

__all__ = [
    "Denoiser", "SAMPLERS", "timesteps", "continuous_timesteps", "sample_ddpm", "sample_ddim", "ddim_encode",
    "sample_euler_maruyama", "sample_euler", "sample_heun", "sample_dpm_solver", "sample_rk45", "get_sampler",
]

Tensor = torch.Tensor


@dataclass
class Denoiser:
    """A noise predictor with its schedule: `eps(x, t)` calls `net(x, t)` with t a (B,) long tensor."""

    net: Callable[[Tensor, Tensor], Tensor]
    beta: Tensor

    def __post_init__(self):
        check_beta(self.beta)
        self.alpha_bar = alpha_bar(self.beta)

    @property
    def T(self) -> int:
        return self.beta.shape[0] - 1

    def eps(self, x: Tensor, t: int) -> Tensor:
        return self.net(x, torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device))


def timesteps(T: int, n: int, *, first: int | None = None) -> list[int]:
    """n decreasing steps from `first` (default T) to 1, evenly spaced (rounded): the DDIM grid."""
    first = T if first is None else first
    if not 1 <= n <= first <= T:
        raise ValueError(f"Need 1 <= n <= first <= T, got n={n}, first={first}, T={T}.")
    steps = torch.linspace(first, 1, n).round().long().tolist()
    return sorted(set(steps), reverse=True)


def _check(model: Denoiser, x: Tensor, ts) -> list[int]:
    if not isinstance(model, Denoiser):
        raise ValueError("model must be a ddpm_nb.samplers.Denoiser(net, beta).")
    ts = [int(t) for t in ts]
    if not ts or any(a <= b for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] < 1 or ts[0] > model.T:
        raise ValueError(f"ts must be strictly decreasing steps within 1..{model.T}, got {ts[:5]}...")
    return ts


def _noise(x: Tensor, generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@torch.no_grad()
def sample_ddpm(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, sigma2: str = "beta", clip_x0: float | None = None) -> Tensor:
    """Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2), σ_t² = β_t or β̃_t; ts = T, T-1, ..., 1."""
    ts = _check(model, x, ts)
    if any(a - b != 1 for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] != 1:
        raise ValueError("Ancestral DDPM visits every step: ts must be consecutive and end at 1.")
    var = reverse_variance(model.beta, sigma2).to(x)
    for i, t in enumerate(ts):
        # 1. predict the noise, and the clean point it implies (eq. 15)
        eps = model.eps(x, t)
        x0 = x0_from_eps(x, t, eps, model.alpha_bar)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x - model.alpha_bar[t].to(x).sqrt() * x0) / (1 - model.alpha_bar[t].to(x)).sqrt()
        # 2. the mean of p(x_{t-1} | x_t) (eq. 11), 3. add σ_t z except at the last step
        x = p_mean_from_eps(x, t, eps, model.beta)
        if t > 1:
            x = x + var[t].sqrt() * _noise(x, generator)
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def sample_ddim(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, eta: float = 0.0, clip_x0: float | None = None) -> Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12): deterministic for η = 0, DDPM-like for η = 1."""
    ts = _check(model, x, ts)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}.")
    ab = model.alpha_bar.to(x)
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        # 1. predict the noise and x0 (eq. 12, "predicted x0")
        eps = model.eps(x, t)
        x0 = x0_from_eps(x, t, eps, model.alpha_bar)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
        # 2. σ of the step t -> s (eq. 16), 3. point back along the predicted noise, 4. fresh noise
        sigma = eta * ((1 - ab[s]) / (1 - ab[t]) * (1 - ab[t] / ab[s])).sqrt()
        x = ab[s].sqrt() * x0 + (1 - ab[s] - sigma**2).clamp(min=0).sqrt() * eps
        if s > 0 and eta > 0:
            x = x + sigma * _noise(x, generator)
        if callback is not None:
            callback(i, t, x, x0)
    return x


@torch.no_grad()
def ddim_encode(model: Denoiser, x0: Tensor, ts) -> Tensor:
    """Run deterministic DDIM backwards, x_0 -> x_T along increasing steps `ts` (Song et al. 2021, sec. 4.3).

    The latent it returns decodes back to (nearly) x0 with `sample_ddim(model, latent, ts[::-1])`.
    """
    ts = [int(t) for t in ts]
    if not ts or any(a >= b for a, b in zip(ts, ts[1:], strict=False)) or ts[0] < 1 or ts[-1] > model.T:
        raise ValueError(f"ts must be strictly increasing steps within 1..{model.T}.")
    ab = model.alpha_bar.to(x0)
    x, prev = x0, 0
    for t in ts:
        # the noise is predicted where we stand (step `prev`, or step ts[0] from the clean point)
        eps = model.eps(x, max(prev, ts[0]))
        x0_hat = x0_from_eps(x, prev, eps, model.alpha_bar) if prev > 0 else x
        x = ab[t].sqrt() * x0_hat + (1 - ab[t]).sqrt() * eps
        prev = t
    return x


def continuous_timesteps(model: Denoiser, n: int, *, t_min: float = 1.0, spacing: str = "time",
                         first_logsnr: float | None = None) -> list[float]:
    """n + 1 decreasing real times from T to t_min: evenly spaced in t, or in log-SNR (DPM-Solver's).

    With spacing "logsnr" and `first_logsnr` λ_a, the first step jumps from T straight to the time
    where λ = log(α/σ) = λ_a, and the other n - 1 steps are evenly spaced in λ from there: no steps are
    spent where the noisy data is still featureless.
    """
    from .sde import log_alpha_bar_at

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"The number of steps must be a positive integer, got {n!r}.")
    if not 0 < t_min < model.T:
        raise ValueError(f"t_min must lie in (0, {model.T}), got {t_min}.")
    if spacing == "time":
        if first_logsnr is not None:
            raise ValueError("first_logsnr applies to spacing='logsnr' only.")
        return torch.linspace(model.T, t_min, n + 1, dtype=torch.float64).tolist()
    if spacing != "logsnr":
        raise ValueError(f"Unknown spacing {spacing!r}: choose 'time' or 'logsnr'.")
    fine = torch.linspace(t_min, model.T, 20001, dtype=torch.float64)
    lab = log_alpha_bar_at(model, fine)
    lam = 0.5 * (lab - torch.log1p(-lab.exp().clamp(max=1 - 1e-12)))  # log(α/σ), decreasing in t
    lam_hi, lam_lo = float(lam[0]), float(lam[-1])
    if first_logsnr is None:
        targets = torch.linspace(lam_lo, lam_hi, n + 1, dtype=torch.float64)
    else:
        if not lam_lo < first_logsnr < lam_hi or n < 2:
            raise ValueError(f"first_logsnr must lie in ({lam_lo:.2f}, {lam_hi:.2f}), the log-SNR range "
                             f"from T to t_min, and needs n >= 2 steps; got {first_logsnr}, n={n}.")
        targets = torch.cat([torch.tensor([lam_lo], dtype=torch.float64),
                             torch.linspace(first_logsnr, lam_hi, n, dtype=torch.float64)])
    idx = torch.searchsorted(-lam, -targets).clamp(0, len(fine) - 1)
    ts = fine[idx].tolist()
    ts[0], ts[-1] = float(model.T), float(t_min)
    if any(a <= b for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"{n} steps are too many for this log-SNR range: two steps fall on the same time.")
    return ts


def _check_continuous(model: Denoiser, ts) -> list[float]:
    if not isinstance(model, Denoiser):
        raise ValueError("model must be a ddpm_nb.samplers.Denoiser(net, beta).")
    ts = [float(t) for t in ts]
    if len(ts) < 2 or any(a <= b for a, b in zip(ts, ts[1:], strict=False)) or ts[-1] <= 0 or ts[0] > model.T:
        raise ValueError(f"ts must be at least two strictly decreasing times in (0, {model.T}].")
    return ts


def _denoise(model: Denoiser, x: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """(x̂_0, ε̂) at real time t: x̂_0 = (x - σ ε̂)/α."""
    from .sde import alpha_sigma, eps_at

    a, s = (float(v) for v in alpha_sigma(model, t))
    eps = eps_at(model, x, t)
    return (x - s * eps) / a, eps


def _march(model: Denoiser, x: Tensor, ts, step, callback) -> Tensor:
    """Apply `step(x, t, s)` over consecutive times of ts, then denoise once at ts[-1]."""
    ts = _check_continuous(model, ts)
    for i, (t, s) in enumerate(zip(ts, ts[1:], strict=False)):
        x = step(x, t, s)
        if callback is not None:
            callback(i, s, x, None)
    return _denoise(model, x, ts[-1])[0]


@torch.no_grad()
def sample_euler_maruyama(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                          callback=None) -> Tensor:
    """Euler–Maruyama on the reverse-time VP-SDE (Song et al. 2021, eq. 6 and appendix F)."""
    from .sde import b_at, reverse_sde_drift

    def step(x, t, s):
        # 1. drift of the reverse SDE at (x, t), 2. step back in time by h, 3. add sqrt(b h) z
        noise = math.sqrt(float(b_at(model, t)) * (t - s)) * _noise(x, generator)
        return x - (t - s) * reverse_sde_drift(model, x, t) + noise

    return _march(model, x, ts, step, callback)


@torch.no_grad()
def sample_euler(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                 callback=None) -> Tensor:
    """Euler's method on the probability-flow ODE dx/dt = -½ b(t)(x - ε_θ/σ) (Song et al. 2021, eq. 13)."""
    from .sde import pf_ode_drift

    return _march(model, x, ts, lambda x, t, s: x - (t - s) * pf_ode_drift(model, x, t), callback)


@torch.no_grad()
def sample_heun(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None) -> Tensor:
    """Heun's second-order method on the PF-ODE (Karras et al. 2022, Algorithm 1): 2 evaluations a step."""
    from .sde import pf_ode_drift

    def step(x, t, s):
        # 1. Euler predictor, 2. correct with the slope at the end of the step (trapezoidal rule)
        d = pf_ode_drift(model, x, t)
        return x - (t - s) * 0.5 * (d + pf_ode_drift(model, x - (t - s) * d, s))

    return _march(model, x, ts, step, callback)


@torch.no_grad()
def sample_dpm_solver(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                      callback=None) -> Tensor:
    """DPM-Solver++(2M): multistep, second order, data prediction (Lu et al. 2022, DPM-Solver++, Alg. 2)."""
    from .sde import alpha_sigma

    ts = _check_continuous(model, ts)
    a_s = [tuple(float(v) for v in alpha_sigma(model, t)) for t in ts]
    lam = [math.log(a / s) for a, s in a_s]
    x0_prev, h_prev = None, None
    for i in range(len(ts) - 1):
        # 1. predict x0 at t_i, 2. combine with the previous prediction, 3. the exact linear part
        x0, _ = _denoise(model, x, ts[i])
        h = lam[i + 1] - lam[i]
        if x0_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
        (a_next, s_next), (_, s_now) = a_s[i + 1], a_s[i]
        x = (s_next / s_now) * x - a_next * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i, ts[i + 1], x, x0)
    return _denoise(model, x, ts[-1])[0]


@torch.no_grad()
def sample_rk45(model: Denoiser, x: Tensor, ts, *, generator: torch.Generator | None = None,
                callback=None, rtol: float = 1e-5, atol: float = 1e-5) -> Tensor:
    """Adaptive Runge–Kutta 4(5) (Dormand–Prince, scipy's solve_ivp) on the PF-ODE from ts[0] to ts[-1]."""
    from scipy.integrate import solve_ivp

    from .sde import pf_ode_drift

    ts = _check_continuous(model, ts)
    shape, dtype, device = x.shape, x.dtype, x.device

    def f(t, y):
        xt = torch.as_tensor(y, dtype=dtype, device=device).reshape(shape)
        return pf_ode_drift(model, xt, float(t)).reshape(-1).cpu().double().numpy()

    sol = solve_ivp(f, (ts[0], ts[-1]), x.reshape(-1).cpu().double().numpy(), method="RK45",
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"The ODE solver failed: {sol.message}")
    x = torch.as_tensor(sol.y[:, -1], dtype=dtype, device=device).reshape(shape)
    if callback is not None:
        callback(0, ts[-1], x, None)
    return _denoise(model, x, ts[-1])[0]


SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "euler_maruyama": sample_euler_maruyama,
            "euler": sample_euler, "heun": sample_heun, "dpm_solver": sample_dpm_solver, "rk45": sample_rk45}


def get_sampler(name: str):
    """The sampler function called `name`."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[name]
