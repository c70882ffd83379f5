"""Benchmark: the default inference path (engines/, "auto") against the authors' eager model, and early exit against
the fastest full-network run on the same engine. Same weights, interleaved rounds in one process (the two paths of
each comparison take turns in every round; ratios of the best rounds, and of the medians beside them); one JSON.

Full network: images/s at batch 1 and 64, eager (fast=False) vs the default engine's whole-network head_logits, and
the largest logit difference. Early exit: thresholds fitted on the cached validation split to MACs shares about
0.3/0.5/0.7/1.0; predict_early through the default engine; wall-time ratio against that engine's full network
(`time_ratio`: the whole-network pick, the fastest full network) and against the full network of the engine early exit
ran on (`time_ratio_to_same_engine`).
The machine's own limit: a 1024^3 fp32 matrix product in torch on the same threads, the best of 20 timed at the start
of the run (before any engine exists) and again at its end (after a pause: ONNX Runtime's threads spin for a while
after each run and, interleaved, slowed torch's product by a third), gives the fp32 GEMM rate in multiply-adds per
second; every figure is also reported as the share of that rate the network's multiply-adds run at
(`share_of_gemm_rate`).
Usage: python bench/engines_speed.py [--checkpoint checkpoints/cifar10-boostnet] [--images 256] [--threads 2]
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from boostnet_core import load_model
from boostnet_core.data import load_dataset, normalize
from boostnet_core.engines import engine_for
from boostnet_core.engines.auto import AutoEngine
from boostnet_core.thresholds import fit_to_budget
from boostnet_core.evaluation import load_cache
from boostnet_core.factory import input_channels
from boostnet_core.models.stepwise import iter_exits

sys.path.insert(0, str(Path(__file__).parent))
from gemm import gemm_rate  # noqa: E402  (bench/gemm.py: the machine's fp32 GEMM rate)


PAUSE = 0.1   # seconds before each timed turn: an ONNX Runtime session's threads spin for tens of ms after a run


def interleaved(fns: dict, rounds: int) -> dict:
    """Seconds of each function per round, the functions taking turns within every round (after one warm-up call
    each), so that the machine's drift and bursts of noise fall on all of them alike. Each turn starts after a pause:
    the threads of the runtime session that ran just before keep spinning for tens of milliseconds, and on 2 cores
    that slowed the next session's run 1.5-2.5x (engines/auto.py `_seconds`); each path is timed as a stream of its
    own calls runs."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(PAUSE)
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def per_block(model, x, rounds: int) -> dict:
    """Why early exit at batch 1 costs more than its MACs: on ONNX Runtime, milliseconds per call of the whole graph,
    of its first piece alone (block 1 + head 1), and of the one-graph early exit when the image leaves at the first
    exit and when it runs to the end (interleaved; best of `rounds` x 100 calls)."""
    from boostnet_core.engines import prepare_inference
    engine = prepare_inference(model, "onnxruntime")
    early, arrays, n = engine.fused_early_exit(1), [x.numpy()], model.num_exits
    calls = {"whole_ms": lambda: engine.whole(arrays), "first_piece_ms": lambda: engine.pieces[0](arrays),
             "early_graph_leaves_at_exit_1_ms": lambda: early(x, [0.0] * n),
             "early_graph_runs_to_the_end_ms": lambda: early(x, [2.0] * n)}
    times = interleaved({k: (lambda fn=fn: [fn() for _ in range(100)]) for k, fn in calls.items()}, rounds)
    out = {k: round(min(v) * 10, 3) for k, v in times.items()}   # best round of 100 calls, in ms per call
    out["first_exit_macs_share"] = round(model.macs[0] / model.macs[-1], 3)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/cifar10-boostnet")
    parser.add_argument("--data-root", default="../shared/data/cifar10-jpg")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rate_at_start = gemm_rate()
    model = load_model(args.checkpoint).eval()
    data = model.meta["data"]
    root = args.data_root if data["dataset"] in ("folder", "cifar10") else data.get("data_root")
    bundle = load_dataset(data["dataset"], root, model.meta["input_size"], input_channels(model.meta),
                          val_size=data["val_size"], split_seed=data["split_seed"])
    x_all = normalize(bundle.test.images[: args.images], model.meta["mean"], model.meta["std"])
    t0 = time.perf_counter()
    engine = engine_for(model)
    with torch.inference_mode():
        engine.head_logits(x_all[:1]); engine.head_logits(x_all[:64])
        prepare_s = time.perf_counter() - t0
        out = {"benchmark": "default engine vs eager; early exit vs full network", "checkpoint": args.checkpoint,
               "threads": args.threads, "prepare_and_measure_s": round(prepare_s, 2)}
        eager_logits = [s.head_logits for s in iter_exits(model.backbone, x_all[:64])]
        out["max_abs_logit_difference"] = max(float((a - b).abs().max()) for a, b in zip(engine.head_logits(x_all[:64]), eager_logits))
        chunks = {1: [x_all[i:i + 1] for i in range(32)], 64: [x_all[i:i + 64] for i in range(0, len(x_all), 64)]}
        top = model.macs[-1]
        full = {}
        for b, cs in chunks.items():
            full[b] = (sum(len(c) for c in cs), interleaved({
                "eager": lambda: [list(iter_exits(model.backbone, c)) for c in cs],
                "engine": lambda: [engine.head_logits(c) for c in cs]}, args.rounds))
        rate = max(rate_at_start, gemm_rate())
        out["gemm_fp32_macs_per_s"] = round(rate)
        for b, (n, t) in full.items():
            out[f"full_batch{b}"] = {"eager_images_per_s": round(n / min(t["eager"])),
                                     "engine_images_per_s": round(n / min(t["engine"])),
                                     "speedup": round(min(t["eager"]) / min(t["engine"]), 2),
                                     "speedup_of_medians": round(statistics.median(t["eager"]) / statistics.median(t["engine"]), 2),
                                     "engine_macs_per_s": round(n * top / min(t["engine"])),
                                     "eager_share_of_gemm_rate": round(n * top / min(t["eager"]) / rate, 3),
                                     "share_of_gemm_rate": round(n * top / min(t["engine"]) / rate, 3),
                                     "engine": engine.describe()}
        val = load_cache(args.checkpoint)["val"]
        rows = []
        for share in (0.3, 0.5, 0.7, 1.0):
            t = fit_to_budget(val, model.macs, share * top).tolist() if share < 1 else [1.0] * model.num_exits
            row = {"budget_share": share}
            for b, cs in chunks.items():
                exits = torch.cat([model.predict_early(c, t).exit_index for c in cs])
                macs_ratio = float(sum(model.macs[k] for k in exits.tolist()) / (len(exits) * top))
                # the early-exit engine's own full network beside the fastest one (auto runs both early-exit plans
                # on one engine, whose whole network may be slower than the whole-network pick's)
                same = engine.pick(len(cs[0]), "early") if isinstance(engine, AutoEngine) else engine
                times = interleaved({"full": lambda: [engine.head_logits(c) for c in cs],
                                     "early": lambda: [model.predict_early(c, t) for c in cs],
                                     "full_same_engine": lambda: [same.head_logits(c) for c in cs]}, args.rounds)
                ratio = min(times["early"]) / min(times["full"])
                spent = macs_ratio * top * sum(len(c) for c in cs)   # multiply-adds early exit ran
                row[f"batch{b}"] = {"macs_ratio": round(macs_ratio, 3), "time_ratio": round(ratio, 3),
                                    "time_over_macs": round(ratio / macs_ratio, 2),
                                    "share_of_gemm_rate": round(spent / min(times["early"]) / rate, 3),
                                    "time_ratio_of_medians": round(statistics.median(times["early"]) / statistics.median(times["full"]), 3),
                                    "engine": model.predict_early(cs[0], t).engine,
                                    "time_ratio_to_same_engine": round(min(times["early"]) / min(times["full_same_engine"]), 3),
                                    "same_engine": same.name}
            rows.append(row)
        out["early_exit"] = rows
        # what auto's early-exit plan weighed (engines/auto.py ExitPlan): seconds per call of the one graph with every
        # sample leaving at exit k, and of the whole network then the exits chosen
        plans = engine.exit_plans if isinstance(engine, AutoEngine) else {}
        out["exit_plans"] = {use: plan.costs for use, plan in plans.items()}
        out["batch1_per_block"] = per_block(model, x_all[:1], args.rounds)
        out["target"] = ("full_batch64 share_of_gemm_rate >= 0.70, full_batch1 speedup >= 5; early exit time_over_macs "
                         "<= 1.3 and time_ratio <= 1.0")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
