"""`ddpm-nb bench images`: the image model judged by a classifier trained on real images (chapter 3)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoints import load_weights
from ..data.fashion_mnist import load_fashion_mnist, to_model_range
from ..errors import UserError
from ..files import file_sha256
from ..quality import accuracy, classifier_report, generate
from ..recipes import build, checkpoint_path, denoiser_from
from ..samplers import get_sampler, timesteps
from .common import stored_config

__all__ = ["bench_images"]


def bench_images(*, checkpoint: str | None = None, samples: int = 1000, sampler: str = "ddim",
                 steps: int | None = None, seed: int = 12345) -> dict:
    """The image model judged by a classifier trained on real images (chapter 3)."""
    if sampler not in ("ddim", "ddpm"):
        raise UserError(f"The image bench samples with ddim or ddpm, got {sampler!r}.")
    ddpm_path = Path(checkpoint) if checkpoint else checkpoint_path("ddpm-images")
    cls_path = checkpoint_path("fashion-classifier")
    net, _ = load_weights(ddpm_path, build, expect={"data": "fashion-mnist"})
    judge, _ = load_weights(cls_path, build, expect={"data": "fashion-mnist-labelled"})
    config = stored_config(ddpm_path)
    test = load_fashion_mnist("test")
    acc = accuracy(judge, to_model_range(test.images), test.labels)
    denoiser = denoiser_from(net, config)
    g = torch.Generator().manual_seed(seed)
    steps = steps or 50
    ts = timesteps(denoiser.T, steps) if sampler == "ddim" else list(range(denoiser.T, 0, -1))
    n = samples
    x = generate(get_sampler(sampler), denoiser, n, (1, 28, 28), ts, generator=g,
                 clip_x0=1.0)
    report = classifier_report(judge, x.clamp(-1, 1))
    return {
        "dataset": test.name,
        "classifier_accuracy_on_real": acc,
        "sample_confidence": report["confidence"],
        "sample_class_entropy": report["class_entropy"],
        "max_class_entropy": report["max_entropy"],
        "sample_class_counts": report["counts"],
        "samples": n,
        "sampler": sampler,
        "steps": len(ts),
        "seed": seed,
        "checkpoint": str(ddpm_path),
        "checkpoint_sha256": file_sha256(ddpm_path),
        "classifier_checkpoint": str(cls_path),
        "classifier_checkpoint_sha256": file_sha256(cls_path),
    }
