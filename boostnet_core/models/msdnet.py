"""MSDNet: the multi-scale dense network (Huang et al., ICLR 2018) as BoostNet configures it.

Each block grows a set of feature maps at several scales (fine to coarse); a head reads the coarsest scale.
"max" pruning drops the finest scale as depth grows, and a transition (1x1 conv, compression `reduction`)
follows every layer that drops a scale. The layer arithmetic follows the MSDNet paper's reference layout so
that costs per exit match the published ones (docs/method.md, "Cost").

The backbone is stepwise (models/stepwise.py): `run_block(i, state)` computes block i and `run_head(i, state)`
exit i, so that early-exit inference can stop after any block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ArgumentError
from .initialization import init_weights
from .limits import check_layers, check_sizes


@dataclass(frozen=True)
class MSDNetConfig:
    n_blocks: int = 5                     # number of blocks, one exit after each
    step: int = 2                         # layers in every block after the first ("even" step mode)
    base: int = 4                         # layers in the first block
    n_channels: int = 16                  # channels of the finest scale after the stem
    growth_rate: int = 6                  # channels added per layer (times the scale's grFactor)
    gr_factor: tuple[int, ...] = (1, 2, 4)  # channel multiplier per scale; its length is the number of scales
    bn_factor: tuple[int, ...] = (1, 2, 4)  # bottleneck width multiplier per scale
    reduction: float = 0.5                # transition compression
    stem: str = "cifar"                   # "cifar": 3x3 conv; "imagenet": 7x7/2 conv + 3x3/2 max pool
    head_channels: int | None = 128       # head conv width; None keeps the input width (ImageNet head)
    head_pool: str = "avg2"               # "avg2": the paper's 2x2 average pool; "global": any input size (tiny images)
    num_classes: int = 10
    in_channels: int = 3

    def __post_init__(self):
        check_sizes("MSDNet", self)
        check_layers("MSDNet", (self.base + (self.n_blocks - 1) * self.step) * len(self.gr_factor))
        if len(self.gr_factor) != len(self.bn_factor):
            raise ArgumentError(f"gr_factor {self.gr_factor!r} and bn_factor {self.bn_factor!r} must have the same length.")
        if self.stem not in ("cifar", "imagenet"):
            raise ArgumentError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}.")
        if self.head_pool not in ("avg2", "global"):
            raise ArgumentError(f"head_pool must be 'avg2' or 'global', got {self.head_pool!r}.")

    @property
    def n_scales(self) -> int:
        return len(self.gr_factor)


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class BottleneckConv(nn.Sequential):
    """Optional 1x1 bottleneck (at most bn_width * c_out channels), then a 3x3 conv, stride 1 or 2."""

    def __init__(self, c_in: int, c_out: int, stride: int, bn_width: int):
        inner = min(c_in, bn_width * c_out)
        super().__init__(
            nn.Conv2d(c_in, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.Conv2d(inner, c_out, 3, stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        )


class DenseSameScale(nn.Module):
    """Finest kept scale: new features from the same scale, concatenated to it."""

    def __init__(self, c_in: int, c_out: int, bn_width: int):
        super().__init__()
        self.conv = BottleneckConv(c_in, c_out, 1, bn_width)

    def forward(self, same: torch.Tensor, finer: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([same, self.conv(same)], dim=1)


class DenseTwoScales(nn.Module):
    """Coarser scales: half the new features from the finer scale (strided), half from the same scale."""

    def __init__(self, c_in_finer: int, c_in_same: int, c_out: int, bn_finer: int, bn_same: int):
        super().__init__()
        self.down = BottleneckConv(c_in_finer, c_out // 2, 2, bn_finer)
        self.same = BottleneckConv(c_in_same, c_out // 2, 1, bn_same)

    def forward(self, same: torch.Tensor, finer: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([same, self.down(finer), self.same(same)], dim=1)


class MSDLayer(nn.Module):
    """One multi-scale dense layer: in_scales inputs, out_scales outputs (the finest may be dropped)."""

    def __init__(self, c_in: int, growth: int, cfg: MSDNetConfig, in_scales: int, out_scales: int):
        super().__init__()
        gr, bn, n = cfg.gr_factor, cfg.bn_factor, cfg.n_scales
        self.discard = in_scales - out_scales
        offset = n - out_scales
        convs = []
        if self.discard > 0:
            convs.append(DenseTwoScales(c_in * gr[offset - 1], c_in * gr[offset], growth * gr[offset], bn[offset - 1], bn[offset]))
        else:
            convs.append(DenseSameScale(c_in * gr[offset], growth * gr[offset], bn[offset]))
        for s in range(offset + 1, n):
            convs.append(DenseTwoScales(c_in * gr[s - 1], c_in * gr[s], growth * gr[s], bn[s - 1], bn[s]))
        self.convs = nn.ModuleList(convs)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        # With a discarded scale the input list is one longer: output s reads inputs s (finer) and s+1 (same).
        shift = 1 if self.discard > 0 else 0
        out = []
        for s, conv in enumerate(self.convs):
            same = xs[s + shift]
            finer = xs[s + shift - 1] if s + shift > 0 else None
            out.append(conv(same, finer))
        return out


class Transition(nn.Module):
    """1x1 conv per kept scale, compressing channels after a scale was dropped."""

    def __init__(self, c_in: int, c_out: int, out_scales: int, offset: int, gr_factor: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList(
            conv_bn_relu(c_in * gr_factor[offset + s], c_out * gr_factor[offset + s], 1, 1) for s in range(out_scales)
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(x) for conv, x in zip(self.convs, xs)]


class Stem(nn.Module):
    """First layer: one feature map per scale, each coarser one from the previous by a stride-2 conv."""

    def __init__(self, cfg: MSDNetConfig):
        super().__init__()
        layers = [first_layer(cfg.stem, cfg.in_channels, cfg.n_channels * cfg.gr_factor[0])]
        for s in range(1, cfg.n_scales):
            layers.append(conv_bn_relu(cfg.n_channels * cfg.gr_factor[s - 1], cfg.n_channels * cfg.gr_factor[s], 3, 2))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return chain_outputs(self.layers, x)


def first_layer(stem: str, c_in: int, c_out: int) -> nn.Sequential:
    """The network's first layer: a 3x3 conv ("cifar"), or a 7x7/2 conv and a 3x3/2 max pool ("imagenet")."""
    if stem == "cifar":
        return conv_bn_relu(c_in, c_out, 3, 1)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 7, 2, 3), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))


def chain_outputs(layers: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """Run layers one after another, keeping every layer's output (one feature map per scale)."""
    out = []
    for layer in layers:
        x = layer(x)
        out.append(x)
    return out


class Head(nn.Module):
    """Exit classifier on the coarsest scale: two stride-2 3x3 convs, 2x2 average pool, linear."""

    def __init__(self, c_in: int, width: int | None, num_classes: int, pool: str = "avg2"):
        super().__init__()
        width = width or c_in
        pool_layer = nn.AvgPool2d(2) if pool == "avg2" else nn.AdaptiveAvgPool2d(1)
        self.features = nn.Sequential(conv_bn_relu(c_in, width, 3, 2), conv_bn_relu(width, width, 3, 2), pool_layer)
        self.linear = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x).flatten(1))


class _GradientRescale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def gradient_rescale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient by `scale` on the way back (IMTA gradient equilibrium)."""
    return _GradientRescale.apply(x, scale)


class MSDNet(nn.Module):
    """Stepwise MSDNet. State between blocks is the list of per-scale feature maps."""
    has_onnx_form = True   # that list is what the ONNX pieces pass on (engines/onnx_graphs.py)

    def __init__(self, cfg: MSDNetConfig, grad_rescale: bool = False):
        super().__init__()
        self.cfg = cfg
        self.grad_rescale = grad_rescale
        steps = [cfg.base] + [cfg.step] * (cfg.n_blocks - 1)
        n_layers_all = sum(steps)
        interval = math.ceil(n_layers_all / cfg.n_scales)
        c, layer_index = cfg.n_channels, 0
        blocks, heads = [], []
        for b, n_layers in enumerate(steps):
            modules: list[nn.Module] = [Stem(cfg)] if b == 0 else []
            for _ in range(n_layers):
                layer_index += 1
                # "max" pruning: the finest scale goes once every `interval` layers.
                in_scales = cfg.n_scales - math.floor(max(0, layer_index - 2) / interval)
                out_scales = cfg.n_scales - math.floor((layer_index - 1) / interval)
                modules.append(MSDLayer(c, cfg.growth_rate, cfg, in_scales, out_scales))
                c += cfg.growth_rate
                if in_scales > out_scales and cfg.reduction > 0:
                    c_new = math.floor(cfg.reduction * c)
                    modules.append(Transition(c, c_new, out_scales, cfg.n_scales - out_scales, cfg.gr_factor))
                    c = c_new
            blocks.append(nn.Sequential(*modules))
            heads.append(Head(c * cfg.gr_factor[-1], cfg.head_channels, cfg.num_classes, cfg.head_pool))
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)
        self.apply(init_weights)

    @property
    def num_exits(self) -> int:
        return self.cfg.n_blocks

    def run_block(self, i: int, state):
        """Block i on the previous state (the input image for i = 0)."""
        state = self.blocks[i](state)
        if self.grad_rescale and self.training:
            # After block i the coarsest map feeds head i and the rest of the network; scaling the head path
            # by 1/(N-i) and the onward path by (N-i-1) makes block i's gradient the mean of its heads' terms.
            n = self.num_exits
            state = list(state)
            state[-1] = gradient_rescale(state[-1], 1.0 / (n - i))
        return state

    def run_head(self, i: int, state) -> torch.Tensor:
        return self.heads[i](self.head_input(state))

    def continue_state(self, i: int, state):
        """The state passed on to block i+1 (applies the onward gradient scale when rescaling)."""
        if self.grad_rescale and self.training:
            state = list(state)
            state[-1] = gradient_rescale(state[-1], float(self.num_exits - i - 1))
        return state

    def head_input(self, state) -> torch.Tensor:
        """The coarsest-scale map, which every head reads."""
        return state[-1]

    def head(self, i: int) -> nn.Module:
        return self.heads[i]
