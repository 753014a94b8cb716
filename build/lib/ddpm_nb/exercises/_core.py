"""What every checker shares: calling the student's function and reporting in plain words."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence

import torch


class ExerciseNotDone(AssertionError):
    """The exercise stub has not been filled in yet."""


class ExerciseWrong(AssertionError):
    """The answer runs but is not right; the message says what differs and gives a hint."""


class PackageCalled(Exception):
    """Raised in place of a package function that answers the exercise being checked."""


def _stub(*args, **kwargs):
    # Looks nothing up in its globals: this code runs with the globals of the function it replaces.
    raise __import__("ddpm_nb.exercises._core", fromlist=["PackageCalled"]).PackageCalled()


def answer_functions(obj) -> list:
    """The plain Python functions behind `obj`: a function (unwrapped from its decorators), or every
    function a class defines itself."""
    if inspect.isclass(obj):
        return [f for v in vars(obj).values() for f in answer_functions(v)]
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    obj = inspect.unwrap(obj) if callable(obj) else obj
    code = getattr(obj, "__code__", None)
    if inspect.isfunction(obj) and code is not None and not code.co_freevars:
        return [obj]
    return []


@contextlib.contextmanager
def forbid(*objects) -> Iterator[None]:
    """While the student's answer runs, the package's own answers (functions, or classes: all their
    methods) raise PackageCalled, however the student reached them (`nb.q_step`, an import, an alias).
    Only their code is swapped, and it is put back on exit."""
    saved = [(f, f.__code__) for obj in objects for f in answer_functions(obj)]
    try:
        for f, _ in saved:
            f.__code__ = _stub.__code__
        yield
    finally:
        for f, code in saved:
            f.__code__ = code


def _label(obj) -> str:
    return f"{getattr(obj, '__module__', 'ddpm_nb')}.{getattr(obj, '__qualname__', repr(obj))}"


def attempt(exercise: str, fn: Callable, *args, forbidden: Sequence = ()):
    """Call the student's `fn(*args)`, turning a stub or a crash into a clear message.

    forbidden: the package's functions (or classes) that answer this exercise; an answer that is one of
    them or calls one is rejected, since the exercise asks for an implementation."""
    name = getattr(fn, "__name__", "your function")
    try:
        with forbid(*forbidden):
            out = fn(*args)
    except PackageCalled:
        names = " or ".join(f"`{_label(o)}`" for o in forbidden)
        raise ExerciseWrong(
            f"Exercise {exercise}: `{name}` uses the package's own answer ({names}). The exercise "
            f"asks you to write it yourself, with torch operations."
        ) from None
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
