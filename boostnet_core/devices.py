"""Which device a command runs on: `--device auto` takes the GPU when there is one, else the CPU."""
from __future__ import annotations

import torch

from .errors import ArgumentError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The torch device for `--device NAME` (the process's own GPU under torchrun)."""
    if name not in DEVICES:
        raise ArgumentError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto.")
    if name in ("cuda", "auto") and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels once
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
