"""What the benchmarks share: a checkpoint's stored config, and a network wrapper that counts calls."""

from __future__ import annotations

from pathlib import Path

from ..checkpoints import WEIGHTS_FORMAT, remedy
from ..files import read_torch

__all__ = ["stored_config", "CountCalls"]


def stored_config(path: Path) -> dict:
    """The config a checkpoint was saved with (read checked, weights_only=True)."""
    return read_torch(path, WEIGHTS_FORMAT, "checkpoint", remedy(path))["config"]


class CountCalls:
    """Wraps a network and counts its batched evaluations: the NFE a sampler really spent."""

    def __init__(self, net):
        self.net, self.calls = net, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.net(x, t)
