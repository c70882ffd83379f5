"""The contract every backbone keeps, and the one walk over the exits that every caller uses.

A backbone is *stepwise*: exit i needs block i on the state left by block i-1, then head i on that state. Writing
this contract down once lets BoostNet's forward pass, the MACs counter, the attributions, real early exit and the
benchmarks all walk a network the same way, through `iter_exits`, whatever the backbone (MSDNet or RANet).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import ArgumentError


@runtime_checkable
class StepwiseBackbone(Protocol):
    """What `BoostNet`, `iter_exits` and everything built on them require of a backbone.

    The state between blocks is any nesting of tensors (batch first), lists, tuples, dicts and plain counters, so
    that early exit can keep a subset of the samples in it.
    """

    cfg: Any              # a frozen config with at least num_classes and in_channels
    grad_rescale: bool    # training-time gradient rescaling (MSDNet only)
    has_onnx_form: bool   # whether the state between blocks is a flat list of tensors the ONNX pieces can carry

    @property
    def num_exits(self) -> int: ...

    def run_block(self, i: int, state) -> Any:
        """Block i on the state of block i-1 (the input images for i = 0)."""

    def run_head(self, i: int, state) -> torch.Tensor:
        """Raw logits f_i [B, C] of head i, which reads `head_input(state)`."""

    def head_input(self, state) -> torch.Tensor:
        """The feature map [B, C', H', W'] that a head reads from a block's state (Grad-CAM taps it)."""

    def head(self, i: int) -> nn.Module:
        """The module of head i: run_head(i, state) == head(i)(head_input(state))."""

    def continue_state(self, i: int, state) -> Any:
        """The state handed on from block i to block i+1."""


@dataclass
class ExitStep:
    """One exit of a walk: the state after block `index` and the raw logits of head `index`.

    A caller may set `state` to a subset of the samples (batch first) before the walk goes on; the next block then
    runs on that subset only (this is how real early exit drops samples). Once the walk has moved on, `state`
    holds what was handed to the next block, so a walk of a single exit (first == last) leaves in its last step
    the state to resume from.
    """
    index: int
    state: Any
    head_logits: torch.Tensor | None


def iter_exits(backbone: StepwiseBackbone, state, first: int = 0, last: int | None = None,
               heads: bool = True) -> Iterator[ExitStep]:
    """Walk exits first..last (default: all) of `backbone`, yielding after each block and its head.

    `state` is the input images when first = 0, else the state handed on to block `first`. heads=False leaves
    the heads to the caller (Grad-CAM runs them through a tap).
    """
    n = backbone.num_exits
    last = n - 1 if last is None else last
    if not 0 <= first <= last < n:
        raise ArgumentError(f"Exits {first}..{last} do not exist; this model has exits 0..{n - 1}.")
    for i in range(first, last + 1):
        state = backbone.run_block(i, state)
        step = ExitStep(i, state, backbone.run_head(i, state) if heads else None)
        yield step
        if i < n - 1:
            step.state = state = backbone.continue_state(i, step.state)


@contextmanager
def eval_mode(module: nn.Module):
    """Eval mode inside the block; the previous mode comes back afterwards, also when the block raises.

    Switching walks every submodule, so a module already in eval mode is left untouched.
    """
    was_training = module.training
    if was_training:
        module.eval()
    try:
        yield module
    finally:
        if was_training:
            module.train()


def select_samples(state, keep: torch.Tensor):
    """The backbone state restricted to the samples in `keep` (batch dimension first everywhere)."""
    if isinstance(state, torch.Tensor):
        return state[keep]
    if isinstance(state, (list, tuple)):
        return type(state)(select_samples(s, keep) for s in state)
    if isinstance(state, dict):
        return {k: select_samples(v, keep) for k, v in state.items()}
    return state  # counters (RANet's flow and block) are the same for every sample


def concat_samples(states: list):
    """Join backbone states of several groups of samples along the batch dimension."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(states)
    if isinstance(first, (list, tuple)):
        return type(first)(concat_samples([s[i] for s in states]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: concat_samples([s[k] for s in states]) for k in first}
    return first
