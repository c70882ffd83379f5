"""The accuracy cost of bf16 training: one bf16 run against the fp32 run of the same recipe and seed.

Reads two finished, evaluated runs (model.json, evaluation.json and the per-sample test cache) and prints one JSON
object: test top-1 per exit of each, the difference bf16 - fp32 per exit and averaged over the exits with a 95%
paired bootstrap interval over the test images and McNemar's exact test (boostnet_core/study/stats.py), and each
run's training speed from its log. One seed says only whether the difference exceeds the test set's noise; seeds
differ from each other by more (README, "Studies").
Usage: python bench/bf16_accuracy.py FP32_RUN BF16_RUN
"""
import argparse
import json
from pathlib import Path

from boostnet_core.study.compare import compare
from boostnet_core.study.runs import load_runs


def _readable(d: dict) -> dict:
    """Rounded numbers; the verdict in the words of this comparison (A is bf16, B is fp32)."""
    out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items() if k != "per_seed"}
    if "verdict" in out:
        out["verdict"] = out["verdict"].replace("A ", "bf16 ").replace(" B", " fp32")
    return out


def images_per_s(folder: Path) -> float:
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines() if line.strip()]
    speeds = sorted(r["images_per_s"] for r in log)
    return speeds[len(speeds) // 2]  # median epoch: epochs shared the CPU with other runs unevenly


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("fp32_run")
    parser.add_argument("bf16_run")
    args = parser.parse_args()
    runs = {}
    for name, folder in (("fp32", args.fp32_run), ("bf16", args.bf16_run)):
        found = load_runs(folder)
        if len(found) != 1:
            raise SystemExit(f"{folder} is not one finished and evaluated run.")
        runs[name] = found[0]
    if runs["fp32"].seed != runs["bf16"].seed:
        raise SystemExit("The two runs have different seeds; compare runs of the same seed.")
    a, b = (dict(r.recipe_settings) for r in (runs["fp32"], runs["bf16"]))
    differ = sorted(k for k in set(a) | set(b) if k != "precision" and a.get(k) != b.get(k))
    if differ or runs["fp32"].variant != runs["bf16"].variant:
        raise SystemExit(f"The two runs differ in more than precision ({', '.join(differ) or 'the variant'}).")
    seed = runs["fp32"].seed
    result = compare({seed: runs["bf16"]}, {seed: runs["fp32"]})
    print(json.dumps({
        "comparison": "bf16 - fp32, same recipe and seed", "seed": seed,
        "fp32_top1": runs["fp32"].top1.round(2).tolist(), "bf16_top1": runs["bf16"].top1.round(2).tolist(),
        "per_exit": [_readable(e) | {"mcnemar_p": round(e["per_seed"][0]["mcnemar_p"], 4)} for e in result["exits"]],
        "mean_over_exits": _readable(result["mean_over_exits"]),
        "median_epoch_images_per_s": {name: images_per_s(r.folder) for name, r in runs.items()},
        "note": "interval: 95% paired bootstrap over the test images (one seed)"}))


if __name__ == "__main__":
    main()
