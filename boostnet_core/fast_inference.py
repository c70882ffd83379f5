"""Fast inference: the same network, prepared once per set of weights for running without gradients.

Eager PyTorch runs every BatchNorm as a pass of its own over the feature maps, keeps them channels-first (slow for
oneDNN's convolutions with a few channels) and pays Python's overhead per layer, which dominates a single image.
The prepared backbone:
- "fold": folds each BatchNorm into the convolution before it (eval statistics) and keeps feature maps channels-last;
  about 0.1 s to prepare;
- "jit": also traces and freezes every block and head into one graph each (no Python between layers); about 0.3 s
  to prepare for the cifar10 preset.
These are the "torch-fold" and "torch-jit" engines of engines/ (prepared once per set of weights, held by the
caller; engines/__init__.py says when a model's engine is prepared again).
The maths is unchanged: exit logits agree with the eager model's to about 1e-6 in fp32 (the tests hold 1e-4 and
identical exits). Backbones whose state between blocks is not a tensor or a list of tensors (RANet's carries
counters) keep eager blocks at "jit" and get traced heads only. If preparing fails (no oneDNN, an op that does not
trace, results that disagree with eager), engines/ falls back to the next simpler engine with one warning.
torch.jit.trace and freeze are deprecated in torch 2.x but work in the pinned 2.13; should they go, "jit" falls back
to "fold" as above. torch.compile (inductor) was measured instead: about 30 s to compile the cifar10 preset per
block and head, and no faster than the traced graphs on this 2-core CPU, so it does not pay back for inference.
"""
from __future__ import annotations

import copy
import operator
import warnings

import torch

from .errors import ArgumentError
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d in an nn.Sequential into that convolution (in place).

    The BatchNorm becomes an Identity; the convolution gets W * g / sqrt(v + eps) and a bias b' = beta + (b - m) *
    g / sqrt(v + eps), which is the same function in eval mode.
    """
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        layers = list(module)
        for i in range(len(layers) - 1):
            if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                module[i + 1] = nn.Identity()
    return module


def _to_channels_last(state):
    if isinstance(state, torch.Tensor):
        return state.contiguous(memory_format=torch.channels_last) if state.dim() == 4 else state
    if isinstance(state, list):
        return [_to_channels_last(s) for s in state]
    return state


def _is_tensor_state(state) -> bool:
    return isinstance(state, torch.Tensor) or (isinstance(state, list) and all(isinstance(s, torch.Tensor) for s in state))


class _Block(nn.Module):
    """Block i of a backbone as a module of its own, so that it can be traced.

    The backbone is held, not registered as a submodule: torch.jit.trace makes a traced copy of every registered
    submodule, which was the whole backbone once per block (1.6 s for the mnist5k model, 2.7 s for cifar10), while the
    weights it meets outside any submodule become constants of the graph, as torch.jit.freeze makes them anyway. The
    same logits (tests/test_fast_inference.py) and speed, in an eighth of the time to prepare.
    """

    def __init__(self, backbone, i: int):
        super().__init__()
        object.__setattr__(self, "backbone", backbone)   # not a submodule: see above
        self.i = i

    def forward(self, state):
        return self.backbone.run_block(self.i, state)


class PreparedBackbone:
    """A stepwise backbone (models/stepwise.py) for inference only, built from a copy of a trained backbone."""

    grad_rescale = False

    def __init__(self, source: nn.Module, level: str, input_shape: tuple[int, int, int]):
        if level not in ("fold", "jit"):
            raise ArgumentError(f"Unknown preparation level {level!r}; choose one of: fold, jit.")
        self.eager = fold_batchnorm(copy.deepcopy(source).eval()).to(memory_format=torch.channels_last)
        for p in self.eager.parameters():
            p.requires_grad_(False)
        self.cfg = source.cfg
        self.level = level
        self.blocks: list | None = None   # traced blocks (None: the folded eager ones)
        self.heads: list | None = None    # traced heads
        if level == "jit":
            self._trace(input_shape)

    @property
    def num_exits(self) -> int:
        return self.eager.num_exits

    def _trace(self, input_shape):
        device = next(self.eager.parameters()).device
        state = _to_channels_last(torch.randn(2, *input_shape, device=device))
        blocks, heads = [], []
        trace_blocks = True
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notices, once per trace
            for i in range(self.num_exits):
                out = self.eager.run_block(i, state)
                trace_blocks = trace_blocks and _is_tensor_state(state) and _is_tensor_state(out)
                if trace_blocks:
                    blocks.append(torch.jit.freeze(torch.jit.trace(_Block(self.eager, i).eval(), (state,), check_trace=False)))
                state = out
                head_in = self.eager.head_input(state)
                heads.append(torch.jit.freeze(torch.jit.trace(self.eager.head(i).eval(), (head_in,), check_trace=False)))
                state = _to_channels_last(self.eager.continue_state(i, state))
            self.blocks, self.heads = (blocks if trace_blocks else None), heads

    def run_block(self, i: int, state):
        state = _to_channels_last(state)
        if self.blocks is None:
            return self.eager.run_block(i, state)
        return self.blocks[i](state)

    def run_head(self, i: int, state) -> torch.Tensor:
        if self.heads is None:
            return self.eager.run_head(i, state)
        return self.heads[i](self.eager.head_input(state))

    def head_input(self, state) -> torch.Tensor:
        return self.eager.head_input(state)

    def head(self, i: int) -> nn.Module:
        return self.eager.head(i)

    def continue_state(self, i: int, state):
        return self.eager.continue_state(i, state)


def model_tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def fingerprint(tensors: list[torch.Tensor]) -> tuple[int, int]:
    """Changes when any of these tensors is modified in place (an optimizer step, load_state_dict: version counters
    only grow) or the model is moved (.to() swaps the data). About 50 us for the cifar10 preset's ~560 tensors."""
    return sum(map(_version, tensors)), tensors[0].data_ptr() if tensors else 0


_version = operator.attrgetter("_version")
