"""The report of a study: what several seeds say about BoostNet against joint training, with honest intervals.

Runs are grouped by recipe (every training setting but the method, gradient rescaling, w and the seed) and, within a
recipe, by variant (method and gradient rescaling). For each variant: test top-1 per exit, mean and standard
deviation over seeds. For each pair of variants, the paired difference per exit (same seed on both sides):

- with two or more seeds, a 95% t-interval over the per-seed differences (Student's t quantile, scipy.special.stdtrit);
- for every seed pair, McNemar's exact test over the test images (scipy.stats.binomtest on the discordant pairs),
  and a paired bootstrap interval of the accuracy difference (scipy.stats.bootstrap, resampling test images), so
  that even one seed says whether a difference stands out from the noise of a finite test set.

A difference is called distinguishable when its interval excludes 0 (the t-interval when there are two or more
seeds, else the bootstrap interval), and "not distinguishable" otherwise. For runs that hold out a validation
split, the budgeted-batch curves (evaluation.json) are interpolated at shares of the full cost and compared alike.
The written report (`boostnet study report`) also compares the exit criteria on the budgeted curve for BoostNet
against joint training (study/criteria_compare.py), from the exit logits the runs' evaluation caches hold.

The pieces: runs.py (finding runs), stats.py, compare.py, markdown.py (report.md), plot.py (report.png); this module
builds the report and writes its three files.
"""
from __future__ import annotations

import json
import math
import os
from itertools import combinations
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes, atomic_write_json
from ..criteria import MissingOutputs
from ..errors import ArgumentError
from .compare import BUDGET_SHARES, budgeted_at, compare, orient
from .markdown import markdown
from .plot import plot
from .runs import StudyRun, as_roots, load_runs, recipe_name
from .stats import LEVEL, mean_sd
from .variants import Variant


def build_report(roots, criteria: bool = False) -> dict:
    """The report of every recipe found under `roots` (one folder or several; JSON-ready). Variants are named by
    their labels ("boostnet, rescaling on"); `Variant.from_label` reads one back. criteria=True adds each recipe's
    comparison of exit criteria (criteria_comparison; seconds per run, so only for the written report)."""
    roots = as_roots(roots)
    runs = load_runs(roots)
    if not runs:
        raise ArgumentError(f"No finished, evaluated run under {', '.join(map(str, roots))}; run 'boostnet study run' first.")
    recipes = []
    keys = sorted({r.recipe for r in runs}, key=lambda k: (recipe_name(json.loads(k)[1]), k))
    for recipe in keys:
        members = [r for r in runs if r.recipe == recipe]
        by_variant: dict[Variant, dict[int, StudyRun]] = {}
        for r in sorted(members, key=lambda r: (r.variant, r.seed)):
            by_variant.setdefault(r.variant, {})[r.seed] = r
        variants = {}
        for variant, seeds in by_variant.items():
            top1 = np.stack([r.top1 for r in seeds.values()])
            stats_per_exit = [mean_sd(top1[:, k]) for k in range(top1.shape[1])]
            first = next(iter(seeds.values()))
            budgeted = [budgeted_at(r) for r in seeds.values()]
            entry = {"seeds": sorted(seeds), "macs": first.macs,
                     "top1_mean": [m for m, _ in stats_per_exit], "top1_sd": [s for _, s in stats_per_exit],
                     "top1_per_seed": {str(s): r.top1.tolist() for s, r in seeds.items()},
                     "folders": {str(s): _relative(r.folder) for s, r in seeds.items()}}
            if all(b is not None for b in budgeted):
                at_share = [mean_sd(col) if not np.isnan(col).any() else (math.nan, math.nan)
                            for col in np.stack(budgeted).T]
                entry.update(budgeted_shares=list(BUDGET_SHARES), budgeted_mean=[m for m, _ in at_share],
                             budgeted_sd=[s for _, s in at_share])
            variants[variant.label] = entry
        comparisons = []
        for v1, v2 in combinations(sorted(by_variant), 2):
            a, b = orient(v1, v2)
            comparisons.append({"a": a.label, "b": b.label, **compare(by_variant[a], by_variant[b])})
        recipes.append({"recipe": _display_name(members[0].recipe_settings, [json.loads(k)[1] for k in keys]),
                        "settings": members[0].recipe_settings, "variants": variants, "comparisons": comparisons})
        if criteria:
            recipes[-1]["criteria"] = criteria_comparison(by_variant)
    return {"roots": [str(r) for r in roots], "level": LEVEL, "recipes": recipes}


def criteria_comparison(by_variant: dict[Variant, dict[int, StudyRun]]) -> dict | None:
    """Exit criteria on the budgeted curve (study/criteria_compare.py) for a recipe's BoostNet and joint runs of the
    seeds both have: the paper's pair (BoostNet with gradient rescaling, joint without) where both ran, else the first
    BoostNet and joint variants. None without such a pair; {"skipped": why} when the runs cannot be compared (their
    caches lack the exit logits, or there is no validation split to fit thresholds on)."""
    boostnet = [v for v in sorted(by_variant) if v.method == "boostnet"]
    joint = [v for v in sorted(by_variant) if v.method == "joint"]
    if not boostnet or not joint:
        return None
    a = Variant("boostnet", True) if Variant("boostnet", True) in by_variant else boostnet[0]
    b = Variant("joint", False) if Variant("joint", False) in by_variant else joint[0]
    seeds = sorted(set(by_variant[a]) & set(by_variant[b]))
    if not seeds:
        return None
    from .criteria_compare import compare_criteria
    try:
        result = compare_criteria([by_variant[a][s].folder for s in seeds], [by_variant[b][s].folder for s in seeds],
                                  by_variant[a][seeds[0]].macs)
    except (MissingOutputs, ArgumentError) as e:
        return {"a": a.label, "b": b.label, "skipped": str(e)}
    return {"a": a.label, "b": b.label, "seeds": seeds, **result}


def boostnet_against_joint(recipe: dict) -> list[dict]:
    """The comparisons of a report's recipe that put a BoostNet variant (A) against a joint one (B), with seeds."""
    return [c for c in recipe["comparisons"] if c["seeds"] and Variant.from_label(c["a"]).method == "boostnet"
            and Variant.from_label(c["b"]).method == "joint"]


def _display_name(settings: dict, all_settings: list[dict]) -> str:
    """The recipe's short name, plus the settings that tell it apart from another recipe of the same name."""
    name = recipe_name(settings)
    twins = [o for o in all_settings if o != settings and recipe_name(o) == name]
    differing = sorted({k for o in twins for k in set(o) | set(settings) if o.get(k) != settings.get(k)})
    return name + (" (" + ", ".join(f"{k} {settings.get(k)}" for k in differing) + ")" if differing else "")


def _relative(folder: Path) -> str:
    """A run folder as the report names it: relative to the working folder when below it."""
    try:
        return str(folder.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def write_report(roots, out_dir: str | os.PathLike) -> dict:
    """report.json, report.md and report.png in `out_dir`; returns the report."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"--out {str(out)!r} is a file; give a folder for report.json, report.md and report.png.")
    report = build_report(roots, criteria=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", _json_safe(report))
    atomic_write_bytes(out / "report.md", markdown(report).encode())
    plot(report, out / "report.png")
    return report


def _json_safe(obj):
    """NaN becomes null (JSON has no NaN)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
