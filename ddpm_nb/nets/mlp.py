"""An MLP noise predictor for low-dimensional data (the 2-D sets of chapters 2-4)."""

from __future__ import annotations

import torch
from torch import nn

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

    skip=True adds a linear path g(t) ⊙ x_t, with the gain g learnt from the step embedding (zero at
    initialisation). Where the data is drowned in noise, ε* is nearly linear in x_t (ε* ≈ x_t at
    t = T); the LayerNorm-ed blocks can only approximate a linear map, and the few-step ODE solvers
    magnify that error (chapter 4), so the network gets the linear map for free and learns the rest.
    """

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 4, emb_dim: int = 64, skip: bool = False):
        super().__init__()
        self.config = {"dim": dim, "width": width, "depth": depth, "emb_dim": emb_dim, "skip": skip}
        self.dim = dim
        self.inp = nn.Linear(dim, width)
        self.time = TimeEmbedding(emb_dim, width)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))
        self.gain = None
        if skip:
            self.gain = nn.Linear(width, dim)
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.gain.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}.")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}.")
        h, e = self.inp(x), self.time(t)
        for block in self.blocks:
            h = block(h, e)
        out = self.out(h)
        return out if self.gain is None else out + self.gain(e) * x
