"""Intervals for an evaluation's numbers: a success rate (Wilson) and a mean score (normal).

An evaluation of N episodes estimates a success probability p by k/N; its standard error is about
sqrt(p(1-p)/N), so 50 episodes cannot tell 46% from 60%. The intervals below say how sure a table is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import UserError

__all__ = ["Z95", "wilson_interval", "normal_interval", "paired_difference"]

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson's score interval [low, high] for a binomial proportion (Wilson 1927; Brown et al. 2001).

    Better than p ± z·sqrt(p(1-p)/n) near 0 and 1 and for small n: it never leaves [0, 1] and is not
    empty at p = 0 or 1.
    """
    if n < 1 or not 0 <= successes <= n:
        raise UserError(f"A proportion needs 0 <= successes <= n and n >= 1, got {successes} of {n}.")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def normal_interval(values: Sequence[float], z: float = Z95, low: float = 0.0,
                    high: float = 1.0) -> list[float]:
    """mean ± z·s/sqrt(n) (s the sample standard deviation), clipped to [low, high]: the mean score's
    interval by the central limit theorem (the scores are bounded, so it applies well at n >= 30)."""
    n = len(values)
    if n < 2:
        raise UserError(f"An interval for a mean needs at least 2 values, got {n}.")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return [max(low, mean - z * sd / math.sqrt(n)), min(high, mean + z * sd / math.sqrt(n))]


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """mean(a - b) and its standard error, for two evaluations on the same seeds (paired episodes)."""
    if len(a) != len(b) or len(a) < 2:
        raise UserError(f"A paired difference needs two equal-length lists of 2+ values, got {len(a)} "
                        f"and {len(b)}.")
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    return mean, sd / math.sqrt(n)
