"""Flow matching: a velocity field trained by regression along a straight path from data to noise.

Conditional flow matching (Lipman et al. 2023) on the straight path of rectified flow (Liu et al.
2023), the objective of π0's action expert (Black et al. 2024). The book's direction of time is the
diffusion chain's: t = 0 is data, t = 1 is noise,

    x_t = (1 - t) x0 + t ε,   ε ~ N(0, I),   t ∈ [0, 1],                         (1)

whose velocity for one pair (x0, ε) is u = dx_t/dt = ε - x0 (2). A network v_θ(x_t, t) regressed
onto u, L = E_{t, x0, ε} |v_θ(x_t, t) - (ε - x0)|² (3), learns the marginal velocity
v*(x, t) = E[ε - x0 | x_t = x], and the ODE dx/dt = v*(x, t), run from t = 1 with x ~ N(0, I) down to
t = 0, carries the noise onto the data (Lipman et al. 2023, thm. 1). It is a probability-flow ODE of
chapter 4 for the (not variance-preserving) path α(t) = 1 - t, σ(t) = t, trained directly; the
prediction converts as x0 = x_t - t v and ε = x_t + (1 - t) v (4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import UserError

__all__ = ["flow_path", "flow_target", "flow_loss", "flow_times", "x0_from_velocity", "eps_from_velocity",
           "sample_flow"]

Tensor = torch.Tensor
Velocity = Callable[[Tensor, Tensor], Tensor]  # (x (B, ...), t (B,) in [0, 1]) -> velocity (B, ...)


def _per_sample(t: Tensor, x: Tensor) -> Tensor:
    """t (B,) shaped to broadcast over x (B, ...)."""
    if t.dim() != 1 or t.shape[0] != x.shape[0]:
        raise UserError(f"t must be one time per sample, shape ({x.shape[0]},), got {tuple(t.shape)}.")
    return t.to(x).reshape(-1, *([1] * (x.dim() - 1)))


def flow_path(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t) x0 + t ε (eq. 1). x0, eps: (B, ...); t: (B,) in [0, 1]."""
    if x0.shape != eps.shape:
        raise UserError(f"x0 and eps must have the same shape, got {tuple(x0.shape)} and {tuple(eps.shape)}.")
    tt = _per_sample(t, x0)
    return (1 - tt) * x0 + tt * eps


def flow_target(x0: Tensor, eps: Tensor) -> Tensor:
    """The conditional velocity u = dx_t/dt = ε - x0 of the straight path (eq. 2)."""
    return eps - x0


def x0_from_velocity(xt: Tensor, v: Tensor, t: Tensor) -> Tensor:
    """The clean point a velocity implies: x0 = x_t - t v (eq. 4)."""
    return xt - _per_sample(t, xt) * v


def eps_from_velocity(xt: Tensor, v: Tensor, t: Tensor) -> Tensor:
    """The noise a velocity implies: ε = x_t + (1 - t) v (eq. 4)."""
    return xt + (1 - _per_sample(t, xt)) * v


def flow_loss(velocity: Velocity, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """L = mean |v_θ(x_t, t) - (ε - x0)|² over a batch, t ~ U(0, 1), ε ~ N(0, I) (eq. 3).

    velocity: the network, (x_t (B, ...), t (B,)) -> (B, ...); x0: a batch of data (B, ...). The noise
    and times are drawn on x0's device from `generator` (which must live there too).
    """
    t = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    v = velocity(flow_path(x0, eps, t), t)
    if v.shape != x0.shape:
        raise UserError(f"The velocity network must return the shape of its input {tuple(x0.shape)}, "
                        f"got {tuple(v.shape)}.")
    return (v - flow_target(x0, eps)).pow(2).mean()


def flow_times(steps: int) -> Tensor:
    """The grid 1 = t_0 > t_1 > ... > t_steps = 0 of `steps` equal Euler steps (float64)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"steps must be a positive integer, got {steps!r}.")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


@torch.no_grad()
def sample_flow(velocity: Velocity, x: Tensor, ts: Tensor, *, generator: torch.Generator | None = None,
                callback=None) -> Tensor:
    """Euler's method on dx/dt = v(x, t) from ts[0] (noise, t = 1) down to ts[-1] (data, t = 0).

    x: the start x_1 ~ N(0, I) (B, ...); ts: decreasing times in [0, 1] (`flow_times`); one network
    evaluation per step. generator: unused (the ODE is deterministic), kept for the samplers' signature.
    callback(i, t, x, x0_hat) after each step.
    """
    ts = torch.as_tensor(ts, dtype=torch.float64)
    if ts.dim() != 1 or ts.numel() < 2 or not bool((ts[1:] < ts[:-1]).all()) or ts.min() < 0 or ts.max() > 1:
        raise UserError("ts must be a decreasing grid of at least two times in [0, 1] (see flow_times).")
    for i, (t, s) in enumerate(zip(ts[:-1].tolist(), ts[1:].tolist(), strict=True)):
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
        # 1. the velocity at (x, t), 2. one Euler step to s < t (dt = s - t is negative)
        v = velocity(x, tt)
        x = x + (s - t) * v
        if callback is not None:
            callback(i, s, x, x0_from_velocity(x, v, torch.full_like(tt, s)))
    return x
