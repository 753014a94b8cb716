"""The networks of chapter 6: NoProp's denoising block, and the same blocks chained for backprop.

A block û_θt(z_{t-1}, x) has an image branch (convolutions with 32, 64, 128 channels, then a linear
layer), a label-embedding branch (a linear layer on z_{t-1}) and a fused MLP giving class logits;
û = softmax(logits) · W_embed (Li, Teh & Pascanu 2025, sec. 3 and fig. 6).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError

__all__ = ["DenoiseBlock", "BackpropChain", "check_images"]


def check_images(x: torch.Tensor) -> None:
    """One clear ValueError unless x is a float batch of images (B, 1, 28, 28)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"x must be a batch of 28x28 grey images of shape (B, 1, 28, 28) in [-1, 1], got "
                        f"{shape}: use to_model_range(images) on Fashion-MNIST-sized images.")


def _conv(c_in: int, c_out: int, pool: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), pool)


class DenoiseBlock(nn.Module):
    """Class logits (B, classes) of one block from z_{t-1} (B, d) and images x (B, 1, 28, 28).

    `features(x)` -> (B, width) is the image branch alone, so a chain of noisy samples can reuse it.
    """

    def __init__(self, classes: int = 10, embed_dim: int = 10, width: int = 128):
        super().__init__()
        # 28x28 -> 14x14 -> 7x7 -> 2x2 (average over overlapping 4x4 windows) -> (B, width)
        self.image = nn.Sequential(_conv(1, 32, nn.MaxPool2d(2)), _conv(32, 64, nn.MaxPool2d(2)),
                                   _conv(64, 128, nn.AdaptiveAvgPool2d(2)), nn.Flatten(),
                                   nn.Linear(128 * 2 * 2, width), nn.BatchNorm1d(width), nn.ReLU())
        self.label = nn.Sequential(nn.Linear(embed_dim, width), nn.BatchNorm1d(width), nn.ReLU())
        hidden = width // 2
        self.fuse = nn.Sequential(nn.Linear(2 * width, width), nn.BatchNorm1d(width), nn.ReLU(),
                                  nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return self.image(x)

    def logits_from(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits from image features h (B, width) and z (B, d)."""
        return self.fuse(torch.cat([h, self.label(z)], dim=1))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from(self.features(x), z)


class BackpropChain(nn.Module):
    """The baseline: T blocks chained, z_t = z_{t-1} + block_t(z_{t-1}, x), logits = head(z_T).

    z_0 = 0 (B, classes); the residual sum keeps a short gradient path to every block. Trained end to
    end with cross-entropy (back-propagation through all T blocks). forward(x) -> logits (B, classes).
    """

    def __init__(self, T: int = 10, classes: int = 10, width: int = 128):
        super().__init__()
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise UserError(f"T must be a whole number of blocks, at least 1, got {T!r}.")
        self.T, self.classes = T, classes
        self.blocks = nn.ModuleList(DenoiseBlock(classes, classes, width) for _ in range(T))
        self.head = nn.Linear(classes, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        z = x.new_zeros(x.shape[0], self.classes)
        for block in self.blocks:
            z = z + block(z, x)
        return self.head(z)
