"""Visible claim checks: each prints one short line when the claim holds and raises when it fails.

A chapter states a claim in prose and proves it with `check_close` (or `check_true`), so a broken
formula in `ddpm_nb` makes the chapter fail under nbval and in the site build.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .errors import UserError

__all__ = ["ClaimFailed", "check_close", "check_true", "check_shape", "as_array"]


class ClaimFailed(AssertionError):
    """A claim of the book did not hold."""


def as_array(x) -> np.ndarray:
    """A float64 NumPy copy of a number, list, array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def check_close(name: str, got, want, tol: float = 1e-6, rtol: float = 0.0) -> None:
    """Check |got - want| <= tol + rtol*|want| elementwise; print one line with the max error.

    got, want: numbers, arrays or tensors of the same shape (broadcasting is not allowed, so a
    shape slip cannot pass silently).
    """
    if tol < 0 or rtol < 0:
        raise UserError("tol and rtol must be non-negative.")
    g, w = as_array(got), as_array(want)
    if g.shape != w.shape:
        raise ClaimFailed(f"{name}: shapes differ, got {g.shape} but want {w.shape}.")
    if not np.all(np.isfinite(g)):
        raise ClaimFailed(f"{name}: the computed value is not finite.")
    err = np.abs(g - w)
    bound = tol + rtol * np.abs(w)
    worst = float(err.max()) if err.size else 0.0
    if np.any(err > bound):
        i = tuple(int(k) for k in np.unravel_index(int(np.argmax(err - bound)), err.shape))
        raise ClaimFailed(
            f"{name}: FAILED, max error {worst:.3g} exceeds the tolerance "
            f"(at {i}: got {g[i]:.6g}, want {w[i]:.6g}, allowed {bound[i]:.3g})."
        )
    extra = f" + {rtol:.2g}·|want|" if rtol else ""
    print(f"✓ {name}: max error {worst:.2g} (tolerance {tol:.2g}{extra})")


def check_true(name: str, condition: bool, detail: str = "") -> None:
    """Check a yes/no claim; print one line; raise `ClaimFailed` with `detail` if it is false."""
    if not bool(condition):
        raise ClaimFailed(f"{name}: FAILED. {detail}".strip())
    print(f"✓ {name}" + (f": {detail}" if detail else ""))


def check_shape(name: str, x: torch.Tensor, shape: Sequence[int | None]) -> None:
    """Raise a one-sentence `ValueError` unless tensor `x` has `shape` (None matches any size)."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    want = tuple(shape)
    ok = x.dim() == len(want) and all(w is None or w == s for s, w in zip(x.shape, want, strict=False))
    if not ok:
        pretty = "(" + ", ".join("*" if w is None else str(w) for w in want) + ")"
        raise UserError(f"{name} must have shape {pretty}, got {tuple(x.shape)}.")
