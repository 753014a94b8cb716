"""One-call set-up for every chapter: seed, device, quick mode, Colab detection, plot style."""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError

__all__ = ["Setup", "setup", "pick_device", "is_quick", "in_colab"]


@dataclass(frozen=True)
class Setup:
    """What `setup()` decided; printed as one line at the top of each chapter."""

    seed: int
    device: torch.device
    quick: bool
    colab: bool

    def size(self, quick: int, full: int) -> int:
        """Pick a size: `quick` in quick mode (CI), `full` otherwise. Claims never depend on it."""
        return quick if self.quick else full

    def __str__(self) -> str:
        where = "Colab" if self.colab else "local"
        mode = "quick (DDPM_NB_QUICK=1)" if self.quick else "full"
        return f"ddpm_nb: seed {self.seed}, device {self.device}, {mode} mode, {where}"


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def is_quick() -> bool:
    """Quick mode (`DDPM_NB_QUICK=1`, used by CI) shrinks what is computed live, never a claim."""
    value = os.environ.get("DDPM_NB_QUICK", "0").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise UserError(f"DDPM_NB_QUICK={value!r} is not understood: set it to 1 (quick) or 0 (full).")


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU (or `prefer` if given)."""
    if prefer is not None:
        if prefer not in ("cuda", "mps", "cpu"):
            raise UserError(f"Unknown device {prefer!r}: use 'cuda', 'mps' or 'cpu'.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup(seed: int = 0, device: str | None = None, verbose: bool = True) -> Setup:
    """Seed Python, NumPy and torch; choose the device; apply the book's plot style.

    Functions that draw noise still take an explicit `torch.Generator`: `setup` only seeds the rest.
    """
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    from .plot import use_style

    use_style()
    cfg = Setup(seed=seed, device=pick_device(device), quick=is_quick(), colab=in_colab())
    if verbose:
        print(cfg)
    return cfg
