"""Benchmark: where the full network's inference time goes, by operation, eager and fast (same run).

Profiles every exit of the model on one batch (torch.profiler, self CPU time) and groups the time by kind:
convolutions by their output width (narrow: at most 8 channels, as in the first blocks of the cifar10 preset; wide:
more), concatenations (each dense layer appends its output to the maps before it), BatchNorm and activations (gone
in the fast path: folded and fused), and the rest. For the convolutions it also gives the multiply-adds they do and
the rate they reach (GMAC/s), which is where the MACs ratio and the wall-time ratio part ways. Prints one JSON object.
Usage: python bench/inference_profile.py [--checkpoint checkpoints/cifar10-boostnet] [--batch 64] [--threads 2]
       [--level jit]
"""
import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from boostnet_core import load_model
from boostnet_core.engines import prepare_inference
from boostnet_core.models.stepwise import iter_exits

REPO = Path(__file__).resolve().parents[1]
NARROW = 8
# The kernels that do a convolution's arithmetic (aten::conv2d, convolution and _convolution only dispatch to one).
CONVOLUTIONS = ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::_nnpack_spatial_convolution")


class ConvolutionMacs(TorchDispatchMode):
    """Multiply-adds of every convolution, keyed by (input shape, weight shape)."""

    def __init__(self):
        super().__init__()
        self.macs = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.convolution.default:
            x, w = args[0], args[1]  # w: [out, in per group, kh, kw]
            self.macs[(tuple(x.shape), tuple(w.shape))] = out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
        return out


def kind_of(name: str, shapes) -> str:
    if name in CONVOLUTIONS and len(shapes) > 1 and len(shapes[1]) == 4:
        return "conv, narrow (<= 8 out)" if shapes[1][0] <= NARROW else "conv, wide"
    if name == "aten::cat":
        return "concatenate"
    if "batch_norm" in name:
        return "batch norm"
    if name in ("aten::relu", "aten::relu_", "aten::threshold", "aten::clamp_min", "aten::clamp_min_"):
        return "activation"
    return "other"


LEVEL = "jit"


def head_logits(model, x, fast: bool, level: str = "jit"):
    if fast:
        return prepare_inference(model, f"torch-{level}").head_logits(x)
    return [s.head_logits for s in iter_exits(model.backbone, x)]


def profile_path(model, x, fast: bool, repeats: int, macs: dict) -> dict:
    with torch.inference_mode():
        for _ in range(3):
            head_logits(model, x, fast, LEVEL)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(repeats):
                head_logits(model, x, fast, LEVEL)
    ms = defaultdict(float)
    conv_macs = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        kind = kind_of(event.key, event.input_shapes)
        ms[kind] += event.self_cpu_time_total / 1000 / repeats
        if kind.startswith("conv"):
            key = (tuple(event.input_shapes[0]), tuple(event.input_shapes[1]))
            conv_macs[kind] += macs.get(key, 0) * event.count / repeats
    total = sum(ms.values())
    result = {"ms_per_batch": round(total, 2), "ms_per_image": round(total / len(x), 4), "by_kind": {}}
    for kind in sorted(ms, key=ms.get, reverse=True):
        entry = {"ms": round(ms[kind], 2), "share": round(ms[kind] / total, 3)}
        if kind in conv_macs:
            entry["mmacs"] = round(conv_macs[kind] / 1e6, 1)
            entry["gmacs_per_s"] = round(conv_macs[kind] / (ms[kind] / 1000) / 1e9, 1) if ms[kind] else None
        result["by_kind"][kind] = entry
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "cifar10-boostnet"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--level", choices=("fold", "jit"), default="jit", help="the fast path's level")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    c, s, _ = model.input_shape
    x = torch.randn(args.batch, c, s, s, generator=torch.Generator().manual_seed(0))
    counter = ConvolutionMacs()
    with torch.no_grad(), counter:  # a dispatch mode sees nothing under inference_mode
        head_logits(model, x, fast=False)
    global LEVEL
    LEVEL = args.level
    prepare_inference(model, f"torch-{args.level}")
    print(json.dumps({"benchmark": "inference time by operation, every exit", "checkpoint": args.checkpoint,
                      "batch": args.batch, "threads": args.threads, "fast_level": args.level,
                      "model_mmacs_per_batch": round(model.macs[-1] * args.batch / 1e6, 1),
                      "eager": profile_path(model, x, False, args.repeats, counter.macs),
                      "fast": profile_path(model, x, True, args.repeats, counter.macs)}))


if __name__ == "__main__":
    main()
