"""What every checker shares: calling the student's function and reporting in plain words."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


class ExerciseNotDone(AssertionError):
    """The exercise stub has not been filled in yet."""


class ExerciseWrong(AssertionError):
    """The answer runs but is not right; the message says what differs and gives a hint."""


def attempt(exercise: str, fn: Callable, *args):
    """Call the student's `fn(*args)`, turning a stub or a crash into a clear message."""
    name = getattr(fn, "__name__", "your function")
    try:
        out = fn(*args)
    except NotImplementedError:
        raise ExerciseNotDone(
            f"Exercise {exercise}: `{name}` still raises NotImplementedError. Replace that line "
            f"with your code, run the cell, then run this check again."
        ) from None
    except Exception as e:  # the student's code crashed: say where, keep the original as cause
        raise ExerciseWrong(f"Exercise {exercise}: `{name}` raised {type(e).__name__}: {e}") from e
    if out is None:
        raise ExerciseWrong(f"Exercise {exercise}: `{name}` returned None. Did you forget `return`?")
    return out


def expect_tensor(exercise: str, out, shape: Sequence[int]) -> torch.Tensor:
    """The answer must be a tensor of `shape`."""
    if not isinstance(out, torch.Tensor):
        raise ExerciseWrong(f"Exercise {exercise}: return a torch.Tensor, not {type(out).__name__}.")
    if tuple(out.shape) != tuple(shape):
        raise ExerciseWrong(f"Exercise {exercise}: the result should have shape {tuple(shape)}, "
                            f"got {tuple(out.shape)}.")
    return out


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-6) -> bool:
    return bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=0))


def diagnose(exercise: str, got: torch.Tensor, want: torch.Tensor,
             slips: dict[str, torch.Tensor], hint: str, tol: float = 1e-6) -> None:
    """Pass if got ≈ want; otherwise name the first known slip that got matches, or give `hint`."""
    if close(got, want, tol):
        return
    for message, wrong in slips.items():
        if wrong.shape == got.shape and close(got, wrong, tol):
            raise ExerciseWrong(f"Exercise {exercise}: not yet. {message}")
    err = (got.double() - want.double()).abs().max().item()
    raise ExerciseWrong(f"Exercise {exercise}: not yet (largest error {err:.3g}). Hint: {hint}")


def passed(exercise: str, what: str) -> None:
    print(f"✓ Exercise {exercise} passed: {what}")
