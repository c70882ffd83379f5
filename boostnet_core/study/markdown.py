"""A study report as Markdown tables (for report.md and the README): per recipe, mean ± sd per variant and exit,
each paired comparison with its interval, each seed's own test, and the budgeted comparison."""
from __future__ import annotations

import math

from .compare import BUDGET_SHARES


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


def criteria_table(result: dict) -> list[str]:
    """The exit criteria compared on the budgeted curve (study/criteria_compare.py) as table lines: test top-1 with the
    test cost spent, each criterion against max-softmax, and BoostNet against joint, with 95% intervals."""
    lines = ["| budget (share of full cost) | criterion | BoostNet | against max-softmax | joint | against max-softmax "
             "| BoostNet − joint |", "|---:|---|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        b, j = row["boostnet"], row["joint"]
        vs_b = _with_interval(b["against_max_softmax"]) if "against_max_softmax" in b else ""
        vs_j = _with_interval(j["against_max_softmax"]) if "against_max_softmax" in j else ""
        lines.append(f"| {100 * row['share']:.0f}% | {row['criterion']} | {b['top1']:.2f} ({100 * b['test_cost_ratio']:.0f}%) "
                     f"| {vs_b} | {j['top1']:.2f} ({100 * j['test_cost_ratio']:.0f}%) | {vs_j} "
                     f"| {_with_interval(row['boostnet_minus_joint'])} |")
    return lines


def _criteria_section(criteria: dict) -> list[str]:
    if "skipped" in criteria:
        return [f"Exit criteria ({criteria['a']} against {criteria['b']}): not compared. {criteria['skipped']}", ""]
    kinds = sorted({row["boostnet_minus_joint"]["interval"] for row in criteria["rows"]})
    return [f"Exit criteria on the budgeted curve, {criteria['a']} against {criteria['b']} (seeds "
            f"{', '.join(map(str, criteria['seeds']))}): thresholds fitted on the validation split to an average budget, "
            f"test top-1 (%) with the test cost spent in brackets; differences in points with their 95% interval "
            f"({'; '.join(kinds)})\n", *criteria_table(criteria), ""]


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
        if rec.get("criteria"):
            lines += _criteria_section(rec["criteria"])
    return "\n".join(lines)
