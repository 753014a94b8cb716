"""What a recipe is: everything needed to train and rebuild one of the book's models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from ..train import TrainConfig, TrainResult, train

__all__ = ["Recipe", "Fit", "fit_with_loss"]


class Fit(Protocol):
    """fit(model, data, cfg, *, device, state_path, desc, progress, callback) -> TrainResult."""

    def __call__(self, model: nn.Module, data: Any, cfg: TrainConfig, **kw: Any) -> TrainResult: ...


@dataclass(frozen=True)
class Recipe:
    """One trained model of the book: `ddpm-nb train NAME` and `recipes.load(NAME)` both run `fit`.

    config: what the checkpoint stores and `build` rebuilds the network from ({"net", "net_config",
    "schedule", "data", "objective", ...} or a PushT policy config). train / quick: the full run (the
    committed checkpoint) and the tiny test run. data(): the training data (a tensor, tuple of tensors,
    a sampler, or a data set object the fit understands). fit: the training of this family.
    """

    name: str
    what: str
    config: dict
    train: TrainConfig
    quick: TrainConfig
    data: Callable[[], Any]
    fit: Fit


def fit_with_loss(loss: Callable) -> Fit:
    """The usual fit: the book's loop (`ddpm_nb.train.train`) with `loss(model, batch, generator)`."""

    def fit(model: nn.Module, data: Any, cfg: TrainConfig, **kw: Any) -> TrainResult:
        return train(model, loss, data, cfg, **kw)

    return fit
