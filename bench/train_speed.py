"""Benchmark (c): training images/s, BoostNet against the joint baseline, and the trainer's speed options against
the plain eager step, on the same preset and batches.

Measures whole optimisation steps (forward, loss, backward, SGD) on fixed random batches through the trainer's own
forward and step (`training.training_forward`, `training.train_step`), interleaving the variants round by round so that machine noise hits them alike.
Paths (`--paths`): "eager" (fp32, the default; bit-stable with earlier runs), "channels_last" (fp32), "compiled"
(fp32, torch.compile), "bf16" (bf16 autocast), "compiled_bf16", "bf16_channels_last". Targets: BoostNet costs at most 5% more per
image than joint; the fast fp32 path >= 1.2x and bf16 >= 1.5x the eager step. Prints one JSON object, with the
compile time and the first (compiling) step's latency.
Usage: python bench/train_speed.py [--preset cifar100-msdnet-anytime --steps 8 --threads 2] [--paths eager bf16 ...]
"""
import argparse
import json
import time

import torch

from boostnet_core import create_model
from boostnet_core.training import train_step, training_forward

PATHS = {"eager": {}, "channels_last": {"channels_last": True}, "compiled": {"compile": True},
         "bf16": {"precision": "bf16"}, "compiled_bf16": {"compile": True, "precision": "bf16"},
         "bf16_channels_last": {"channels_last": True, "precision": "bf16"}}
METHODS = {"joint": ("joint", False), "boostnet_rescale_on": ("boostnet", True), "boostnet_rescale_off": ("boostnet", False)}


def make_step(preset, method, grad_rescale, options):
    torch.manual_seed(0)
    model = create_model(preset, method=method, grad_rescale=grad_rescale).train()
    if options.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    forward = training_forward(model, torch.device("cpu"), **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        train_step(forward, opt, x, y, model.reweight)
    return model, step


def median_step(step, x, y, steps):
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cifar10")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=["eager", "compiled", "bf16", "compiled_bf16"], choices=sorted(PATHS),
                        help="'eager' is always measured; compiled paths compile for 1-3 min per model")
    parser.add_argument("--methods", nargs="+", default=["joint", "boostnet_rescale_on"], choices=sorted(METHODS),
                        help="eager also measures boostnet_rescale_off")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = {k: PATHS[k] for k in dict.fromkeys(["eager", *args.paths])}
    variants, first_step_s = {}, {}
    x = y = None
    for path, options in paths.items():
        for name, (method, rescale) in METHODS.items():
            if name not in args.methods and not (path == "eager" and name == "boostnet_rescale_off"):
                continue
            model, step = make_step(args.preset, method, rescale, options)
            if x is None:
                c, s, _ = model.input_shape
                x = torch.randn(args.batch_size, c, s, s)
                y = torch.randint(0, model.num_classes, (args.batch_size,))
            t0 = time.perf_counter()
            step(x, y)  # warm-up; compiles on the compiled path
            step(x, y)
            first_step_s[f"{path}/{name}"] = round(time.perf_counter() - t0, 2)
            variants[f"{path}/{name}"] = step
    best = {k: float("inf") for k in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            best[name] = min(best[name], median_step(step, x, y, args.steps))
    ips = {k: round(args.batch_size / v, 1) for k, v in best.items()}
    speedup = {k: round(best[f"eager/{k.split('/')[1]}"] / v, 3) for k, v in best.items() if not k.startswith("eager/")}
    print(json.dumps({
        "benchmark": "training images/s", "preset": args.preset, "batch_size": args.batch_size, "threads": args.threads,
        "images_per_s": ips, "speedup_over_eager": speedup,
        "boostnet_cost_over_joint": {k: round(best[k] / best[f"{k.split('/')[0]}/joint"], 3) for k in variants
                                     if "boostnet" in k and f"{k.split('/')[0]}/joint" in best},  # joint not measured: none
        "warmup_two_steps_s": first_step_s,
        "target": "boostnet_cost_over_joint <= 1.05; speedup_over_eager: fp32 fast path >= 1.2, bf16 >= 1.5"}))


if __name__ == "__main__":
    main()
