"""Benchmark (b): real early exit vs running every exit, as wall time beside the MACs ratio.

Thresholds are fitted to average budgets of 20-100% of the full network's MACs on the model's cached validation
split, then applied to real test images at batch 64 and batch 1. At batch 64 the images come as a stream of batches and
`predict_early_stream` pools the samples that continue into full batches per block (per-call `predict_early` is
also reported); at batch 1 each image is one `predict_early` call. The MACs ratio (MACs spent / MACs of all exits)
is the limit; the target is a wall-time ratio within 1.3x of it. Prints one JSON object.
Usage: python bench/early_exit.py [--checkpoint checkpoints/cifar10-boostnet] [--data-root DIR]
"""
import argparse
import json
import time

import torch

from boostnet_core import load_model
from boostnet_core.data import load_dataset, normalize
from boostnet_core.early_exit import predict_early_stream
from boostnet_core.evaluation import fit_to_budget, load_cache
from boostnet_core.models.stepwise import iter_exits


def timed(fn, repeats):
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def exit_times(model, x, repeats=3):
    """Wall time per image of running blocks and heads 1..k, for every exit k (the per-exit cost in seconds)."""
    times = []
    for k in range(model.num_exits):
        def upto_k():
            for _ in iter_exits(model.backbone, x, last=k):
                pass
        times.append(timed(upto_k, repeats) / len(x))
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/cifar10-boostnet")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shares", default="0.2,0.4,0.6,0.8,1.0", help="budgets as shares of the full cost")
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
        seconds = {64: exit_times(model, x_all[:64]), 1: exit_times(model, x_all[:1], repeats=20)}
        first = model.macs[0] / full  # no budget can go below the first exit
        shares = [float(v) for v in args.shares.split(",")]
        for share in sorted({min(1.0, max(s, round(first + 0.005, 3))) for s in shares}):
            thresholds = fit_to_budget(val, model.macs, share * full) if share < 1 else [float("inf")] * model.num_exits
            row = {"budget_share": share}
            for batch in (64, 1):
                n = len(x_all) if batch > 1 else min(len(x_all), 128)
                chunks = [x_all[i:i + batch] for i in range(0, n, batch)]
                # Batch 64: a stream of batches, continuing samples pooled into full batches per block;
                # batch 1: one image per call.
                if batch > 1:
                    run_early = lambda: predict_early_stream(model, chunks, thresholds, batch_size=batch)
                    spent = float(run_early().macs.sum())
                else:
                    run_early = lambda: [model.predict_early(c, thresholds) for c in chunks]
                    spent = sum(float(r.macs.sum()) for r in run_early())
                t_early = timed(run_early, 2)
                t_all = timed(lambda: [model(c) for c in chunks], 2)
                macs_ratio = spent / (n * full)
                exits = (model.predict_early(x_all[:n], thresholds).exit_index).tolist()
                time_needed = sum(seconds[batch][k] for k in exits) / (n * seconds[batch][-1])
                if batch > 1:
                    t_per_call = timed(lambda: [model.predict_early(c, thresholds) for c in chunks], 2)
                row[f"batch{batch}"] = {"macs_ratio": round(macs_ratio, 3), "time_ratio": round(t_early / t_all, 3),
                                        "blocks_time_ratio": round(time_needed, 3),
                                        "time_over_blocks_time": round((t_early / t_all) / time_needed, 3),
                                        "time_over_macs": round((t_early / t_all) / macs_ratio, 3),
                                        "ms_per_image_early": round(1000 * t_early / n, 3),
                                        "ms_per_image_all_exits": round(1000 * t_all / n, 3)}
                if batch > 1:
                    row[f"batch{batch}"]["time_ratio_per_call_batches"] = round(t_per_call / t_all, 3)
            rows.append(row)
    print(json.dumps({"benchmark": "early exit vs all exits", "checkpoint": args.checkpoint, "threads": args.threads,
                      "images": len(x_all), "full_macs": full, "points": rows,
                      "target": "time_over_macs <= 1.3 at batch 64 and batch 1",
                      "note": "blocks_time_ratio: wall time of exactly the blocks each sample needs (measured per exit, "
                              "weighted by where samples exit) over the full network's; time_over_blocks_time is the "
                              "bookkeeping overhead of real early exit"}))


if __name__ == "__main__":
    main()
