"""Benchmark (c): training images/s of BoostNet against the joint baseline on the same preset and batches.

Measures whole optimisation steps (forward, loss, backward, SGD) on fixed random batches, interleaving the methods
so that machine noise hits them alike. Target: BoostNet costs at most 5% more per image. Prints one JSON object.
Usage: python bench/train_speed.py [--preset cifar10 --steps 30 --threads 2]
"""
import argparse
import json
import time

import torch

from boostnet_core import create_model
from boostnet_core.boosting import boosting_loss


def step_time(model, x, y, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss, _ = boosting_loss(model.head_logits(x), y, model.reweight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]  # median


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cifar10")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    variants = {
        "joint": create_model(args.preset, method="joint"),
        "boostnet_rescale_on": create_model(args.preset, method="boostnet", grad_rescale=True),
        "boostnet_rescale_off": create_model(args.preset, method="boostnet", grad_rescale=False),
    }
    c, s, _ = variants["joint"].input_shape
    x = torch.randn(args.batch_size, c, s, s)
    y = torch.randint(0, variants["joint"].backbone.cfg.num_classes, (args.batch_size,))
    best = {k: float("inf") for k in variants}
    for _ in range(args.rounds):
        for name, model in variants.items():
            best[name] = min(best[name], step_time(model, x, y, args.steps))
    ips = {k: round(args.batch_size / v, 1) for k, v in best.items()}
    print(json.dumps({"benchmark": "training images/s", "preset": args.preset, "batch_size": args.batch_size,
                      "threads": args.threads, "images_per_s": ips,
                      "boostnet_cost_over_joint": {k: round(best[k] / best["joint"], 3) for k in variants if k != "joint"},
                      "target": "boostnet_cost_over_joint <= 1.05"}))


if __name__ == "__main__":
    main()
