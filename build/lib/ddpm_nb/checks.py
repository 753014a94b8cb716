"""Visible claim checks: each prints one short line when the claim holds and raises when it fails.

A chapter states a claim in prose and proves it with `check_close`, `check_true` or, for a quantity
measured with noise, `check_estimate`, so a broken formula in `ddpm_nb` makes the chapter fail under
nbval and in the site build.

Three kinds of line come out, and `tools/claims.py` counts them per chapter:

    ✓ name: ...                              the claim was checked and holds
    ✓ main claim: name: ...                  one of the chapter's named main claims, checked
    – name: not checked at this size (...)   too few samples for the check to have power

A main claim (``main=True``) must keep its power in quick mode: without it, it fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .errors import UserError

__all__ = ["ClaimFailed", "check_close", "check_true", "check_estimate", "check_shape", "as_array",
           "NOT_CHECKED"]

NOT_CHECKED = "not checked at this size"


class ClaimFailed(AssertionError):
    """A claim of the book did not hold."""


def as_array(x) -> np.ndarray:
    """A float64 NumPy copy of a number, list, array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _label(name: str, main: bool) -> str:
    return f"main claim: {name}" if main else name


def check_close(name: str, got, want, tol: float = 1e-6, rtol: float = 0.0, *, main: bool = False) -> None:
    """Check |got - want| <= tol + rtol*|want| elementwise; print one line with the max error.

    got, want: numbers, arrays or tensors of the same shape (broadcasting is not allowed, so a
    shape slip cannot pass silently). main: one of the chapter's named main claims.
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
            f"{_label(name, main)}: FAILED, max error {worst:.3g} exceeds the tolerance "
            f"(at {i}: got {g[i]:.6g}, want {w[i]:.6g}, allowed {bound[i]:.3g})."
        )
    extra = f" + {rtol:.2g}·|want|" if rtol else ""
    print(f"✓ {_label(name, main)}: max error {worst:.2g} (tolerance {tol:.2g}{extra})")


def check_true(name: str, condition: bool, detail: str = "", *, main: bool = False) -> None:
    """Check a yes/no claim; print one line; raise `ClaimFailed` with `detail` if it is false."""
    if not bool(condition):
        raise ClaimFailed(f"{_label(name, main)}: FAILED. {detail}".strip())
    print(f"✓ {_label(name, main)}" + (f": {detail}" if detail else ""))


def check_estimate(name: str, estimate, stderr, *, above: float | None = None, below: float | None = None,
                   resolution: float, z: float = 3.0, shown: bool = False, main: bool = False,
                   unit: str = "") -> bool:
    """Check a claim on a quantity measured with noise: its true value is >= `above` and/or <= `below`.

    estimate, stderr: the measured value and its standard error (of the paired difference, where
    the samples are paired). The check has power only when z·stderr <= `resolution`, the smallest
    violation of the claim that matters; otherwise it prints "not checked at this size" and returns
    False (a main claim without power raises instead: main claims must be checked in quick mode).

    shown=False: the claim holds unless the estimate is more than z standard errors on the wrong
    side of the bound (the data do not refute it). shown=True: the estimate must be more than z
    standard errors on the right side (the data show it). Returns True when checked and holding.
    """
    if above is None and below is None:
        raise UserError("check_estimate needs a bound: give above=, below= or both.")
    if resolution <= 0 or z <= 0:
        raise UserError("resolution and z must be positive.")
    est, se = float(as_array(estimate)), float(as_array(stderr))
    label = _label(name, main)
    if not (np.isfinite(est) and np.isfinite(se)) or se < 0:
        raise ClaimFailed(f"{label}: the estimate {est} ± {se} is not a finite value with a standard error.")
    told = f"{est:.4g} ± {se:.2g}{unit}"
    if z * se > resolution:
        if main:
            raise ClaimFailed(f"{label}: FAILED, no power at this size: {z:g}·stderr = {z * se:.2g} is wider "
                              f"than the resolution {resolution:.2g} the claim needs ({told}).")
        print(f"– {name}: {NOT_CHECKED} ({told}; {z:g}·stderr = {z * se:.2g} > resolution {resolution:.2g})")
        return False
    margin = z * se if shown else -z * se
    wrong = []
    if above is not None and not est - margin >= above:
        wrong.append(f">= {above:g}")
    if below is not None and not est + margin <= below:
        wrong.append(f"<= {below:g}")
    bounds = " and ".join(f"{op} {v:g}" for op, v in ((">=", above), ("<=", below)) if v is not None)
    how = "shown" if shown else "not refuted"
    if wrong:
        why = "the data do not show it" if shown else "the data refute it"
        raise ClaimFailed(f"{label}: FAILED, {told} is not {' and '.join(wrong)} within {z:g} "
                          f"standard errors ({why}).")
    print(f"✓ {label}: {told} {bounds} ({how} at {z:g} standard errors)")
    return True


def check_shape(name: str, x: torch.Tensor, shape: Sequence[int | None]) -> None:
    """Raise a one-sentence `ValueError` unless tensor `x` has `shape` (None matches any size)."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    want = tuple(shape)
    ok = x.dim() == len(want) and all(w is None or w == s for s, w in zip(x.shape, want, strict=False))
    if not ok:
        pretty = "(" + ", ".join("*" if w is None else str(w) for w in want) + ")"
        raise UserError(f"{name} must have shape {pretty}, got {tuple(x.shape)}.")
