"""Benchmark (b): real early exit vs running every exit, as wall time beside the MACs ratio.

Thresholds are fitted to average budgets of 20-100% of the full network's MACs on the model's cached validation
split, then applied to real test images at batch 64 and batch 1. The MACs ratio (MACs spent / MACs of all exits)
is the limit; the target is a wall-time ratio within 1.3x of it. Prints one JSON object.
Usage: python bench/early_exit.py [--checkpoint checkpoints/cifar10-boostnet] [--data-root ../shared/data/cifar10-jpg]
"""
import argparse
import json
import time
from pathlib import Path

import torch

from boostnet_core import load_model
from boostnet_core.data import load_dataset, normalize
from boostnet_core.evaluation import fit_to_budget, load_cache


def timed(fn, repeats):
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/cifar10-boostnet")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    data = model.meta["data"]
    bundle = load_dataset(data["dataset"], args.data_root or data.get("data_root"), model.meta["input_size"],
                          len(model.meta["mean"]), val_size=data["val_size"], split_seed=data["split_seed"])
    x_all = normalize(bundle.test.images[: args.images], model.meta["mean"], model.meta["std"])
    val = load_cache(args.checkpoint)["val"]
    full = model.macs[-1]
    rows = []
    with torch.inference_mode():
        first = model.macs[0] / full  # no budget can go below the first exit
        for share in sorted({max(s, round(first + 0.005, 3)) for s in (0.2, 0.4, 0.6, 0.8)} | {1.0}):
            thresholds = fit_to_budget(val, model.macs, share * full) if share < 1 else [float("inf")] * model.num_exits
            row = {"budget_share": share}
            for batch in (64, 1):
                n = len(x_all) if batch > 1 else min(len(x_all), 128)
                chunks = [x_all[i:i + batch] for i in range(0, n, batch)]
                spent = sum(float(model.predict_early(c, thresholds).macs.sum()) for c in chunks)
                t_early = timed(lambda: [model.predict_early(c, thresholds) for c in chunks], 2)
                t_all = timed(lambda: [model(c) for c in chunks], 2)
                macs_ratio = spent / (n * full)
                row[f"batch{batch}"] = {"macs_ratio": round(macs_ratio, 3), "time_ratio": round(t_early / t_all, 3),
                                        "time_over_macs": round((t_early / t_all) / macs_ratio, 3),
                                        "ms_per_image_early": round(1000 * t_early / n, 3),
                                        "ms_per_image_all_exits": round(1000 * t_all / n, 3)}
            rows.append(row)
    print(json.dumps({"benchmark": "early exit vs all exits", "checkpoint": args.checkpoint, "threads": args.threads,
                      "images": len(x_all), "full_macs": full, "points": rows,
                      "target": "time_over_macs <= 1.3 at batch 64 and batch 1"}))


if __name__ == "__main__":
    main()
