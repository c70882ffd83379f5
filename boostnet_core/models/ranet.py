"""RANet: the resolution-adaptive network (Yang et al., CVPR 2020), a BoostNet backbone (arXiv 2211.16726, section 4; docs/method.md).

Several sub-networks ("flows") run one after another, from the lowest input resolution to the highest. Flow 0 is a
plain dense network with an exit after each block. Flow j > 0 first re-runs the blocks of flow j-1 at its own
resolution, fusing the lower-resolution features of flow j-1 (up-sampled, `compress_factor` of the channels), then
adds `block_step` new blocks, each with an exit. The channel arithmetic follows the RANet reference layout so that
costs per exit match the published ones.

Stepwise like MSDNet: `run_block(k, state)` computes everything exit k needs beyond exit k-1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from .initialization import init_weights
from .limits import check_layers, check_sizes
from .msdnet import BottleneckConv, Head, chain_outputs, conv_bn_relu, first_layer


@dataclass(frozen=True)
class RANetConfig:
    n_blocks: int = 2                        # blocks of the first (lowest-resolution) flow
    block_step: int = 2                      # blocks that each later flow adds
    step: int = 4                            # dense layers per block ("even" step mode)
    n_channels: int = 16                     # stem channels before the per-flow grFactor
    growth_rate: int = 6                     # channels per layer before the per-flow grFactor
    scale_list: tuple[int, ...] = (1, 2, 3, 3)  # resolution level of each flow (1 = lowest); its length = flows
    gr_factor: tuple[int, ...] = (4, 2, 1, 1)   # channel multiplier per flow
    bn_factor: tuple[int, ...] = (4, 2, 1, 1)   # bottleneck width multiplier per flow
    compress_factor: float = 0.25            # share of a fused layer's new channels taken from the lower flow
    reduction: float = 0.5                   # transition compression
    stem: str = "cifar"                      # "cifar" or "imagenet" (7x7/2 conv + max pool)
    head_channels: int | None = 128          # head conv width; None keeps the input width (ImageNet head)
    num_classes: int = 10
    in_channels: int = 3

    def __post_init__(self):
        check_sizes("RANet", self)
        n = len(self.scale_list)
        check_layers("RANet", self.step * sum(self.blocks_before(j + 1) for j in range(n)))
        if not (len(self.gr_factor) == len(self.bn_factor) == n):
            raise ArgumentError(f"scale_list {self.scale_list!r}, gr_factor {self.gr_factor!r} and bn_factor {self.bn_factor!r} must have the same length.")
        if list(self.scale_list) != sorted(self.scale_list) or self.scale_list[0] != 1:
            raise ArgumentError(f"scale_list must start at 1 and never decrease, got {self.scale_list!r}.")
        if self.stem not in ("cifar", "imagenet"):
            raise ArgumentError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}.")

    @property
    def n_flows(self) -> int:
        return len(self.scale_list)

    def blocks_before(self, flow: int) -> int:
        """Blocks of flows < `flow` that a flow re-runs (0 for flow 0)."""
        return 0 if flow == 0 else self.n_blocks + self.block_step * (flow - 1)


class RAStem(nn.Module):
    """One feature map per flow, built from the highest resolution down; returned lowest resolution first."""

    def __init__(self, cfg: RANetConfig):
        super().__init__()
        gr, scales = cfg.gr_factor[::-1], cfg.scale_list[::-1]
        c = cfg.n_channels * gr[0]
        layers = [first_layer(cfg.stem, cfg.in_channels, c)]
        for i in range(1, cfg.n_flows):
            stride = 1 if scales[i] == scales[i - 1] else 2
            layers.append(conv_bn_relu(c, cfg.n_channels * gr[i], 3, stride))
            c = cfg.n_channels * gr[i]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return chain_outputs(self.layers, x)[::-1]


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bn_width: int):
        super().__init__()
        self.conv = BottleneckConv(c_in, growth, 1, bn_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(x)], dim=1)


class FusedLayer(nn.Module):
    """Dense layer that also takes `compress_factor` of its new channels from a lower-resolution feature map."""

    def __init__(self, c_in: int, c_low: int, growth: int, bn_width: int, bn_width_low: int, compress: float, down: bool):
        super().__init__()
        from_low = math.floor(growth * compress)
        self.conv_low = BottleneckConv(c_low, from_low, 1, bn_width_low)
        self.conv = BottleneckConv(c_in, growth - from_low, 2 if down else 1, bn_width)

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        new = self.conv(x)
        size = new.shape[-2:]
        return torch.cat([_resize(x, size), _resize(self.conv_low(low), size), new], dim=1)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class DenseBlock(nn.Module):
    """`step` dense layers, optional transition. Returns the output and every intermediate map (for fusion)."""

    def __init__(self, c_in: int, step: int, growth: int, bn_width: int, transition: bool, reduction: float):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth, bn_width) for i in range(step))
        c_out = c_in + step * growth
        self.transition = conv_bn_relu(c_out, math.floor(reduction * c_out), 1, 1) if transition else None
        self.out_channels = [c_in + i * growth for i in range(step + 1)]
        self.channels = math.floor(reduction * c_out) if transition else c_out

    def forward(self, x: torch.Tensor, low: list[torch.Tensor] | None = None):
        maps = [x]
        for layer in self.layers:
            x = layer(x)
            maps.append(x)
        if self.transition is not None:
            x = self.transition(x)
        return x, maps


class FusedBlock(nn.Module):
    """A block of flow j > 0 that re-runs block i of flow j-1, fusing that block's intermediate maps."""

    def __init__(self, c_in: int, c_low: list[int], step: int, growth: int, bn_width: int, bn_width_low: int,
                 compress: float, transition: bool, down: bool, reduction: float):
        super().__init__()
        self.layers = nn.ModuleList(
            FusedLayer(c_in + i * growth, c_low[i], growth, bn_width, bn_width_low, compress, down and i == step - 1)
            for i in range(step)
        )
        c_out = c_in + step * growth
        self.out_channels = [c_in + i * growth for i in range(step + 1)]
        self.conv_last = conv_bn_relu(c_low[step], math.floor(c_out * compress), 1, 1)
        c_out += math.floor(c_out * compress)
        self.transition = conv_bn_relu(c_out, math.floor(reduction * c_out), 1, 1) if transition else None
        self.channels = math.floor(reduction * c_out) if transition else c_out

    def forward(self, x: torch.Tensor, low: list[torch.Tensor]):
        maps = [x]
        for i, layer in enumerate(self.layers):
            x = layer(x, low[i])
            maps.append(x)
        x = torch.cat([x, _resize(self.conv_last(low[-1]), x.shape[-2:])], dim=1)
        if self.transition is not None:
            x = self.transition(x)
        return x, maps


class RANet(nn.Module):
    """Stepwise RANet. The state carries the stem maps, the running flow and the fusion maps of the last flow."""
    # Its state between blocks nests lists by flow and scale, which the ONNX pieces (engines/onnx_graphs.py) cannot
    # carry: RANet runs on the torch engines, and `boostnet export` refuses it.
    has_onnx_form = False

    def __init__(self, cfg: RANetConfig, grad_rescale: bool = False):
        super().__init__()
        if grad_rescale:
            raise ArgumentError("Gradient rescaling is defined for MSDNet only (as in the paper); use --grad-rescale off with RANet.")
        self.cfg = cfg
        self.grad_rescale = False
        self.stem = RAStem(cfg)
        flows, heads, self.exit_plan = [], [], []
        c_low: list[list[int]] = []
        for j in range(cfg.n_flows):
            n_total = cfg.blocks_before(j + 1)
            n_fused = cfg.blocks_before(j)
            scale = cfg.scale_list[j]
            down_at = set(_downsampling_blocks(cfg, j))
            c = cfg.n_channels * cfg.gr_factor[j]
            growth = cfg.growth_rate * cfg.gr_factor[j]
            blocks, c_this = [], []
            for b in range(1, n_total + 1):
                transition = any(b == math.floor((t + 1) * n_total / scale) for t in range(scale - 1))
                if b > n_fused:
                    block = DenseBlock(c, cfg.step, growth, cfg.bn_factor[j], transition, cfg.reduction)
                else:
                    block = FusedBlock(c, c_low[b - 1], cfg.step, growth, cfg.bn_factor[j], cfg.bn_factor[j - 1],
                                       cfg.compress_factor, transition, b in down_at, cfg.reduction)
                c_this.append(block.out_channels)
                c = block.channels
                blocks.append(block)
                if b > n_fused:
                    heads.append(Head(c, cfg.head_channels, cfg.num_classes))
                    self.exit_plan.append((j, b - 1))
            flows.append(nn.ModuleList(blocks))
            c_low = c_this
        self.flows = nn.ModuleList(flows)
        self.heads = nn.ModuleList(heads)
        self.apply(init_weights)

    @property
    def num_exits(self) -> int:
        return len(self.heads)

    def run_block(self, k: int, state):
        """Advance to exit k: the stem at k = 0, then every block up to the one that exit k reads."""
        if k == 0:
            state = {"stem": self.stem(state), "flow": 0, "next": 0, "x": None, "low": None, "maps": []}
        else:
            state = dict(state, maps=list(state["maps"]))
        flow, last = self.exit_plan[k]
        if flow != state["flow"]:
            state.update(flow=flow, next=0, x=None, low=state["maps"], maps=[])
        if state["x"] is None:
            state["x"] = state["stem"][flow]
        for b in range(state["next"], last + 1):
            block = self.flows[flow][b]
            x, maps = block(state["x"], state["low"][b] if isinstance(block, FusedBlock) else None)
            state["x"] = x
            state["maps"].append(maps)
        state["next"] = last + 1
        return state

    def run_head(self, k: int, state) -> torch.Tensor:
        return self.heads[k](self.head_input(state))

    def continue_state(self, k: int, state):
        return state

    def head_input(self, state) -> torch.Tensor:
        return state["x"]

    def head(self, k: int) -> nn.Module:
        return self.heads[k]


def _downsampling_blocks(cfg: RANetConfig, flow: int) -> list[int]:
    """Fused blocks (1-based) of `flow` whose last layer halves the resolution, to meet the lower flow's size."""
    if flow == 0 or cfg.scale_list[flow] == 1:
        return []
    ends = [cfg.blocks_before(f) for f in range(flow + 1)]
    return ends[-(cfg.scale_list[flow] - 1):]
