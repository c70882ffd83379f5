"""Benchmark: where OpenVINO's time goes in the whole-network graph at batch 64, run as the engine runs it (two parts
of 32 images, each on its own one-thread stream, at the same time: engines/onnx_engines.py `_in_parts`), by layer type,
against the machine's fp32 GEMM rate measured in the same run (one thread: each stream has one).

OpenVINO's own per-layer counters (PERF_COUNT) give each executed layer's time; the convolutions' multiply-adds come
from the graph's shapes at 32 images, so their rate per thread can be set against a 1024^3 torch.mm on one thread.
The account issue 28 asks for beside the 70% goal: which share of the time is convolution arithmetic at what rate,
which is concatenation, layout reorders and the rest. Prints one JSON object.
Usage: python bench/openvino_profile.py [--checkpoint checkpoints/cifar10-boostnet] [--runs 20]
"""
import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from boostnet_core import load_model
from boostnet_core.engines.onnx_graphs import ModelGraphs, join_pieces

sys.path.insert(0, str(Path(__file__).parent))
from gemm import gemm_rate  # noqa: E402  (bench/gemm.py: the machine's fp32 GEMM rate)

PART = 32   # images per part: batch 64 in two parts, as the engine runs it on 2 threads


def convolution_macs(model) -> int:
    """Multiply-adds of every Convolution (and GroupConvolution) in an OpenVINO model with static shapes."""
    total = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution"):
            continue
        out = list(op.get_output_shape(0))
        weights = list(op.get_input_shape(1))
        per_output = int(np.prod(weights[-3:])) if kind == "GroupConvolution" else int(np.prod(weights[1:]))
        total += int(np.prod(out)) * per_output
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/cifar10-boostnet")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import openvino as ov
    torch.set_num_threads(1)
    rate_one_thread = gemm_rate()
    torch.set_num_threads(2)
    model = load_model(args.checkpoint).eval()
    core = ov.Core()
    graph = core.read_model(join_pieces(ModelGraphs().pieces(model)).SerializeToString())
    graph.reshape({"x": [PART, *model.input_shape]})
    macs = convolution_macs(graph)
    compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT",
                                                 "NUM_STREAMS": 2, "INFERENCE_NUM_THREADS": 2, "PERF_COUNT": True})
    requests = [compiled.create_infer_request() for _ in range(2)]
    x = np.random.default_rng(0).standard_normal((PART, *model.input_shape)).astype(np.float32)
    by_type, walls = defaultdict(float), []
    for run in range(args.runs + 2):
        start = time.perf_counter()
        for r in requests:
            r.start_async([x])
        for r in requests:
            r.wait()
        wall = time.perf_counter() - start
        if run < 2:
            continue   # warm-up
        walls.append(wall)
        for r in requests:
            for info in r.profiling_info:
                if info.status == info.Status.EXECUTED:
                    by_type[info.node_type] += info.real_time.total_seconds() / len(requests)
    total = sum(by_type.values())
    conv_time = sum(t for kind, t in by_type.items() if "Conv" in kind) / args.runs
    out = {"benchmark": "OpenVINO per-layer time, batch 64 in two one-thread parts", "checkpoint": args.checkpoint,
           "gemm_fp32_macs_per_s_one_thread": round(rate_one_thread),
           "wall_ms_per_batch64": round(1e3 * min(walls), 2),
           "network_macs_per_s": round(2 * PART * model.macs[-1] / min(walls)),
           "network_share_of_gemm_rate": round(2 * PART * model.macs[-1] / min(walls) / (2 * rate_one_thread), 3),
           "share_of_layer_time": {kind: round(t / total, 3) for kind, t in sorted(by_type.items(), key=lambda kv: -kv[1])},
           "convolution_macs_per_part": macs,
           "convolution_macs_per_s_per_thread": round(macs / conv_time),
           "convolution_share_of_gemm_rate": round(macs / conv_time / rate_one_thread, 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
