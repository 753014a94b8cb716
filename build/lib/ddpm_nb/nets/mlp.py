"""An MLP noise predictor for low-dimensional data (the 2-D sets of chapters 2-4)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .embeddings import TimeEmbedding

__all__ = ["MLPDenoiser"]


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.lin1, self.lin2 = nn.Linear(width, width), nn.Linear(width, width)
        self.emb = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        z = self.lin1(torch.nn.functional.silu(self.norm(h))) + self.emb(e)
        return h + self.lin2(torch.nn.functional.silu(z))


class MLPDenoiser(nn.Module):
    """ε_θ(x_t, t) for x_t (B, dim): residual MLP blocks, each told the step through its embedding.

    The same network serves as a v-predictor when wrapped by `nets.prediction.VPrediction` (the 2-D
    model of chapters 2-4)."""

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 4, emb_dim: int = 64):
        super().__init__()
        self.config = {"dim": dim, "width": width, "depth": depth, "emb_dim": emb_dim}
        self.dim = dim
        self.inp = nn.Linear(dim, width)
        self.time = TimeEmbedding(emb_dim, width)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise UserError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}.")
        if t.shape != (x.shape[0],):
            raise UserError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}.")
        h, e = self.inp(x), self.time(t)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)
