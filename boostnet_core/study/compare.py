"""Comparing two variants of one recipe: per exit and on average, A - B over the seeds both have (t-interval), and
for every seed McNemar's exact test and the paired bootstrap over test images, so that even one seed says whether a
difference stands out from the noise of a finite test set. For runs that hold out a validation split, the
budgeted-batch curves (evaluation.json) are interpolated at shares of the full cost and compared alike.
"""
from __future__ import annotations

import math

import numpy as np

from .runs import StudyRun
from .stats import bootstrap_difference, mcnemar, t_interval, verdict
from .variants import Variant

BUDGET_SHARES = (0.3, 0.4, 0.5, 0.6, 0.8)   # where budgeted curves are compared, as shares of the full cost


def orient(v1: Variant, v2: Variant) -> tuple[Variant, Variant]:
    """(A, B) for a pair of variants: BoostNet first when the methods differ, else rescaling on first."""
    def rank(v: Variant):
        return (v.method != "boostnet", not v.grad_rescale)
    return (v1, v2) if rank(v1) <= rank(v2) else (v2, v1)


def compare(a_runs: dict[int, StudyRun], b_runs: dict[int, StudyRun], per_seed_tests: bool = True) -> dict:
    """Per exit: A - B over the seeds both have (t-interval), and per seed McNemar and the paired bootstrap.

    per_seed_tests=False, with two seeds or more, gives the t-intervals alone, without each seed's own tests and the
    budgeted comparison (the app's seed plot: milliseconds instead of seconds of bootstrap resampling).
    """
    seeds = sorted(set(a_runs) & set(b_runs))
    if not seeds:
        return {"seeds": [], "exits": []}
    tests = per_seed_tests or len(seeds) == 1  # one seed: its interval is the bootstrap's
    n_exits = len(a_runs[seeds[0]].top1)
    exits = []
    for k in range(n_exits):
        diffs = [a_runs[s].top1[k] - b_runs[s].top1[k] for s in seeds]
        mean, low, high = t_interval(diffs)
        per_seed = []
        for s in (seeds if tests else []):
            a_ok, b_ok = a_runs[s].test.correct()[k].numpy(), b_runs[s].test.correct()[k].numpy()
            d, lo, hi = bootstrap_difference(a_ok, b_ok, seed=s)
            per_seed.append({"seed": s, "difference": d, "bootstrap_low": lo, "bootstrap_high": hi,
                             "mcnemar_p": mcnemar(a_ok, b_ok)["p"]})
        if len(seeds) == 1:
            low, high = per_seed[0]["bootstrap_low"], per_seed[0]["bootstrap_high"]
        exits.append({"exit": k + 1, "difference": mean, "low": low, "high": high,
                      "interval": "t over seeds" if len(seeds) > 1 else "bootstrap over test images",
                      "verdict": verdict(low, high), "per_seed": per_seed})
    # Per seed, the mean over exits: resample test images, each scored by its accuracy averaged over the exits.
    mean_per_seed = []
    for s in (seeds if tests else []):
        d, lo, hi = bootstrap_difference(a_runs[s].test.correct().double().mean(0).numpy(),
                                         b_runs[s].test.correct().double().mean(0).numpy(), seed=s)
        mean_per_seed.append({"seed": s, "difference": d, "bootstrap_low": lo, "bootstrap_high": hi})
    m, lo, hi = t_interval([float(np.mean(a_runs[s].top1 - b_runs[s].top1)) for s in seeds])
    if len(seeds) == 1:
        lo, hi = mean_per_seed[0]["bootstrap_low"], mean_per_seed[0]["bootstrap_high"]
    return {"seeds": seeds, "exits": exits,
            "mean_over_exits": {"difference": m, "low": lo, "high": hi, "verdict": verdict(lo, hi),
                                "per_seed": mean_per_seed},
            "budgeted": _compare_budgeted(a_runs, b_runs, seeds) if tests else []}


def budgeted_at(run: StudyRun, shares=BUDGET_SHARES) -> np.ndarray | None:
    """Test top-1 of the budgeted-batch curve at shares of the full cost (linear between curve points; nan
    outside the curve); None without a curve."""
    curve = run.results.get("budgeted") or []
    if not curve:
        return None
    x = np.array([p["avg_macs"] for p in curve]) / run.macs[-1]
    y = np.array([p["top1"] for p in curve])
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    return np.interp(shares, x, y, left=math.nan, right=math.nan)


def _compare_budgeted(a_runs, b_runs, seeds) -> list[dict]:
    curves = [(budgeted_at(a_runs[s]), budgeted_at(b_runs[s])) for s in seeds]
    if any(a is None or b is None for a, b in curves):
        return []
    rows = []
    for j, share in enumerate(BUDGET_SHARES):
        diffs = [a[j] - b[j] for a, b in curves]
        if any(math.isnan(d) for d in diffs):
            continue
        mean, low, high = t_interval(diffs)
        rows.append({"share": share, "difference": mean, "low": low, "high": high, "verdict": verdict(low, high)})
    return rows
