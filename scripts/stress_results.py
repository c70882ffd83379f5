"""Early exit under stress on the shipped CIFAR-10 pair: the results the app's Stress test page reads and
docs/stress.md reports (issue 26).

    python scripts/stress_results.py run --data-root ../shared/data/cifar10-jpg --images 1000 --attack-images 200
    python scripts/stress_results.py tables            # the Markdown tables of docs/stress.md, from what `run` wrote
    python scripts/stress_results.py differences       # BoostNet - joint per family and severity, paired

`run` draws --images test images at random (seed 0; the same images for both models, so comparisons are paired),
corrupts them with each of the 15 corruptions at 5 severities (boostnet_core.stress, seed 0), attacks the first
--attack-images of them per image (slowdown, 8/255, step 0.002, 30 steps) and all of them with one universal
perturbation crafted on --craft-images other test images (step 0.005, 20 passes), and runs every exit of each
model over every version. It writes, per model, assets/stress/<model>.safetensors: per condition the max-softmax
confidence (float16) and top class (uint8) of every exit on every image, with the labels and test indices, so the
app applies any threshold at once; and assets/stress/summary.json: per model and condition, early exit's top-1,
MACs share, share at the last exit, the share leaving early and wrong, and the observed risk of certified
thresholds (calibration.calibrate_checkpoint on the cached validation split), each with a 95% bootstrap interval
over images (1,000 resamples), and BoostNet - joint paired over the same images.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from boostnet_core import load_model  # noqa: E402
from boostnet_core.atomic import atomic_write_bytes  # noqa: E402
from boostnet_core.calibration import calibrate_checkpoint, losses  # noqa: E402
from boostnet_core.checkpoint import atomic_save_tensors  # noqa: E402
from boostnet_core.evaluation import load_cache  # noqa: E402
from boostnet_core.stress import (NAMES, SEVERITIES, ExitRule, attack, corruption, load_outputs,  # noqa: E402
                                  run_condition, stress_images)
from boostnet_core.stress.corruptions import CORRUPTIONS  # noqa: E402
from boostnet_core.thresholds import ExitPredictions, assign_exits  # noqa: E402

MODELS = ("cifar10-boostnet", "cifar10-joint")   # BoostNet first, then joint: folders under checkpoints/


def key_of(model: str) -> str:
    """A model's name in the files and the summary: its folder's own name."""
    return Path(model).name
OUT = REPO / "assets" / "stress"
# The exit rules reported: one global threshold, and certified thresholds (the README's setting and a looser one).
THRESHOLD = 0.9
CERTIFIED = [("disagreement", 0.02, 0.1), ("disagreement", 0.05, 0.1), ("accuracy-drop", 0.02, 0.1)]
RESAMPLES = 1000


def condition_key(kind: str, name: str, severity) -> str:
    return "clean" if kind == "clean" else (f"{name}/{severity}" if kind == "corruption" else f"attack/{name}")


def run(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = tuple(args.models)
    first = load_model(REPO / "checkpoints" / models[0])
    images, labels, keys, crafting = stress_images(first, args.images, args.data_root, seed=0, crafting=args.craft_images)
    pixels = torch.from_numpy(images)
    conditions = [corruption(n, s) for n in NAMES for s in SEVERITIES]
    corrupted = {}   # corrupt once, run both models on the same pictures
    started = time.time()
    for path in models:
        name = key_of(path)
        model = load_model(REPO / "checkpoints" / path)
        rule = ExitRule.of(THRESHOLD, model.num_exits)
        tensors = {"labels": labels, "test_index": torch.from_numpy(keys)}

        def keep(key, run_, subset=None):
            tensors[f"{key}.confidence"] = run_.predictions.confidence.half()
            tensors[f"{key}.prediction"] = run_.predictions.prediction.to(torch.uint8)
            if subset is not None:
                tensors[f"{key}.labels"], tensors[f"{key}.test_index"] = labels[subset], torch.from_numpy(keys[subset])

        keep("clean", run_condition(model, pixels, labels, None, rule))
        for i, c in enumerate(conditions):
            if c not in corrupted:
                r = run_condition(model, pixels, labels, c, rule, keys=keys, keep_pixels=True)
                corrupted[c] = (r.pixels * 255).round().to(torch.uint8)
            else:
                r = run_condition(model, corrupted[c], labels, None, rule)
            keep(condition_key("corruption", c.name, c.severity), r)
            print(f"{name} {c.name} {c.severity}: {r.summary['top1_at_exits']:.2f}% at "
                  f"{100 * r.summary['macs_share']:.1f}% ({time.time() - started:.0f} s)", flush=True)
        # the per-image attack on evenly spaced images of the draw (which is in test order, grouped by class)
        if args.no_attacks:
            atomic_save_tensors(out / f"{name}.safetensors", tensors, {"model": path, "images": str(len(pixels)),
                                                                        "seed": "0", "command": " ".join(sys.argv)})
            continue
        n_attack = min(args.attack_images, len(pixels))
        subset = torch.from_numpy(np.unique(np.linspace(0, len(pixels) - 1, n_attack).round().astype(np.int64)))
        r = run_condition(model, pixels[subset], labels[subset], attack("slowdown"), rule)
        keep("attack/slowdown", r, subset)
        tensors["attack/slowdown.loss"] = torch.tensor(r.extra["loss"])
        print(f"{name} slowdown on {n_attack}: {100 * r.summary['macs_share']:.1f}% ({time.time() - started:.0f} s)",
              flush=True)
        r = run_condition(model, pixels, labels, attack("universal"), rule, crafting=torch.from_numpy(crafting))
        keep("attack/universal", r)
        tensors["attack/universal.loss"] = torch.tensor(r.extra["loss"])
        tensors["attack/universal.perturbation"] = r.extra["perturbation"][0]   # [C, H, W], the app applies it
        print(f"{name} universal: {100 * r.summary['macs_share']:.1f}% ({time.time() - started:.0f} s)", flush=True)
        meta = {"model": name, "images": str(len(pixels)), "attack_images": str(n_attack),
                "craft_images": str(len(crafting)), "seed": "0", "command": " ".join(sys.argv)}
        atomic_save_tensors(out / f"{name}.safetensors", tensors, meta)
    summarise(out, models)


# ---------------------------------------------------------------- summaries with intervals


def per_image(p: ExitPredictions, thresholds, macs, risk=None) -> dict[str, np.ndarray]:
    """Per image: right at its exit, share of the full MACs spent, at the last exit, early and wrong, risk's loss."""
    exits = assign_exits(p.confidence, thresholds, (-math.inf, math.inf))
    n = len(exits)
    right = (p.prediction[exits, torch.arange(n)] == p.labels).numpy()
    share = (torch.tensor(macs, dtype=torch.float64)[exits] / macs[-1]).numpy()
    last = (exits == len(macs) - 1).numpy()
    out = {"top1": right * 100.0, "macs_share": share, "last_exit": last * 1.0,
           "early_wrong": (~last & ~right) * 1.0, "last_top1": (p.prediction[-1] == p.labels).numpy() * 100.0}
    if risk:
        out["risk"] = losses(p, exits, risk).numpy() * 1.0
    return out


def interval(values: np.ndarray, index: np.ndarray) -> list[float]:
    """[mean, low, high]: the 95% percentile bootstrap interval over images (index: resamples x n)."""
    means = values[index].mean(1)
    return [float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(out: Path = OUT, pair=MODELS) -> dict:
    models = {key_of(p): load_model(REPO / "checkpoints" / p) for p in pair}
    outputs = {name: load_outputs(out / f"{name}.safetensors")[0] for name in models}
    names = list(models)
    rules = {name: [("threshold 0.9", [THRESHOLD] * m.num_exits, None, None)] for name, m in models.items()}
    for name, path in zip(names, pair):
        if "val" not in load_cache(REPO / "checkpoints" / path):
            continue   # trained without a validation split (--val-size 0): nothing to certify on
        for risk, eps, delta in CERTIFIED:
            c = calibrate_checkpoint(REPO / "checkpoints" / path, risk, eps, delta)
            t = [math.inf if v is None else v for v in c["thresholds"]]
            rules[name].append((f"certified {risk} {eps:g} (delta {delta:g})", t, risk, eps))
    rng = np.random.default_rng(0)
    summary = {"made_by": "python scripts/stress_results.py run ... (docstring); then summarised by `tables`",
               "threshold": THRESHOLD, "certified": [list(c) for c in CERTIFIED], "resamples": RESAMPLES,
               "corruptions": {n: CORRUPTIONS[n].family for n in NAMES}, "pair": list(pair), "models": {}}
    for name, model in models.items():
        rows = {}
        for key, p in outputs[name].items():
            n = p.labels.numel()
            index = rng.integers(0, n, size=(RESAMPLES, n))
            row = {"images": n, "top1_per_exit": (p.correct().double().mean(1) * 100).tolist(), "rules": {}}
            for label, t, risk, eps in rules[name]:
                values = per_image(p, t, model.macs, risk)
                rule = {k: interval(v, index) for k, v in values.items()}
                rule["thresholds"] = [None if math.isinf(v) else v for v in t]
                if risk:
                    rule["epsilon"] = eps
                row["rules"][label] = rule
            rows[key] = row
        summary["models"][name] = {"macs": model.macs, "conditions": rows}
    # BoostNet - joint, paired over the same images (the attack's per-image pictures differ: each model is
    # attacked on its own, but the clean images are the same)
    diff = {}
    a, b = (outputs[m] for m in names)
    for key in a:
        n = a[key].labels.numel()
        index = rng.integers(0, n, size=(RESAMPLES, n))
        va = per_image(a[key], [THRESHOLD] * 5, models[names[0]].macs)
        vb = per_image(b[key], [THRESHOLD] * 5, models[names[1]].macs)
        diff[key] = {k: interval(va[k] - vb[k], index) for k in ("top1", "macs_share", "last_top1", "early_wrong")}
    summary["boostnet_minus_joint"] = {"rule": "threshold 0.9", "conditions": diff}
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=1, allow_nan=False) + "\n").encode())
    return summary


# ---------------------------------------------------------------- Markdown for docs/stress.md


def fmt(ci, scale=1.0, digits=1) -> str:
    m, lo, hi = (v * scale for v in ci)
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def tables(out: Path = OUT) -> None:
    s = json.loads((out / "summary.json").read_text())
    families = {}
    for n, fam in s["corruptions"].items():
        families.setdefault(fam, []).append(n)
    rule = "threshold 0.9"
    pair_names = [key_of(p) for p in s.get("pair", MODELS)]
    b, j = (s["models"][m]["conditions"] for m in pair_names)
    d = s["boostnet_minus_joint"]["conditions"]
    print(f"### Per family and severity ({rule}; mean over the family's corruptions; {b['clean']['images']} images)\n")
    print("| condition | BoostNet top-1 | joint top-1 | BoostNet − joint | BoostNet MACs | joint MACs | "
          "BoostNet early & wrong | joint early & wrong |")
    print("|---|---|---|---|---|---|---|---|")

    def row(label, keys):
        def mean(conds, k, scale=1):
            return sum(conds[x]["rules"][rule][k][0] for x in keys) / len(keys) * scale
        dt = sum(d[x]["top1"][0] for x in keys) / len(keys)
        extra = f" [{d[keys[0]]['top1'][1]:+.1f}, {d[keys[0]]['top1'][2]:+.1f}]" if len(keys) == 1 else ""
        print(f"| {label} | {mean(b, 'top1'):.1f} | {mean(j, 'top1'):.1f} | {dt:+.1f}{extra} | "
              f"{mean(b, 'macs_share', 100):.1f}% | {mean(j, 'macs_share', 100):.1f}% | "
              f"{mean(b, 'early_wrong', 100):.1f}% | {mean(j, 'early_wrong', 100):.1f}% |")

    row("clean", ["clean"])
    for fam, names in families.items():
        for sev in SEVERITIES:
            row(f"{fam} {sev}", [f"{n}/{sev}" for n in names])
    print(f"\n### Every corruption at severity 3 and 5 ({rule}; 95% bootstrap intervals over images)\n")
    print("| corruption | sev | BoostNet top-1 | joint top-1 | BoostNet − joint | BoostNet MACs % | joint MACs % |")
    print("|---|---|---|---|---|---|---|")
    for n in s["corruptions"]:
        for sev in (3, 5):
            k = f"{n}/{sev}"
            rb, rj = b[k]["rules"][rule], j[k]["rules"][rule]
            print(f"| {n} | {sev} | {fmt(rb['top1'])} | {fmt(rj['top1'])} | {fmt(d[k]['top1'])} | "
                  f"{fmt(rb['macs_share'], 100)} | {fmt(rj['macs_share'], 100)} |")
    print(f"\n### The slowdown attack ({rule})\n")
    print("| model | condition | images | top-1 at exits | last exit top-1 | MACs % of full | at the last exit |")
    print("|---|---|---|---|---|---|---|")
    for m, conds in zip(pair_names, (b, j)):
        for k in [k for k in ("clean", "attack/slowdown", "attack/universal") if k in conds]:
            r = conds[k]["rules"][rule]
            print(f"| {m} | {k} | {conds[k]['images']} | {fmt(r['top1'])} | {fmt(r['last_top1'])} | "
                  f"{fmt(r['macs_share'], 100)} | {fmt(r['last_exit'], 100)}% |")
    print("\n### Certified thresholds under shift: observed risk (mean over images) against epsilon\n")
    labels = [r for r in next(iter(b.values()))["rules"] if r.startswith("certified")]
    for m, conds in zip(pair_names, (b, j)):
        print(f"\n{m}:\n")
        print("| condition | " + " | ".join(labels) + " |")
        print("|---|" + "---|" * len(labels))
        keys = ["clean"] + [f"{n}/{sev}" for n in s["corruptions"] for sev in (1, 3, 5)] + ["attack/slowdown",
                                                                                             "attack/universal"]
        for k in [k for k in keys if k in conds]:
            cells = []
            for lab in labels:
                r = conds[k]["rules"][lab]
                mark = "" if r["risk"][0] <= r["epsilon"] else " **broken**"
                cells.append(f"{fmt(r['risk'], 100, 2)}%{mark} (MACs {100 * r['macs_share'][0]:.0f}%)")
            print(f"| {k} | " + " | ".join(cells) + " |")


def family_differences(out: Path = OUT) -> None:
    """BoostNet − joint per family and severity, paired over images: each image's value averaged over the family's
    corruptions, then a 95% bootstrap interval over images (threshold 0.9)."""
    s = json.loads((out / "summary.json").read_text())
    pair = s.get("pair", MODELS)
    models = {key_of(p): load_model(REPO / "checkpoints" / p) for p in pair}
    outputs = {name: load_outputs(out / f"{name}.safetensors")[0] for name in models}
    families = {}
    for n, fam in s["corruptions"].items():
        families.setdefault(fam, []).append(n)
    rng = np.random.default_rng(0)
    print("| family | severity | top-1 | MACs share (points) | early and wrong (points) |")
    print("|---|---|---|---|---|")
    for fam, names in families.items():
        for sev in SEVERITIES:
            per = {k: [] for k in ("top1", "macs_share", "early_wrong")}
            for n in names:
                va, vb = (per_image(outputs[m][f"{n}/{sev}"], [THRESHOLD] * 5, models[m].macs) for m in models)
                for k in per:
                    per[k].append(va[k] - vb[k])
            index = rng.integers(0, len(per["top1"][0]), size=(RESAMPLES, len(per["top1"][0])))
            cells = [interval(np.mean(per[k], 0) * scale, index) for k, scale in
                     (("top1", 1), ("macs_share", 100), ("early_wrong", 100))]
            print(f"| {fam} | {sev} | " + " | ".join(f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]" for m, lo, hi in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "cifar10-jpg"))
    r.add_argument("--images", type=int, default=1000)
    r.add_argument("--attack-images", type=int, default=200)
    r.add_argument("--craft-images", type=int, default=500)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--out", default=str(OUT))
    r.add_argument("--models", nargs=2, default=list(MODELS), metavar=("BOOSTNET", "JOINT"),
                   help="two checkpoint folders under checkpoints/ (default: the shipped CIFAR-10 pair)")
    r.add_argument("--no-attacks", action="store_true", help="corruptions only")
    sm = sub.add_parser("summarise")
    sm.add_argument("--out", default=str(OUT))
    sm.add_argument("--models", nargs=2, default=list(MODELS), metavar=("BOOSTNET", "JOINT"))
    sub.add_parser("tables").add_argument("--out", default=str(OUT))
    sub.add_parser("differences").add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    elif args.command == "summarise":
        summarise(Path(args.out), tuple(args.models))
    elif args.command == "differences":
        family_differences(Path(args.out))
    else:
        tables(Path(args.out))


if __name__ == "__main__":
    main()
