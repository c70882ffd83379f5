"""The statistics of a study: mean and spread over seeds, paired t-intervals, McNemar's exact test and the paired
bootstrap (scipy, imported when first used), and the verdict rule.

A difference is called distinguishable when its interval excludes 0, and "not distinguishable" otherwise.
"""
from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; nan for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def t_interval(differences, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): the t-interval of the mean of paired differences; nan bounds for fewer than two."""
    # Student's t quantile from scipy.special, the function scipy.stats.t.ppf calls (the same number): scipy.stats
    # takes a second of CPU to import, and the app's Compare page needs nothing else from it.
    from scipy.special import stdtrit
    d = np.asarray(differences, dtype=np.float64)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = float(stdtrit(len(d) - 1, 0.5 + level / 2) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, mean - half, mean + half


def mcnemar(a_correct, b_correct) -> dict:
    """McNemar's exact test: of the samples exactly one model gets right, is the split 50/50?"""
    from scipy import stats
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p": p}


def bootstrap_difference(a_correct, b_correct, level: float = LEVEL, resamples: int = 2000,
                         seed: int = 0) -> tuple[float, float, float]:
    """(difference, low, high) of accuracy A - B in points, resampling the test images in pairs (percentile)."""
    from scipy import stats
    a = np.asarray(a_correct, dtype=np.float64)
    b = np.asarray(b_correct, dtype=np.float64)
    result = stats.bootstrap((a, b), lambda x, y, axis=-1: 100 * (x.mean(axis) - y.mean(axis)), paired=True,
                             vectorized=True, n_resamples=resamples, confidence_level=level, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(100 * (a.mean() - b.mean())), float(result.confidence_interval.low), float(result.confidence_interval.high)


def verdict(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "no interval"
    if low > 0:
        return "A above B"
    if high < 0:
        return "A below B"
    return "not distinguishable"
