"""What the network outputs: ε directly, or v, turned into ε by the schedule (chapter 4).

v-prediction (Salimans & Ho 2022, sec. 4 and appendix D): with x_t = α_t x_0 + σ_t ε,
α_t = sqrt(ᾱ_t), σ_t = sqrt(1 - ᾱ_t), the network predicts v = α_t ε - σ_t x_0, and

    ε̂ = σ_t x_t + α_t v̂,        x̂_0 = α_t x_t - σ_t v̂.

Where the data is drowned in noise (α_t → 0) an ε-network's error δ becomes an error δ σ_t / α_t in
x̂_0: 160 δ at t = T of the linear schedule, and a few-step ODE solver's first step carries it
straight into x (chapter 4 measures this). Through v the same x̂_0 is well conditioned at every t.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from ..schedules import alpha_bar, log_alpha_bar_at

__all__ = ["VPrediction"]


class VPrediction(nn.Module):
    """Wrap a network v_θ(x_t, t) so that it is called like an ε-predictor: returns σ_t x_t + α_t v_θ.

    beta: the (T + 1,) schedule the network is trained with. t may be integer steps or, for the
    continuous-time samplers, real numbers in [0, T], where log ᾱ(t) is the book's one continuous-time
    schedule (`ddpm_nb.schedules.log_alpha_bar_at`, the same α(t), σ(t) the samplers use).
    `.net` is the wrapped network; `.v(x, t)` its raw output.
    """

    def __init__(self, net: nn.Module, beta: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("log_alpha_bar", alpha_bar(beta.double()).log().float())

    @property
    def T(self) -> int:
        return self.log_alpha_bar.shape[0] - 1

    def _log_ab(self, t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():  # real times: the interpolant checks their range
            return log_alpha_bar_at(None, t.to(self.log_alpha_bar), knots=self.log_alpha_bar)
        if t.device.type != "meta" and torch.any((t < 0) | (t > self.T)):
            raise UserError(f"t must lie in [0, {self.T}], got {t.min().item()}..{t.max().item()}.")
        return self.log_alpha_bar[t.long()]

    def v(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = self.net(x, t)
        log_ab = self._log_ab(t).to(x).reshape(-1, *([1] * (x.dim() - 1)))
        return (-torch.expm1(log_ab)).sqrt() * x + (0.5 * log_ab).exp() * v
