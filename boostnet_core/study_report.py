"""The report of a study: what several seeds say about BoostNet against joint training, with honest intervals.

Runs are grouped by recipe (every training setting but the method, gradient rescaling, w and the seed) and, within a
recipe, by variant (method and gradient rescaling). For each variant: test top-1 per exit, mean and standard
deviation over seeds. For each pair of variants, the paired difference per exit (same seed on both sides):

- with two or more seeds, a 95% t-interval over the per-seed differences (scipy.stats.t);
- for every seed pair, McNemar's exact test over the test images (scipy.stats.binomtest on the discordant pairs),
  and a paired bootstrap interval of the accuracy difference (scipy.stats.bootstrap, resampling test images), so
  that even one seed says whether a difference stands out from the noise of a finite test set.

A difference is called distinguishable when its interval excludes 0 (the t-interval when there are two or more
seeds, else the bootstrap interval), and "not distinguishable" otherwise. For runs that hold out a validation
split, the budgeted-batch curves (evaluation.json) are interpolated at shares of the full cost and compared alike.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from .checkpoint import RESULTS, CheckpointError, atomic_write_bytes, atomic_write_json, read_meta
from .evaluation import load_cache
from .study import run_folders
from .thresholds import ExitPredictions

LEVEL = 0.95
BUDGET_SHARES = (0.3, 0.4, 0.5, 0.6, 0.8)   # where budgeted curves are compared, as shares of the full cost
# Settings that tell variants and seeds apart; every other training setting defines the recipe.
VARIANT_KEYS = ("method", "grad_rescale", "reweight", "seed")


@dataclass
class StudyRun:
    """One finished and evaluated run."""
    folder: Path
    recipe: str              # what defines the recipe (data and every training setting but the variant's), as JSON
    recipe_settings: dict
    variant: str             # "boostnet, rescaling on"
    method: str
    seed: int
    macs: list[float]
    test: ExitPredictions
    results: dict            # its evaluation.json

    @property
    def top1(self) -> np.ndarray:
        return np.asarray(self.results["anytime"]["top1"], dtype=np.float64)


def load_runs(roots) -> list[StudyRun]:
    """Every run under the `roots` (a folder or several) that finished its epochs and has an evaluation with a
    per-sample test cache."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    runs = []
    for folder in sorted({f for root in roots for f in run_folders(root)}):
        meta = read_meta(folder)
        train = meta.get("train") or {}
        if train.get("epochs_done", 0) < train.get("epochs", 1) or not (folder / RESULTS).is_file():
            continue
        cache = load_cache(folder)
        if "test" not in cache:
            continue
        key, settings = _recipe(meta)
        variant = f"{meta['method']}, rescaling {'on' if meta.get('grad_rescale') else 'off'}"
        runs.append(StudyRun(folder, key, settings, variant, meta["method"], int(train.get("seed", 0)),
                             list(meta["macs"]), cache["test"], json.loads((folder / RESULTS).read_text())))
    return runs


def _recipe(meta: dict) -> tuple[str, dict]:
    """(key, settings) of a run's recipe: the data it was trained on and every training setting but the method,
    gradient rescaling, w and the seed. Runs compare only within one recipe."""
    from .checkpoint import data_key
    train = meta.get("train") or {}
    settings = {k: v for k, v in train.items() if k not in VARIANT_KEYS and k != "epochs_done"}
    return json.dumps([data_key(meta), settings], sort_keys=True), settings


def recipe_name(settings: dict) -> str:
    data = settings.get("dataset", "?")
    preset = settings.get("preset") or "default preset"
    val = settings.get("val_size")
    held = "no validation split" if val == 0 else f"validation {val if val is not None else 'default'}"
    return f"{data}, {preset}, {settings.get('epochs')} epochs, {settings.get('schedule')}, {held}"


def run_identity(meta: dict) -> str | None:
    """What a run is, but for its seed (data, recipe, method, gradient rescaling, w): runs with the same identity
    differ only by seed. None for a folder that records no training."""
    if not meta.get("train"):
        return None
    return json.dumps([_recipe(meta)[0], meta.get("method"), bool(meta.get("grad_rescale")), meta.get("reweight")])


def seed_siblings(folder, candidates) -> list[Path]:
    """The finished, evaluated runs among `candidates` (folders) that differ from `folder` only by seed, itself
    included, ordered by seed."""
    try:
        identity = run_identity(read_meta(folder))
    except CheckpointError:
        return []
    found = {}
    for c in candidates:
        try:
            meta = read_meta(c)
        except CheckpointError:
            continue
        train = meta.get("train") or {}
        if (run_identity(meta) == identity and identity is not None and (Path(c) / RESULTS).is_file()
                and train.get("epochs_done", 0) >= train.get("epochs", 1)):
            found.setdefault(int(train.get("seed", 0)), Path(c))
    return [found[s] for s in sorted(found)]


def seed_band(folders) -> dict:
    """Anytime test top-1 per exit over runs that differ by seed: mean, sample sd, and n (from evaluation.json)."""
    top1 = np.array([json.loads((Path(f) / RESULTS).read_text())["anytime"]["top1"] for f in folders])
    macs = json.loads((Path(folders[0]) / RESULTS).read_text())["macs"]
    stats = [mean_sd(top1[:, k]) for k in range(top1.shape[1])]
    return {"n": len(folders), "macs": macs, "mean": [m for m, _ in stats], "sd": [s for _, s in stats]}


# ---------------------------------------------------------------- statistics


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; nan for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def t_interval(differences, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): the t-interval of the mean of paired differences; nan bounds for fewer than two."""
    from scipy import stats
    d = np.asarray(differences, dtype=np.float64)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
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


# ---------------------------------------------------------------- comparisons


def orient(v1: str, v2: str) -> tuple[str, str]:
    """(A, B) for a pair of variants: BoostNet first when the methods differ, else rescaling on first."""
    def rank(v):
        return (not v.startswith("boostnet"), not v.endswith("on"))
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


# ---------------------------------------------------------------- the report


def build_report(roots) -> dict:
    """The report of every recipe found under `roots` (one folder or several; JSON-ready)."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    runs = load_runs(roots)
    if not runs:
        raise ValueError(f"No finished, evaluated run under {', '.join(map(str, roots))}; run 'boostnet study run' first.")
    recipes = []
    keys = sorted({r.recipe for r in runs}, key=lambda k: (recipe_name(json.loads(k)[1]), k))
    for recipe in keys:
        members = [r for r in runs if r.recipe == recipe]
        by_variant: dict[str, dict[int, StudyRun]] = {}
        for r in sorted(members, key=lambda r: (r.variant, r.seed)):
            by_variant.setdefault(r.variant, {})[r.seed] = r
        variants = {}
        for name, seeds in by_variant.items():
            top1 = np.stack([r.top1 for r in seeds.values()])
            stats_per_exit = [mean_sd(top1[:, k]) for k in range(top1.shape[1])]
            first = next(iter(seeds.values()))
            budgeted = [budgeted_at(r) for r in seeds.values()]
            variants[name] = {"seeds": sorted(seeds), "macs": first.macs,
                              "top1_mean": [m for m, _ in stats_per_exit], "top1_sd": [s for _, s in stats_per_exit],
                              "top1_per_seed": {str(s): r.top1.tolist() for s, r in seeds.items()},
                              "folders": {str(s): _relative(r.folder) for s, r in seeds.items()}}
            if all(b is not None for b in budgeted):
                at_share = [mean_sd(col) if not np.isnan(col).any() else (math.nan, math.nan)
                            for col in np.stack(budgeted).T]
                variants[name].update(budgeted_shares=list(BUDGET_SHARES), budgeted_mean=[m for m, _ in at_share],
                                      budgeted_sd=[s for _, s in at_share])
        comparisons = []
        for v1, v2 in combinations(sorted(by_variant), 2):
            a, b = orient(v1, v2)
            comparisons.append({"a": a, "b": b, **compare(by_variant[a], by_variant[b])})
        recipes.append({"recipe": _display_name(members[0].recipe_settings, [json.loads(k)[1] for k in keys]),
                        "settings": members[0].recipe_settings, "variants": variants, "comparisons": comparisons})
    return {"roots": [str(r) for r in roots], "level": LEVEL, "recipes": recipes}


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


def _fmt(x: float, signed: bool = False) -> str:
    if _missing(x):
        return "–"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _with_interval(row: dict, low: str = "low", high: str = "high") -> str:
    """'+0.12 [-0.30, +0.55]'; the difference alone where there is no interval (a t-interval of one seed)."""
    if _missing(row[low]) or _missing(row[high]):
        return _fmt(row["difference"], True)
    return f"{_fmt(row['difference'], True)} [{_fmt(row[low], True)}, {_fmt(row[high], True)}]"


def _per_seed_cell(row: dict) -> str:
    p = row["mcnemar_p"]
    return _with_interval(row, "bootstrap_low", "bootstrap_high") + (" p < 0.001" if p < 0.001 else f" p {p:.2g}")


def markdown(report: dict) -> str:
    """Tables for a README: per recipe, mean ± sd per variant and exit, then each comparison with its interval."""
    lines = []
    for rec in report["recipes"]:
        lines.append(f"**{rec['recipe']}**: test top-1 (%) per exit, mean ± standard deviation over seeds\n")
        n_exits = len(next(iter(rec["variants"].values()))["top1_mean"])
        lines.append("| variant | seeds | " + " | ".join(f"exit {k + 1}" for k in range(n_exits)) + " |")
        lines.append("|---|---|" + "---:|" * n_exits)
        for name, v in rec["variants"].items():
            cells = [f"{m:.2f} ± {_fmt(s)}" if not math.isnan(s) else f"{m:.2f}" for m, s in zip(v["top1_mean"], v["top1_sd"])]
            lines.append(f"| {name} | {', '.join(map(str, v['seeds']))} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"Paired differences A − B (points; same seed on both sides; {int(100 * report['level'])}% interval: "
                     "t over seeds, or bootstrap over test images for a single seed)\n")
        lines.append("| A − B | seeds | " + " | ".join(f"exit {k + 1}" for k in range(n_exits)) + " | mean over exits |")
        lines.append("|---|---|" + "---|" * (n_exits + 1))
        for c in rec["comparisons"]:
            if not c["seeds"]:
                continue
            cells = [_with_interval(e) for e in c["exits"]] + [_with_interval(c["mean_over_exits"])]
            lines.append(f"| {c['a']} − {c['b']} | {len(c['seeds'])} | " + " | ".join(cells) + " |")
        lines.append("")
        paired = [c for c in rec["comparisons"] if c["seeds"]]
        if paired:  # the paired test over test images, for every seed on its own
            lines.append(f"Each seed alone: A − B with its {int(100 * report['level'])}% bootstrap interval over test images, "
                         "and McNemar's exact p\n")
            lines.append("| A − B | seed | " + " | ".join(f"exit {k + 1}" for k in range(n_exits)) + " | mean over exits |")
            lines.append("|---|---|" + "---|" * (n_exits + 1))
            for c in paired:
                for i, seed in enumerate(c["seeds"]):
                    cells = [_per_seed_cell(e["per_seed"][i]) for e in c["exits"]]
                    cells.append(_with_interval(c["mean_over_exits"]["per_seed"][i], "bootstrap_low", "bootstrap_high"))
                    lines.append(f"| {c['a']} − {c['b']} | {seed} | " + " | ".join(cells) + " |")
            lines.append("")
        budgeted = [c for c in rec["comparisons"] if c.get("budgeted")]
        if budgeted:
            lines.append("Budgeted batch, A − B at shares of the full cost (points; t-interval over seeds, none for one seed)\n")
            lines.append("| A − B | " + " | ".join(f"{int(100 * s)}%" for s in BUDGET_SHARES) + " |")
            lines.append("|---|" + "---|" * len(BUDGET_SHARES))
            for c in budgeted:
                at = {row["share"]: row for row in c["budgeted"]}
                cells = [_with_interval(at[s]) if s in at else "–" for s in BUDGET_SHARES]
                lines.append(f"| {c['a']} − {c['b']} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """One row per recipe: anytime accuracy (mean ± sd band over seeds) and the paired differences with intervals."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    recipes = report["recipes"]
    # One colour per variant and per comparison across every recipe of the report.
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    variant_names = sorted({name for rec in recipes for name in rec["variants"]})
    pair_names = sorted({(c["a"], c["b"]) for rec in recipes for c in rec["comparisons"]})
    fig, axes = plt.subplots(len(recipes), 2, figsize=(12, 4.2 * len(recipes)), dpi=110, squeeze=False)
    for row, rec in zip(axes, recipes):
        ax = row[0]
        for name, v in rec["variants"].items():
            x = np.array(v["macs"]) / 1e6
            m, s = np.array(v["top1_mean"]), np.nan_to_num(np.array(v["top1_sd"]))
            color = palette[variant_names.index(name) % len(palette)]
            ax.plot(x, m, "o-", color=color, label=f"{name} (n={len(v['seeds'])})")
            ax.fill_between(x, m - s, m + s, color=color, alpha=0.2)
        ax.set_xlabel("MACs per image (millions)"); ax.set_ylabel("test top-1 (%)")
        ax.set_title(rec["recipe"], fontsize=9); ax.grid(alpha=0.3); ax.legend(fontsize=7)
        ax = row[1]
        comps = [c for c in rec["comparisons"] if c["seeds"]]
        width = 0.8 / max(len(comps), 1)
        for j, c in enumerate(comps):
            k = np.arange(len(c["exits"])) + 1 + (j - (len(comps) - 1) / 2) * width
            d = np.array([e["difference"] for e in c["exits"]])
            lo = np.array([e["low"] for e in c["exits"]]); hi = np.array([e["high"] for e in c["exits"]])
            ax.errorbar(k, d, yerr=[np.nan_to_num(d - lo), np.nan_to_num(hi - d)], fmt="o", capsize=3,
                        color=palette[pair_names.index((c["a"], c["b"])) % len(palette)],
                        label=f"{c['a']} − {c['b']} (n={len(c['seeds'])})")
        ax.axhline(0, color="black", lw=0.8)
        if comps:
            ax.set_xticks(range(1, len(comps[0]["exits"]) + 1))
        ax.set_xlabel("exit"); ax.set_ylabel(f"difference (points), {int(100 * report['level'])}% interval")
        ax.grid(alpha=0.3); ax.legend(fontsize=7)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_report(roots, out_dir: str | os.PathLike) -> dict:
    """report.json, report.md and report.png in `out_dir`; returns the report."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a folder for report.json, report.md and report.png.")
    report = build_report(roots)
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
