"""Intervals of an evaluation (ddpm_nb.policy.stats), against scipy's own implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from ddpm_nb.errors import UserError
from ddpm_nb.policy.stats import normal_interval, paired_difference, wilson_interval


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (23, 50), (319, 500), (1, 3)])
def test_wilson_matches_scipy(k, n):
    ref = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx([ref.low, ref.high], abs=1e-12)


def test_wilson_refuses_impossible_counts():
    with pytest.raises(UserError):
        wilson_interval(5, 4)
    with pytest.raises(UserError):
        wilson_interval(0, 0)


def test_normal_interval_is_mean_plus_minus_z_standard_errors():
    x = np.random.default_rng(0).uniform(0.5, 1.0, 200)
    half = st.norm.ppf(0.975) * x.std(ddof=1) / math.sqrt(len(x))
    assert normal_interval(list(x)) == pytest.approx([x.mean() - half, x.mean() + half], abs=1e-12)
    assert normal_interval([1.0, 1.0, 0.99])[1] == 1.0  # clipped to the score's range


def test_paired_difference_is_the_mean_and_standard_error_of_the_differences():
    a, b = [1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 1]
    d = np.subtract(a, b)
    mean, se = paired_difference(a, b)
    assert mean == pytest.approx(d.mean()) and se == pytest.approx(st.sem(d))
    with pytest.raises(UserError):
        paired_difference([1, 2], [1])
