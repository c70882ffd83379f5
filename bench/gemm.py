"""The machine's own limit for the inference benchmarks: the fp32 GEMM rate, in multiply-adds per second.

One 1024^3 torch.mm on torch's current threads, the best of `calls` after a pause and a warm-up. The pause matters:
right after ONNX Runtime has run, its threads keep spinning for a while, and a product timed then came out a third
slower (bench/engines_speed.py measures at the start and at the end of a run, apart from the engine's calls).
"""
import time

import torch

SIZE = 1024


def gemm_rate(calls: int = 20, pause_s: float = 0.5) -> float:
    a = torch.randn(SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    b = torch.randn(SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    time.sleep(pause_s)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return SIZE ** 3 / best
