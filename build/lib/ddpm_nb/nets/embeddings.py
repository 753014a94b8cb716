"""Sinusoidal embedding of the diffusion step (Vaswani et al. 2017, sec. 3.5; used by Ho et al. 2020)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError

__all__ = ["sinusoidal_embedding", "TimeEmbedding"]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed steps t (B,) as (B, dim): [sin(t ω_k), cos(t ω_k)], ω_k = max_period^(-k/(dim/2))."""
    if dim % 2:
        raise UserError(f"The embedding dimension must be even, got {dim}.")
    if t.dim() != 1:
        raise UserError(f"t must have shape (B,), got {tuple(t.shape)}.")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t followed by a small MLP: (B,) -> (B, out_dim)."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim).to(self.mlp[0].weight.dtype))
