"""Checkers for the exercises, one module per chapter (`from ddpm_nb.exercises import ch01`).

A checker prints one line when the answer is right and raises `ExerciseNotDone` (the stub still
raises NotImplementedError) or `ExerciseWrong` (with a hint naming the likely slip) otherwise.
"""

from ._core import ExerciseNotDone, ExerciseWrong

__all__ = ["ExerciseNotDone", "ExerciseWrong"]
