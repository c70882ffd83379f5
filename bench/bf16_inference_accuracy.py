"""The accuracy cost of bf16 inference: the same trained weights run in bf16 by each engine that offers it, against
the fp32 model, on the whole test split.

The fp32 reference is the checkpoint's own evaluation cache (the eager model's per-sample results on the test and
validation splits). Each bf16 engine (OpenVINO with its bf16 hint; torch-fold under bf16 autocast) runs the test split
once. Printed, as one JSON object:
- per exit: top-1 in fp32 and in bf16, the difference bf16 - fp32 with a 95% paired bootstrap interval over the test
  images, McNemar's exact test, and the share of test images whose prediction changed;
- at budgets of about 30, 50 and 70% of the full MACs (thresholds fitted to the fp32 validation outputs, the same
  thresholds for both precisions, as a served model would keep them): the share of test images whose exit changed,
  and the accuracy of each precision with the paired interval of their difference.
Usage: python bench/bf16_inference_accuracy.py [--checkpoint checkpoints/cifar10-boostnet] [--data-root DIR] [--images N]
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from boostnet_core import load_model
from boostnet_core.criteria import subset
from boostnet_core.data import load_dataset
from boostnet_core.engines import prepare_inference
from boostnet_core.thresholds import fit_to_budget
from boostnet_core.evaluation import load_cache, predict_split
from boostnet_core.factory import input_channels
from boostnet_core.study.stats import bootstrap_difference, mcnemar
from boostnet_core.thresholds import assign_exits

REPO = Path(__file__).resolve().parents[1]


def _paired(bf16_correct: np.ndarray, fp32_correct: np.ndarray) -> dict:
    d, low, high = bootstrap_difference(bf16_correct, fp32_correct)
    return {"difference": round(d, 3), "interval_95": [round(low, 3), round(high, 3)],
            "mcnemar_p": round(mcnemar(bf16_correct, fp32_correct)["p"], 4)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "cifar10-boostnet"))
    parser.add_argument("--data-root", default=None, help="default: the data root the checkpoint records")
    parser.add_argument("--engines", default="openvino,torch-fold")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shares", default="0.3,0.5,0.7")
    parser.add_argument("--images", type=int, default=None, help="the first N test images only (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    data = model.meta["data"]
    root = args.data_root or data.get("data_root")
    if root and not Path(root).is_dir() and (REPO / root).is_dir():
        root = str(REPO / root)
    bundle = load_dataset(data["dataset"], root, model.meta["input_size"], input_channels(model.meta),
                          val_size=data["val_size"], split_seed=data["split_seed"])
    cache = load_cache(args.checkpoint)
    fp32, val, test = cache["test"], cache["val"], bundle.test
    if args.images is not None:
        if not 0 < args.images <= len(test):
            parser.error(f"--images must be between 1 and {len(test)}, the size of the test split")
        test, fp32 = test.subset(range(args.images)), subset(fp32, torch.arange(args.images))
    full = model.macs[-1]
    budgets = {}
    for share in (float(s) for s in args.shares.split(",")):
        thresholds = fit_to_budget(val, model.macs, share * full)
        budgets[share] = (thresholds, assign_exits(fp32.confidence, thresholds))
    fp32_correct = fp32.correct().numpy()

    report = {"benchmark": "accuracy cost of bf16 inference against the fp32 model", "checkpoint": args.checkpoint,
              "test_images": int(fp32_correct.shape[1]), "engines": {}}
    for name in args.engines.split(","):
        engine = prepare_inference(model, name, "bf16")   # falls back with a warning where bf16 does not prepare
        t0 = time.perf_counter()
        bf16 = predict_split(model, test, engine=engine)
        seconds = time.perf_counter() - t0
        assert torch.equal(bf16.labels, fp32.labels), "the test split differs from the one the cache was made on"
        bf16_correct = bf16.correct().numpy()
        per_exit = []
        for k in range(model.num_exits):
            per_exit.append({"exit": k + 1, "top1_fp32": round(100 * fp32_correct[k].mean(), 2),
                             "top1_bf16": round(100 * bf16_correct[k].mean(), 2),
                             "predictions_changed": round(float((bf16.prediction[k] != fp32.prediction[k]).double().mean()), 5),
                             **_paired(bf16_correct[k], fp32_correct[k])})
        at_budget = []
        n = np.arange(fp32_correct.shape[1])
        for share, (thresholds, exits32) in budgets.items():
            exits16 = assign_exits(bf16.confidence, thresholds)
            c32, c16 = fp32_correct[exits32.numpy(), n], bf16_correct[exits16.numpy(), n]
            at_budget.append({"budget_share": share,
                              "macs_share_fp32": round(float(sum(model.macs[k] for k in exits32.tolist()) / (len(n) * full)), 4),
                              "macs_share_bf16": round(float(sum(model.macs[k] for k in exits16.tolist()) / (len(n) * full)), 4),
                              "exits_changed": round(float((exits16 != exits32).double().mean()), 5),
                              "top1_fp32": round(100 * c32.mean(), 2), "top1_bf16": round(100 * c16.mean(), 2),
                              **_paired(c16, c32)})
        report["engines"][name] = {"ran_as": engine.name, "seconds": round(seconds, 2), "per_exit": per_exit,
                                   "at_budget": at_budget}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
