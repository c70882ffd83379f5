"""Benchmark (b): real early exit against running every exit, as wall time beside the MACs ratio, for the eager
model and the fast inference path (boostnet_core/fast_inference.py) in the same run.

Thresholds are fitted to average budgets of 28-100% of the full network's MACs on the model's cached validation
split, then applied to real test images at batch 64 and batch 1. At batch 64 the images come as a stream of batches
and `predict_early_stream` pools the samples that continue into full batches per block; at batch 1 each image is one
`predict_early` call. The MACs ratio (MACs spent / MACs of all exits) is the limit; the target is a fast-path
wall-time ratio within 1.3x of it, and a fast full network at least 2x the eager one. Also reported: the time to
prepare the fast path, the first call after it, and where the time goes per block (share of the full network's
time up to each exit, eager and fast, beside the MACs share). Prints one JSON object.
Usage: python bench/early_exit.py [--checkpoint checkpoints/cifar10-boostnet] [--data-root DIR] [--threads 2]
"""
import argparse
import json
import time

import torch

from boostnet_core import load_model
from boostnet_core.data import load_dataset, normalize
from boostnet_core.early_exit import predict_early, predict_early_stream
from boostnet_core.thresholds import fit_to_budget
from boostnet_core.evaluation import load_cache
from boostnet_core.engines import prepare_inference
from boostnet_core.factory import input_channels
from boostnet_core.models.stepwise import iter_exits


ROUNDS = 3


def timed(fn, repeats):
    """Seconds per call: the best of ROUNDS means over `repeats` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def exit_times(backbone, x, repeats):
    """Wall time per image of running blocks and heads 1..k, for every exit k (the cumulative cost, seconds)."""
    times = []
    for k in range(backbone.num_exits):
        def upto_k():
            for _ in iter_exits(backbone, x, last=k):
                pass
        times.append(timed(upto_k, repeats) / len(x))
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/cifar10-boostnet")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shares", default="0.28,0.4,0.6,0.8,1.0", help="budgets as shares of the full cost")
    parser.add_argument("--repeats", type=int, default=4, help="calls per timing at batch 64 (10x at batch 1)")
    args = parser.parse_args()
    global ROUNDS
    ROUNDS = 3 if args.repeats > 1 else 1
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint).eval()
    data = model.meta["data"]
    bundle = load_dataset(data["dataset"], args.data_root or data.get("data_root"), model.meta["input_size"],
                          input_channels(model.meta), val_size=data["val_size"], split_seed=data["split_seed"])
    x_all = normalize(bundle.test.images[: args.images], model.meta["mean"], model.meta["std"])
    val = load_cache(args.checkpoint)["val"]
    full = model.macs[-1]

    with torch.inference_mode():
        t0 = time.perf_counter()
        fast_backbone = prepare_inference(model, "torch-jit")
        prepare_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        predict_early(model, x_all[:1], [0.9] * model.num_exits, engine=fast_backbone)
        first_call_s = time.perf_counter() - t0
        paths = {"eager": (model.backbone, False), "fast": (fast_backbone, True)}
        per_exit = {(p, b): exit_times(bb, x_all[:b], args.repeats * (1 if b > 1 else 10))
                    for p, (bb, _) in paths.items() for b in (64, 1)}
        blocks = {f"{p}_batch{b}": [round(t / per_exit[(p, b)][-1], 3) for t in per_exit[(p, b)]] for (p, b) in per_exit}
        blocks["macs"] = [round(m / full, 3) for m in model.macs]

        rows, full_network = [], {}
        first = model.macs[0] / full * 1.0001   # no budget can go below the first exit
        shares = sorted({min(1.0, max(float(s), first)) for s in args.shares.split(",")})
        for share in shares:
            thresholds = fit_to_budget(val, model.macs, share * full) if share < 1 else [float("inf")] * model.num_exits
            row = {"budget_share": round(share, 3)}
            for batch in (64, 1):
                n = len(x_all) if batch > 1 else min(len(x_all), 128)
                chunks = [x_all[i:i + batch] for i in range(0, n, batch)]
                exits = predict_early(model, x_all[:n], thresholds, engine=fast_backbone).exit_index.tolist()
                macs_ratio = sum(model.macs[k] for k in exits) / (n * full)
                row[f"batch{batch}"] = {"macs_ratio": round(macs_ratio, 3)}
                for name, (backbone, fast) in paths.items():
                    if batch > 1:
                        run_early = lambda: predict_early_stream(model, chunks, thresholds, batch_size=batch, fast=fast,
                                                                         engine=backbone if fast else None)
                    else:
                        run_early = lambda: [predict_early(model, c, thresholds, fast=fast, engine=backbone if fast else None) for c in chunks]
                    t_early = timed(run_early, max(1, args.repeats // 2))
                    t_all = timed(lambda: [[s.head_logits for s in iter_exits(backbone, c)] for c in chunks], max(1, args.repeats // 2))
                    full_network.setdefault(f"{name}_batch{batch}", []).append(1000 * t_all / n)
                    needed = sum(per_exit[(name, batch)][k] for k in exits) / (n * per_exit[(name, batch)][-1])
                    row[f"batch{batch}"][name] = {"ms_per_image_early": 1000 * t_early / n, "blocks_time_ratio": round(needed, 3)}
            rows.append(row)

        # The full network's time per image: the best of its measurements beside every budget (the least disturbed).
        ms = {k: round(min(v), 3) for k, v in full_network.items()}
        for row in rows:
            for batch in (64, 1):
                point = row[f"batch{batch}"]
                for name in paths:
                    r = point[name]
                    ratio = r["ms_per_image_early"] / ms[f"{name}_batch{batch}"]
                    r.update(time_ratio=round(ratio, 3), time_over_macs=round(ratio / point["macs_ratio"], 3),
                             ms_per_image_early=round(r["ms_per_image_early"], 3))
        agree = max(float((a - b).abs().max()) for a, b in zip([s.head_logits for s in iter_exits(model.backbone, x_all[:64])],
                                                                fast_backbone.head_logits(x_all[:64])))
    print(json.dumps({
        "benchmark": "early exit vs all exits, eager and fast inference", "checkpoint": args.checkpoint,
        "threads": args.threads, "images": len(x_all), "full_macs": full, "fast_level": fast_backbone.name,
        "prepare_s": round(prepare_s, 3), "first_call_after_prepare_ms": round(1000 * first_call_s, 2),
        "full_network_ms_per_image": ms,
        "full_network_speedup": {f"batch{b}": round(ms[f"eager_batch{b}"] / ms[f"fast_batch{b}"], 2) for b in (64, 1)},
        "max_abs_logit_difference": agree, "time_share_up_to_exit": blocks, "points": rows,
        "target": "fast time_over_macs <= 1.3 at batch 64 and batch 1 for every budget; full_network_speedup >= 2",
        "note": "blocks_time_ratio: wall time of exactly the blocks each sample needs (measured per exit, weighted by "
                "where samples exit) over the full network's; time_share_up_to_exit: cumulative wall time up to each "
                "exit over the full network's, beside the MACs share (macs)"}))


if __name__ == "__main__":
    main()
