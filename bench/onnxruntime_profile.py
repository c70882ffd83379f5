"""Benchmark: where ONNX Runtime's time goes in the whole-network graph, by operator, against the machine's fp32 GEMM
rate measured in the same run (the account issue 28 asks for: which share of the time is convolution arithmetic at
what rate, which is layout reorders, concatenation copies and the rest).

Runs the default engine's whole graph (every exit for every sample, what anytime evaluation and the batch-64 figure of
bench/engines_speed.py time) with ONNX Runtime's own profiler, sums each kernel's duration by operator type, and for
the convolutions (and fused convolutions) computes the multiply-adds from the shapes the profiler records, so that
their rate can be set against a 1024^3 torch.mm on the same threads. Prints one JSON object.
Usage: python bench/onnxruntime_profile.py [--checkpoint checkpoints/cifar10-boostnet] [--batch 64] [--threads 2]
       [--runs 20]
"""
import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from boostnet_core import load_model
from boostnet_core.engines.onnx_graphs import ModelGraphs

sys.path.insert(0, str(Path(__file__).parent))
from gemm import gemm_rate  # noqa: E402  (bench/gemm.py: the machine's fp32 GEMM rate)

CONVOLUTIONS = ("Conv", "FusedConv", "NchwcConv")


def conv_macs(args: dict) -> float:
    """Multiply-adds of one convolution node from the profiler's shapes: output elements x (input channels per group
    x kernel height x kernel width), read from the weight's shape [out, in/groups, kh, kw]."""
    inputs = [list(s.values())[0] for s in args.get("input_type_shape", [])]
    outputs = [list(s.values())[0] for s in args.get("output_type_shape", [])]
    if len(inputs) < 2 or not outputs:
        return 0.0
    weight = inputs[1]
    if len(weight) != 4:   # NCHWc-blocked weights: [out/b, in/b, kh, kw, b, b]
        if len(weight) == 6:
            return float(np.prod(outputs[0])) * weight[1] * weight[5] * weight[2] * weight[3]
        return 0.0
    return float(np.prod(outputs[0])) * weight[1] * weight[2] * weight[3]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/cifar10-boostnet")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import onnxruntime as ort
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    graph = ModelGraphs().whole(model)
    x = np.random.default_rng(0).standard_normal((args.batch, *model.input_shape)).astype(np.float32)
    rate_before = gemm_rate()
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        options.enable_profiling, options.profile_file_prefix = True, os.path.join(folder, "ort")
        options.log_severity_level = 3
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        session.run(None, {name: x})   # warm-up
        start = time.perf_counter()
        for _ in range(args.runs):
            session.run(None, {name: x})
        wall = (time.perf_counter() - start) / args.runs
        events = json.load(open(session.end_profiling()))
    rate = max(rate_before, gemm_rate())
    by_op, conv_us, conv_work = defaultdict(float), 0.0, 0.0
    runs_seen = sum(1 for e in events if e.get("name") == "model_run")
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        op = e["args"].get("op_name", "?")
        by_op[op] += e["dur"]
        if op in CONVOLUTIONS:
            conv_us += e["dur"]
            conv_work += conv_macs(e["args"])
    total_us = sum(by_op.values())
    per_run = runs_seen or (args.runs + 1)
    network_macs = model.macs[-1] * args.batch
    out = {"benchmark": "ONNX Runtime whole graph by operator", "checkpoint": args.checkpoint, "batch": args.batch,
           "threads": args.threads, "gemm_fp32_macs_per_s": round(rate),
           "wall_ms_per_batch": round(1e3 * wall, 2),
           "network_macs_per_s": round(network_macs / wall), "network_share_of_gemm_rate": round(network_macs / wall / rate, 3),
           "kernel_ms_per_batch": round(total_us / 1e3 / per_run, 2),
           "share_of_kernel_time": {op: round(us / total_us, 3) for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])},
           "convolution_macs_per_batch": round(conv_work / per_run),
           "convolution_macs_per_s": round(conv_work / (conv_us / 1e6)) if conv_us else None,
           "convolution_share_of_gemm_rate": round(conv_work / (conv_us / 1e6) / rate, 3) if conv_us else None,
           "note": "kernel times are summed over the threads' work as the profiler records them; wall time is measured "
                   "around session.run with profiling on"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
