"""NoProp-DT predictions over a data set (batched, on the model's device), accuracy, the test split.
The reverse chain itself is `ddpm_nb.noprop.model.infer`."""

from __future__ import annotations

import torch
from torch import nn

from ..data.fashion_mnist import load_fashion_mnist, to_model_range
from ..errors import UserError
from ..progress import progress_bar
from .blocks import check_images
from .model import NoPropDT, infer

__all__ = ["NOPROP_INFERENCE", "DATASETS", "predict", "accuracy", "load_split"]

# The inference whose accuracy the book reports (`ddpm-nb bench noprop`): see chapter 6.
NOPROP_INFERENCE = "eight_chains"
DATASETS = ("fashion-mnist",)
Tensor = torch.Tensor


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, batch_size: int = 500, progress: bool = False, **kw) -> Tensor:
    """Class probabilities (N, classes) for images x (N, 1, 28, 28), in batches on the model's device
    ((samples, N, classes) for a NoPropDT with per_chain=True).

    A NoPropDT goes through `infer(**kw)` (with a generator seeded 0 unless one is given); any other
    classifier through its logits."""
    check_images(x)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    if isinstance(model, NoPropDT) and kw.get("noise", True) and kw.get("generator") is None:
        kw["generator"] = torch.Generator(device=device).manual_seed(0)
    out = []
    for i in progress_bar(range(0, x.shape[0], batch_size), desc="predict", disable=not progress,
                          mininterval=5):
        xb = x[i:i + batch_size].to(device)
        out.append((infer(model, xb, **kw) if isinstance(model, NoPropDT) else model(xb).softmax(-1)).cpu())
    model.train(was_training)
    return torch.cat(out, dim=-2)


def accuracy(probs: Tensor, labels: Tensor) -> float:
    """Fraction of rows of probs (N, classes) whose argmax is the label (N,)."""
    return float((probs.argmax(-1) == labels.to(probs.device)).double().mean())


def load_split(dataset: str, split: str) -> tuple[Tensor, Tensor, str]:
    """(images (N, 1, 28, 28) in [-1, 1], labels (N,), the data set's name) of one split."""
    if dataset not in DATASETS:
        raise UserError(f"Unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}.")
    data = load_fashion_mnist(split)
    return to_model_range(data.images), data.labels, data.name
