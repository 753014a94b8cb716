"""A small convolutional classifier for 28 x 28 images: the judge of the image samples (chapter 3)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError

__all__ = ["ImageClassifier"]


class ImageClassifier(nn.Module):
    """Logits (B, classes) for images (B, 1, 28, 28) in [-1, 1]: two conv blocks and an MLP head."""

    def __init__(self, classes: int = 10, width: int = 32, dropout: float = 0.25):
        super().__init__()
        self.config = {"classes": classes, "width": width, "dropout": dropout}
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * w * 49, 128), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise UserError(f"x must have shape (B, 1, 28, 28), got {tuple(x.shape)}.")
        return self.head(self.features(x))
