"""A small UNet noise predictor for 1-channel images (28 x 28), sized to train on a laptop CPU.

The DDPM architecture in miniature (Ho et al. 2020, appendix B; Ronneberger et al. 2015): residual
blocks with GroupNorm and the step embedding added after the first convolution, down- and up-sampling
with skip connections, self-attention at the coarsest resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .embeddings import TimeEmbedding

__all__ = ["UNet2D"]


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float):
        super().__init__()
        self.n1, self.c1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.e = nn.Linear(emb, cout)
        self.n2, self.c2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x))) + self.e(e)[:, :, None, None]
        h = self.c2(self.drop(F.silu(self.n2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, ch: int, heads: int = 4):
        super().__init__()
        self.norm, self.attn = _norm(ch), nn.MultiheadAttention(ch, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        h, _ = self.attn(h, h, h, need_weights=False)
        return x + h.transpose(1, 2).reshape(B, C, H, W)


class UNet2D(nn.Module):
    """ε_θ(x_t, t) for images x_t (B, C, H, W) with H, W divisible by 2^(len(mults) - 1)."""

    def __init__(self, channels: int = 1, base: int = 32, mults: tuple[int, ...] = (1, 2, 2),
                 blocks: int = 2, attention: bool = True, dropout: float = 0.1, emb_dim: int = 128):
        super().__init__()
        self.config = {"channels": channels, "base": base, "mults": list(mults), "blocks": blocks,
                       "attention": attention, "dropout": dropout, "emb_dim": emb_dim}
        self.channels, self.levels = channels, len(mults)
        emb = 4 * base
        self.time = TimeEmbedding(emb_dim, emb)
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        widths, ch = [base], base
        self.down = nn.ModuleList()
        for i, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(ResBlock(ch, base * m, emb, dropout))
                ch = base * m
                widths.append(ch)
            if i < len(mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                widths.append(ch)
        self.mid1, self.mid2 = ResBlock(ch, ch, emb, dropout), ResBlock(ch, ch, emb, dropout)
        self.mid_attn = Attention(ch) if attention else nn.Identity()
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(ch + widths.pop(), base * m, emb, dropout))
                ch = base * m
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise UserError(f"x must have shape (B, {self.channels}, H, W), got {tuple(x.shape)}.")
        k = 2 ** (self.levels - 1)
        if x.shape[2] % k or x.shape[3] % k:
            raise UserError(f"H and W must be divisible by {k}, got {tuple(x.shape[2:])}.")
        if t.shape != (x.shape[0],):
            raise UserError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}.")
        e = self.time(t)
        h = self.inp(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, e) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], 1), e)
            else:
                h = layer(h)
        return self.out(h)
