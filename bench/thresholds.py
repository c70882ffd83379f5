"""Benchmark (a): budgeted-batch threshold fitting + exit assignment, vectorised vs the authors' per-sample loop.

50,000 samples x 10 exits; scores are an exit criterion's (criteria.py; default max-softmax) of random 1000-class
logits whose scale grows with depth. Prints one JSON object.
Usage: python bench/thresholds.py [--samples 50000 --exits 10 --classes 1000 --criterion max_softmax]
"""
import argparse
import json
import time

import torch

from boostnet_core.criteria import get_criterion
from boostnet_core.evaluation import assign_exits, fit_thresholds
from boostnet_core.thresholds import assign_exits_loop, exit_fractions, fit_thresholds_loop


def confidences(samples: int, exits: int, classes: int, seed: int = 0, criterion: str = "max_softmax") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    crit = get_criterion(criterion)
    out = torch.empty(exits, samples)
    for start in range(0, samples, 5000):
        n = min(5000, samples - start)
        logits = torch.stack([torch.randn(n, classes, generator=g) * (1 + k) for k in range(exits)])  # [E, n, C]
        out[:, start:start + n] = crit.scores(logits)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50000)
    parser.add_argument("--exits", type=int, default=10)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--q", type=float, default=1.0, help="q of the paper's fractions (q = p/20)")
    parser.add_argument("--criterion", choices=["max_softmax", "entropy", "margin", "patience"], default="max_softmax")
    args = parser.parse_args()
    conf = confidences(args.samples, args.exits, args.classes, criterion=args.criterion)
    fractions = exit_fractions(args.q, args.exits)

    t0 = time.perf_counter()
    fast_t = fit_thresholds(conf, fractions)
    fast_exits = assign_exits(conf, fast_t)
    fast_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    slow_t = fit_thresholds_loop(conf, fractions)
    slow_exits = assign_exits_loop(conf, slow_t)
    slow_s = time.perf_counter() - t0

    print(json.dumps({
        "benchmark": "threshold fitting + assignment", "samples": args.samples, "exits": args.exits,
        "classes": args.classes, "q": args.q, "criterion": args.criterion, "threads": torch.get_num_threads(),
        "vectorised_s": round(fast_s, 4), "loop_s": round(slow_s, 3), "speedup": round(slow_s / fast_s, 1),
        "identical_thresholds": bool(torch.equal(fast_t, slow_t)), "identical_exits": bool(torch.equal(fast_exits, slow_exits)),
        "targets": {"vectorised_s_below": 1.0, "speedup_at_least": 100},
    }))


if __name__ == "__main__":
    main()
