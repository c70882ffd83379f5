"""Benchmark: do certified thresholds keep their promise? Re-drawing a shipped model's cached images.

Pools a checkpoint's cached validation and test outputs (CIFAR-10: 15,000 images) and draws --splits random
calibration/evaluation splits (--calibration images to calibrate on, the rest to evaluate). On each, Learn-then-Test
(calibration.certify) picks per-exit thresholds for risk <= epsilon with probability >= 1 - delta; the evaluation
images measure the risk they really give. The guarantee holds when the share of splits whose evaluation risk exceeds
epsilon is at most delta plus a one-sided 99% binomial margin over the splits. The same draws run the shortcut
without a test (the cheapest thresholds whose calibration risk is <= epsilon, calibration.uncertified_fit): the
violation rate it gives, and the cost the guarantee adds over it. Costs are average MACs over the full network's.
Prints one JSON object.

    python bench/calibration.py [--checkpoint checkpoints/cifar10-boostnet --splits 500 --calibration 5000]
"""
import argparse
import json
import time

import torch

from boostnet_core import load_model
from boostnet_core.calibration import RISKS, validity
from boostnet_core.criteria import score_cache
from boostnet_core.evaluation import load_cache
from boostnet_core.thresholds import ExitPredictions


def pooled(cache: dict[str, ExitPredictions]) -> ExitPredictions:
    val, test = cache["val"], cache["test"]
    return ExitPredictions(torch.cat([val.confidence, test.confidence], 1),
                           torch.cat([val.prediction, test.prediction], 1),
                           torch.cat([val.top5, test.top5], 1), torch.cat([val.labels, test.labels]),
                           criterion=val.criterion)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/cifar10-boostnet")
    parser.add_argument("--splits", type=int, default=500)
    parser.add_argument("--calibration", type=int, default=5000,
                        help="calibration images per split (the rest evaluate)")
    parser.add_argument("--criteria", nargs="+", default=["max_softmax", "entropy"])
    parser.add_argument("--levels", nargs="+", default=["0.02:0.1", "0.05:0.05"], help="EPSILON:DELTA pairs")
    args = parser.parse_args()
    macs = load_model(args.checkpoint).macs
    cache = load_cache(args.checkpoint)
    start, rows = time.perf_counter(), []
    for criterion in args.criteria:
        pool = pooled(score_cache(cache, criterion, args.checkpoint))
        settings = [(risk, *(float(v) for v in level.split(":"))) for risk in RISKS for level in args.levels]
        runs = validity(pool, macs, settings, args.splits, args.calibration)
        for c, u in zip(runs[::2], runs[1::2]):   # certified, then uncertified, per setting
            rows.append({"criterion": criterion, "risk": c["risk"], "epsilon": c["epsilon"], "delta": c["delta"],
                         "violation_rate": c["violation_rate"], "allowed_rate": c["allowed_rate"], "holds": c["holds"],
                         "mean_evaluation_risk": c["mean_evaluation_risk"], "cost_ratio": c["mean_cost_ratio"],
                         "saved_vs_full": 1 - c["mean_cost_ratio"],
                         "uncertified_violation_rate": u["violation_rate"], "uncertified_holds": u["holds"],
                         "uncertified_cost_ratio": u["mean_cost_ratio"],
                         "guarantee_costs_extra": c["mean_cost_ratio"] - u["mean_cost_ratio"]})
    print(json.dumps({"benchmark": "certified thresholds: validity over random splits", "checkpoint": args.checkpoint,
                      "images": pool.labels.numel(), "calibration_images": args.calibration, "splits": args.splits,
                      "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - start, 1),
                      "all_hold": all(r["holds"] for r in rows), "results": rows}))


if __name__ == "__main__":
    main()
