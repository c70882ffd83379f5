"""The torch engines: the eager backbone ("torch"), BatchNorm folded and channels-last ("torch-fold") and traced,
frozen blocks and heads ("torch-jit"). Folding and tracing are fast_inference.py's PreparedBackbone."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from ..fast_inference import PreparedBackbone
from .base import EngineUnavailable, InferenceEngine

LEVELS = {"torch": None, "torch-fold": "fold", "torch-jit": "jit"}


class TorchEngine(InferenceEngine):
    """A stepwise backbone run by PyTorch (bf16: autocast, logits returned as fp32)."""

    runtime_errors = (RuntimeError,)   # torch.jit's tracer and oneDNN report what they cannot do as RuntimeError

    def __init__(self, name: str, model, precision: str = "fp32"):
        level = LEVELS[name]
        super().__init__(model.backbone, precision)
        self.name = name
        try:
            with torch.inference_mode(False), torch.no_grad():   # a copy of normal tensors, also in inference mode
                self.runner = model.backbone if level is None else PreparedBackbone(model.backbone, level,
                                                                                    model.input_shape)
        except self.runtime_errors as e:
            raise EngineUnavailable(f"{name} could not be prepared ({str(e).splitlines()[0]})") from e

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()

    def run_block(self, i: int, state):
        with self._autocast():
            return self.runner.run_block(i, state)

    def run_head(self, i: int, state) -> torch.Tensor:
        with self._autocast():
            return self.runner.run_head(i, state).float()

    def head_input(self, state) -> torch.Tensor:
        return self.runner.head_input(state)

    def head(self, i: int):
        return self.runner.head(i)
