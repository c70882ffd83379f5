"""Print the README's results tables (markdown) and draw assets/results.png from the shipped evaluations.

    python scripts/results.py            # tables to stdout, plot to assets/results.png
Reads checkpoints/<name>/evaluation.json (written by `boostnet evaluate`) and the reference-recipe logs in
assets/reference_recipe/*.jsonl. Nothing is recomputed here: every number traces back to those files.
"""
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CKPT = REPO / "checkpoints"
REF = REPO / "assets" / "reference_recipe"
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


def anytime_table(title, boost, joint):
    b, j = load(boost), load(joint)
    lines = [f"**{title}**, test top-1 (%) of F_k per exit ({b['test_size']} test images)", "",
             "| exit | MACs (M, cumulative) | BoostNet | joint | difference |", "|---:|---:|---:|---:|---:|"]
    for k, m in enumerate(b["macs"]):
        gb, gj = b["anytime"]["top1"][k], j["anytime"]["top1"][k]
        lines.append(f"| {k + 1} | {m / 1e6:.2f} | {gb:.2f} | {gj:.2f} | {gb - gj:+.2f} |")
    mean_gain = np.mean(np.array(b["anytime"]["top1"]) - np.array(j["anytime"]["top1"]))
    lines.append(f"| mean | | | | {mean_gain:+.2f} |")
    return "\n".join(lines)


def budgeted_table(title, boost, joint, shares=(0.3, 0.4, 0.5, 0.6, 0.8)):
    b, j = load(boost), load(joint)
    full = b["macs"][-1]
    lines = [f"**{title}**, budgeted batch (thresholds fitted on the validation split, applied to test; "
             "top-1 interpolated on the 39-point curve)", "",
             "| average MACs (M) | share of full | BoostNet | joint | difference |", "|---:|---:|---:|---:|---:|"]
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
    final = {k: np.array(v[-1]["test_top1"]) for k, v in logs.items()}
    lines += ["", "Differences after epoch 10 (points per exit 1..5, then mean; one seed per run, so no interval: the spread between seeds is of the same size):", "",
              "| comparison | exit 1 | exit 2 | exit 3 | exit 4 | exit 5 | mean |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, x, y in [("boosting, rescaling off: (c) - (b)", "c", "b"), ("boosting, rescaling on: (a) - (d)", "a", "d"),
                        ("rescaling, BoostNet: (a) - (c)", "a", "c"), ("rescaling, joint: (d) - (b)", "d", "b"),
                        ("paper's pair: (a) - (b)", "a", "b")]:
        d = final[x] - final[y]
        lines.append(f"| {label} | " + " | ".join(f"{v:+.2f}" for v in d) + f" | {d.mean():+.2f} |")
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


if __name__ == "__main__":
    for title, boost, joint in PAIRS:
        print(anytime_table(title, boost, joint), end="\n\n")
        print(budgeted_table(title, boost, joint), end="\n\n")
    print(reference_table(), end="\n\n")
    print(f"plot: {plot().relative_to(REPO)}")
