"""The results tables (markdown, in docs/results.md, which the README links) and assets/results.png, from the
shipped evaluations.

    python scripts/results.py            # tables to stdout, plot to assets/results.png
    python scripts/results.py --readme   # also writes them, and the study report's tables, into docs/results.md, and
                                         # the exit criteria tables into docs/criteria.md
Reads checkpoints/<name>/evaluation.json (written by `boostnet evaluate`), the study report (assets/report/, written
by `boostnet study report`: the paired bootstrap intervals of the shipped pairs) and the reference-recipe logs in
assets/reference_recipe/*.jsonl; for docs/criteria.md, assets/criteria/comparison.json (`boostnet study criteria`),
validity.json (bench/calibration.py) and calibrate.jsonl (`boostnet calibrate --json` per shipped model). Nothing
is recomputed here: every number traces back to those files. In docs/results.md and docs/criteria.md each generated
block sits between two marker lines; tests check that both hold exactly what this writes.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from boostnet_core.study.markdown import criteria_table as criteria_table_lines

REPO = Path(__file__).resolve().parents[1]
CKPT = REPO / "checkpoints"
REF = REPO / "assets" / "reference_recipe"
RESULTS_DOC = REPO / "docs" / "results.md"   # the README links it; the tables live there
CRITERIA_DOC = REPO / "docs" / "criteria.md"
CRITERIA_DIR = REPO / "assets" / "criteria"
REPORT = REPO / "assets" / "report"
PAIRS = [("CIFAR-10", "cifar10-boostnet", "cifar10-joint"),
         ("CIFAR-10, BoostNet without gradient rescaling", "cifar10-boostnet-norescale", "cifar10-joint"),
         ("MNIST (mnist5k)", "mnist5k-boostnet", "mnist5k-joint")]
PAIRS = [p for p in PAIRS if all((CKPT / name / "evaluation.json").is_file() for name in p[1:])]
PANELS = [("CIFAR-10", ["cifar10-boostnet", "cifar10-boostnet-norescale", "cifar10-joint"]),
          ("MNIST (mnist5k)", ["mnist5k-boostnet", "mnist5k-joint"])]
STYLE = {"boostnet-norescale": ("#54A24B", "BoostNet, no rescaling"), "boostnet": ("#E45756", "BoostNet"),
         "joint": ("#4C78A8", "joint")}
REF_RUNS = [("a", "ref-a-boostnet-rescale", "BoostNet, rescaling on"), ("b", "ref-b-joint-norescale", "joint, rescaling off (MSDNet)"),
            ("c", "ref-c-boostnet-norescale", "BoostNet, rescaling off"), ("d", "ref-d-joint-rescale", "joint, rescaling on")]


def load(name):
    return json.loads((CKPT / name / "evaluation.json").read_text())


def interp_at(curve, macs):
    """Budgeted-curve top-1 at an average cost, by linear interpolation between the 39 points."""
    xs = np.array([p["avg_macs"] for p in curve])
    ys = np.array([p["top1"] for p in curve])
    order = np.argsort(xs)
    return float(np.interp(macs, xs[order], ys[order]))


def shipped_pair_intervals(boost: str, joint: str) -> dict | None:
    """The study report's paired bootstrap intervals (95%, over test images) of `boost` − `joint`: per exit and for
    the mean over exits, as (low, high); None if the report does not hold this pair of shipped checkpoints."""
    report = json.loads((REPORT / "report.json").read_text())
    for recipe in report["recipes"]:
        for c in recipe["comparisons"]:
            for i, seed in enumerate(c["seeds"]):
                a = Path(recipe["variants"][c["a"]]["folders"][str(seed)])
                b = Path(recipe["variants"][c["b"]]["folders"][str(seed)])
                if (a.parent.name, a.name, b.parent.name, b.name) == ("checkpoints", boost, "checkpoints", joint):
                    rows = [e["per_seed"][i] for e in c["exits"]] + [c["mean_over_exits"]["per_seed"][i]]
                    return {"exits": [(r["bootstrap_low"], r["bootstrap_high"]) for r in rows[:-1]],
                            "mean": (rows[-1]["bootstrap_low"], rows[-1]["bootstrap_high"])}
    return None


def with_interval(difference: float, interval) -> str:
    return f"{difference:+.2f}" if interval is None else f"{difference:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}]"


def anytime_table(title, boost, joint):
    b, j = load(boost), load(joint)
    intervals = shipped_pair_intervals(boost, joint)
    lines = [f"**{title}**, test top-1 (%) of F_k per exit ({b['test_size']} test images; difference with its 95% "
             "bootstrap interval over test images, from the study report)", "",
             "| exit | MACs (M, cumulative) | BoostNet | joint | difference |", "|---:|---:|---:|---:|---:|"]
    for k, m in enumerate(b["macs"]):
        gb, gj = b["anytime"]["top1"][k], j["anytime"]["top1"][k]
        cell = with_interval(gb - gj, intervals and intervals["exits"][k])
        lines.append(f"| {k + 1} | {m / 1e6:.2f} | {gb:.2f} | {gj:.2f} | {cell} |")
    mean_gain = np.mean(np.array(b["anytime"]["top1"]) - np.array(j["anytime"]["top1"]))
    lines.append(f"| mean | | | | {with_interval(mean_gain, intervals and intervals['mean'])} |")
    return "\n".join(lines)


def budgeted_table(title, boost, joint, shares=(0.3, 0.4, 0.5, 0.6, 0.8)):
    b, j = load(boost), load(joint)
    full = b["macs"][-1]
    lines = [f"**{title}**, budgeted batch (thresholds fitted on the validation split, applied to test; "
             "top-1 interpolated on the 39-point curve)", "",
             "| average MACs (M) | share of full | BoostNet | joint | difference (one run each: no interval) |",
             "|---:|---:|---:|---:|---:|"]
    lo = max(min(p["avg_macs"] for p in b["budgeted"]), min(p["avg_macs"] for p in j["budgeted"]))
    for s in shares:
        macs = s * full
        if macs < lo:
            continue
        gb, gj = interp_at(b["budgeted"], macs), interp_at(j["budgeted"], macs)
        lines.append(f"| {macs / 1e6:.2f} | {100 * s:.0f}% | {gb:.2f} | {gj:.2f} | {gb - gj:+.2f} |")
    return "\n".join(lines)


def reference_table():
    logs = {key: [json.loads(l) for l in (REF / f"{run}.jsonl").read_text().splitlines()] for key, run, _ in REF_RUNS}
    names = {key: desc for key, _, desc in REF_RUNS}
    lines = ["Reference recipe (CIFAR-10, 50,000 training images, 10 epochs, seed 0): test top-1 (%) per exit after "
             "every epoch", "", "| epoch | " + " | ".join(f"({k}) {names[k]}" for k in logs) + " |",
             "|---:|" + "---|" * len(logs)]
    for e in range(len(logs["a"])):
        cells = [" ".join(f"{v:.1f}" for v in logs[k][e]["test_top1"]) for k in logs]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(path=REPO / "assets" / "results.png"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for ax, (title, names) in zip(axes, PANELS):
        for name in names:
            if not (CKPT / name / "evaluation.json").is_file():
                continue
            color, label = next(v for k, v in STYLE.items() if name.endswith(k))
            r = load(name)
            macs = np.array(r["macs"]) / 1e6
            ax.plot(macs, r["anytime"]["top1"], "o:", color=color, label=f"{label}: anytime (exit k)")
            b = r["budgeted"]
            ax.plot([p["avg_macs"] / 1e6 for p in b], [p["top1"] for p in b], "-", color=color, alpha=0.8, label=f"{label}: budgeted batch")
        ax.set_title(title)
        ax.set_xlabel("MACs per image (millions)")
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return path


BLOCKS = {"results tables": "the shipped evaluations", "study report": "assets/report/report.md",
          "criteria table": "assets/criteria/comparison.json", "certified thresholds": "assets/criteria/validity.json",
          "calibrate": "assets/criteria/calibrate.jsonl"}


def criteria_table() -> str:
    """Exit criteria on the budgeted curve of the shipped CIFAR-10 pair (assets/criteria/comparison.json)."""
    r = json.loads((CRITERIA_DIR / "comparison.json").read_text())
    kinds = sorted({row["boostnet_minus_joint"]["interval"] for row in r["rows"]})
    lines = [f"Budgeted batch, thresholds fitted on the validation split to an average budget, applied to the test "
             f"split ({Path(r['boostnet'][0]).name} against {Path(r['joint'][0]).name}): test top-1 (%) per exit "
             f"criterion with the test cost it spent (share of the full network's MACs) in brackets, and differences "
             f"in points with their 95% interval ({'; '.join(kinds)})", "", *criteria_table_lines(r)]
    return "\n".join(lines)


def validity_table() -> str:
    """Certified thresholds re-drawn over random splits (assets/criteria/validity.json, bench/calibration.py)."""
    r = json.loads((CRITERIA_DIR / "validity.json").read_text())
    lines = [f"{Path(r['checkpoint']).name}: {r['splits']} random splits of its {r['images']:,} cached validation and "
             f"test images into {r['calibration_images']:,} calibration and {r['images'] - r['calibration_images']:,} "
             "evaluation images. Violations: share of splits whose evaluation risk exceeds epsilon; allowed: delta "
             "plus a one-sided 99% binomial margin over the splits. Costs: average MACs as a share of the full "
             "network's, averaged over the splits. The shortcut takes the cheapest thresholds whose calibration "
             "risk is at most epsilon, without a test.", "",
             "| criterion | risk | epsilon | delta | violations (certified) | allowed | holds | mean risk | cost "
             "(certified) | violations (shortcut) | cost (shortcut) |", "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for x in r["results"]:
        lines.append(f"| {x['criterion']} | {x['risk']} | {x['epsilon']:g} | {x['delta']:g} | "
                     f"{100 * x['violation_rate']:.1f}% | {100 * x['allowed_rate']:.1f}% | {'yes' if x['holds'] else 'no'} | "
                     f"{100 * x['mean_evaluation_risk']:.2f}% | {100 * x['cost_ratio']:.1f}% | "
                     f"{100 * x['uncertified_violation_rate']:.1f}% | {100 * x['uncertified_cost_ratio']:.1f}% |")
    return "\n".join(lines)


def markers(name: str) -> tuple[str, str]:
    return (f"<!-- {name}: begin (generated by scripts/results.py --readme from {BLOCKS[name]}; do not edit) -->",
            f"<!-- {name}: end -->")


def tables() -> str:
    parts = []
    for title, boost, joint in PAIRS:
        parts += [anytime_table(title, boost, joint), budgeted_table(title, boost, joint)]
    return "\n\n".join([*parts, reference_table()])


def block_contents() -> dict[str, str]:
    return {"results tables": tables(), "study report": (REPORT / "report.md").read_text().strip("\n")}


def calibrate_table() -> str:
    """`boostnet calibrate --json` on the shipped models (assets/criteria/calibrate.jsonl): every criterion on
    CIFAR-10, max-softmax on mnist5k."""
    runs = [json.loads(line) for line in (CRITERIA_DIR / "calibrate.jsonl").read_text().splitlines()]
    first = runs[0]
    lines = [f"`boostnet calibrate CHECKPOINT --risk RISK --epsilon {first['epsilon']:g} --delta {first['delta']:g} "
             "--criterion C --json` on the shipped models: the certified thresholds applied to the test split (risk, "
             "top-1 against the last exit's, average MACs as a share of the full network's). Member 0 of the family "
             "(nothing certified cheaper) sends every image to the last exit.", "",
             "| model | risk | criterion | calibration images | family member | test risk | test top-1 (last exit) "
             "| cost |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in runs:
        name = Path(r["checkpoint"]).name
        if not name.startswith("cifar10") and r["criterion"] != "max_softmax":
            continue
        t = r["test"]
        lines.append(f"| {name} | {r['risk']} | {r['criterion']} | {r['calibration']['images']:,} | "
                     f"{r['family']['chosen']} of {r['family']['members']} | {100 * t['risk']:.2f}% | "
                     f"{t['top1']:.2f} ({t['last_exit_top1']:.2f}) | {100 * t['cost_ratio']:.1f}% |")
    return "\n".join(lines)


def criteria_block_contents() -> dict[str, str]:
    return {"criteria table": criteria_table(), "certified thresholds": validity_table(), "calibrate": calibrate_table()}


def embedded(readme: str, name: str, document: str = "README.md") -> str:
    """The document's block `name` (between its markers, without them)."""
    begin, end = markers(name)
    if begin not in readme or end not in readme:
        raise ValueError(f"{document} has no {name!r} block; add the lines\n{begin}\n{end}")
    return readme.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def write_blocks(path: Path, contents: dict[str, str]) -> None:
    from boostnet_core.atomic import atomic_write_bytes
    text = path.read_text()
    for name, content in contents.items():
        embedded(text, name, path.name)  # both markers are there
        begin, end = markers(name)
        before, rest = text.split(begin, 1)
        # blank lines around the block: a table must not run into the end marker when the document is rendered
        text = f"{before}{begin}\n\n{content}\n\n{end}{rest.split(end, 1)[1]}"
    atomic_write_bytes(path, text.encode())


def write_readme() -> None:
    write_blocks(RESULTS_DOC, block_contents())
    write_blocks(CRITERIA_DOC, criteria_block_contents())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true",
                        help="write the tables into the marked blocks of docs/results.md and docs/criteria.md")
    args = parser.parse_args()
    print(tables(), end="\n\n")
    print(f"plot: {plot().relative_to(REPO)}")
    if args.readme:
        try:
            write_readme()
        except ValueError as e:
            sys.exit(str(e))
        print("docs/results.md: results tables and study report blocks updated; docs/criteria.md: criteria blocks updated")
