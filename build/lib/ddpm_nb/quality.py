"""Sample-quality measures: sliced Wasserstein distance (2-D) and a classifier's judgement (images)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import check_shape
from .progress import progress_bar

__all__ = ["sliced_wasserstein", "classifier_report", "accuracy", "generate"]


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, *, projections: int = 200,
                       generator: torch.Generator | None = None) -> float:
    """Sliced Wasserstein-1 distance between point sets x, y (N, D) of equal size.

    The mean over random unit directions θ of W1 between the 1-D projections θ·x and θ·y; in 1-D,
    W1 is the mean gap between the sorted samples (Rabin et al. 2011; Bonneel et al. 2015).
    """
    check_shape("x", x, (None, None))
    check_shape("y", y, (x.shape[0], x.shape[1]))
    theta = torch.randn(projections, x.shape[1], generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=1, keepdim=True)
    px, py = (x.double() @ theta.T).sort(0).values, (y.double() @ theta.T).sort(0).values
    return float((px - py).abs().mean())


@torch.no_grad()
def _probs(classifier: nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    classifier.eval()
    device = next(classifier.parameters()).device
    out = [torch.softmax(classifier(images[i:i + batch].to(device)), 1).cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out)


def accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images (N, 1, 28, 28) in [-1, 1] whose predicted class is the label (N,)."""
    return float((_probs(classifier, images).argmax(1) == labels.cpu()).double().mean())


def classifier_report(classifier: nn.Module, images: torch.Tensor) -> dict:
    """How a classifier sees generated images (N, 1, 28, 28): confidence, class entropy, counts.

    confidence: mean top-class probability (sharp, recognisable samples score high);
    class_entropy: entropy in nats of the predicted-class frequencies (log 10 = 2.30 when every
    class appears equally often: no garment is missing).
    """
    p = _probs(classifier, images)
    counts = torch.bincount(p.argmax(1), minlength=p.shape[1]).double()
    freq = counts / counts.sum()
    entropy = -float((freq[freq > 0] * freq[freq > 0].log()).sum())
    return {"confidence": float(p.max(1).values.mean()), "class_entropy": entropy,
            "max_entropy": math.log(p.shape[1]), "counts": counts.long().tolist()}


def generate(sampler, denoiser, n: int, shape: tuple[int, ...], ts, *, generator: torch.Generator,
             batch: int = 250, progress: bool = True, **kwargs) -> torch.Tensor:
    """n samples (n, *shape) from `sampler(denoiser, x_T, ts, ...)`, drawn in batches with a progress bar."""
    out = []
    for i in progress_bar(range(0, n, batch), desc="sampling", disable=not progress):
        x = torch.randn((min(batch, n - i), *shape), generator=generator).to(denoiser.device)
        out.append(sampler(denoiser, x, ts, generator=generator, **kwargs).cpu())
    return torch.cat(out)
