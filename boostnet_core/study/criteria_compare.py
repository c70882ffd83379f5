"""Exit criteria compared on the budgeted-batch curve, for BoostNet and joint training (docs/criteria.md).

For each model and criterion (criteria.py): thresholds fitted on the validation split to an average budget of 30-80%
of the full cost (`thresholds.fit_to_budget`; the learned score on the half of the validation split it was not fitted
on), applied to the test split; the result is the test top-1 and the test cost at each share. Two comparisons, both
paired on the same test images:
- each criterion against max-softmax, within one model;
- BoostNet against joint, under each criterion.
Intervals (95%): over seeds when a method has two or more seed-paired runs with logits cached (the t-interval of the
per-seed differences, study.stats.t_interval); otherwise, for one run per method, the paired bootstrap over test images
(study.stats.bootstrap_difference), which holds only the test set's noise, not the spread between training runs.
Each row says which ("seeds" or "bootstrap over test images").

    boostnet study criteria --boostnet FOLDER [FOLDER ...] --joint FOLDER [FOLDER ...] --out FILE.json
"""
from __future__ import annotations

import numpy as np

from ..criteria import CRITERIA, prepare
from ..errors import ArgumentError
from ..evaluation import load_cache
from ..thresholds import ANY_SCORE, assign_exits, fit_to_budget, outcome_of
from .compare import BUDGET_SHARES
from .stats import bootstrap_difference, t_interval, verdict


def usable_shares(macs: list[float], shares=BUDGET_SHARES) -> list[float]:
    """The shares of the full cost a budget can reach (at least the first exit's cost)."""
    return [s for s in shares if s * macs[-1] >= macs[0]]


def budgeted_points(folder, criterion: str, macs: list[float], shares=BUDGET_SHARES) -> list[dict]:
    """Per share: test top-1, test cost ratio and the per-image correctness (bool numpy) under `criterion`."""
    cache = load_cache(folder)
    if "val" not in cache:
        raise ArgumentError(f"{folder} has no validation split to fit budgeted thresholds on (trained with "
                            "--val-size 0).")
    _, scored = prepare(cache, criterion, folder)
    val, test = scored["val"], scored["test"]
    points = []
    for share in shares:
        t = fit_to_budget(val, macs, share * macs[-1])
        outcome = outcome_of(test, assign_exits(test.confidence, t, ANY_SCORE), macs)
        points.append({"share": share, "top1": outcome.top1, "test_cost_ratio": outcome.cost_ratio,
                       "correct": outcome.correct.numpy()})
    return points


def _difference(a_points: list[list[dict]], b_points: list[list[dict]], j: int) -> dict:
    """A - B at share index j over paired runs: t-interval over seeds (>= 2), else the paired bootstrap."""
    if len(a_points) >= 2:
        mean, low, high = t_interval([a[j]["top1"] - b[j]["top1"] for a, b in zip(a_points, b_points)])
        interval = f"seeds (n = {len(a_points)})"
    else:
        mean, low, high = bootstrap_difference(a_points[0][j]["correct"], b_points[0][j]["correct"])
        interval = "bootstrap over test images"
    return {"difference": mean, "low": low, "high": high, "verdict": verdict(low, high), "interval": interval}


def compare_criteria(boostnet: list, joint: list, macs: list[float], criteria=tuple(CRITERIA),
                     shares=BUDGET_SHARES) -> dict:
    """The criteria table: per method, criterion and share, the mean test top-1 over runs; each criterion against
    max-softmax, and BoostNet against joint, with 95% intervals. `boostnet` and `joint` list run folders paired by
    seed."""
    if len(boostnet) != len(joint):
        raise ArgumentError("BoostNet and joint runs are paired by seed; give as many of each.")
    shares = usable_shares(macs, shares)
    points = {m: {c: [budgeted_points(f, c, macs, shares) for f in folders] for c in criteria}
              for m, folders in (("boostnet", boostnet), ("joint", joint))}
    rows = []
    for j, share in enumerate(shares):
        for c in criteria:
            row = {"share": share, "criterion": c}
            for m in points:
                runs = points[m][c]
                row[m] = {"top1": float(np.mean([r[j]["top1"] for r in runs])),
                          "test_cost_ratio": float(np.mean([r[j]["test_cost_ratio"] for r in runs]))}
                if c != "max_softmax":
                    row[m]["against_max_softmax"] = _difference(runs, points[m]["max_softmax"], j)
            row["boostnet_minus_joint"] = _difference(points["boostnet"][c], points["joint"][c], j)
            rows.append(row)
    return {"boostnet": [str(f) for f in boostnet], "joint": [str(f) for f in joint], "shares": list(shares),
            "criteria": list(criteria), "rows": rows}


def write_comparison(boostnet: list, joint: list, out) -> dict:
    """`boostnet study criteria`: the comparison of seed-paired run folders, written atomically to `out` (JSON)."""
    from pathlib import Path

    from ..atomic import atomic_write_json
    from ..checkpoint import load_model
    result = compare_criteria(boostnet, joint, load_model(boostnet[0]).macs)
    atomic_write_json(Path(out), result)
    return result
