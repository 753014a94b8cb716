"""The one family of errors a reader can fix: each message is one sentence saying what was wrong
and what to do. The command line turns them (and FileNotFoundError, PermissionError) into that
sentence and exit status 2, with no traceback; anything else is a bug and keeps its traceback."""

from __future__ import annotations

__all__ = ["UserError", "LossNotFinite", "MissingPackage", "TrainingInterrupted"]


class UserError(ValueError):
    """Something the user can fix: a wrong shape, an unknown name, missing or corrupt data, an
    incompatible checkpoint, an unwritable output. A ValueError, so `except ValueError` still works."""


class LossNotFinite(UserError, FloatingPointError):
    """Training produced a NaN or infinite loss (lower the learning rate, or check the data).
    `value`: the loss; `step`: the update it happened at (None where the raiser does not know it)."""

    def __init__(self, value: float, step: int | None = None):
        self.value, self.step = value, step
        where = "this step" if step is None else f"step {step}"
        super().__init__(f"The loss is {value} at {where}: lower lr or check the data and loss (the last "
                         "saved state, if any, is kept).")

    def __reduce__(self):
        return type(self), (self.value, self.step)


class MissingPackage(UserError, ImportError):
    """An optional package a feature needs is not installed: the message says what to pip install."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the loop saved what can be resumed. `step`: the updates done;
    `state_path`: where the state is (None: no state file was asked for); `saved`: whether this
    interruption wrote it (False: the last state saved by the run is kept, e.g. mid-update)."""

    def __init__(self, step: int, state_path, saved: bool):
        self.step, self.state_path, self.saved = step, state_path, saved
        if state_path is None:
            message = f"interrupted at step {step}; no state file was asked for, so nothing is saved"
        elif saved:
            message = (f"interrupted at step {step}, state saved to {state_path}: rerun the same command "
                       "to resume")
        else:
            message = (f"interrupted at step {step} in the middle of an update: the last saved state in "
                       f"{state_path} is kept; rerun the same command to resume from it")
        super().__init__(message)
