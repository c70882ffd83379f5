"""Cost per exit in multiply-adds (MACs), by the convention of the MSDNet / BoostNet papers (docs/method.md).

Convention, written here where it is computed:
- conv: out_h * out_w * c_in * c_out * k_h * k_w / groups multiply-adds (bias not counted);
- linear: weight elements + bias elements;
- ReLU: one op per input element; average and max pooling: out elements * kernel area (global pooling: input
  elements); batch norm: free;
- one forward pass at batch 1; the cost of exit k is cumulative: the backbone up to block k plus heads 1..k
  (a boosted exit needs every earlier head anyway).
The papers call these FLOPs; this project labels them MACs everywhere.
`elementwise=False` keeps conv and linear weights only, the quantity torch's FlopCounterMode counts (x2).
"""
from __future__ import annotations

import torch
from torch import nn

from .models.stepwise import StepwiseBackbone, eval_mode, iter_exits


class MacCounter:
    """Counts MACs of the leaf modules of one network while attached; the count lives on the instance."""

    def __init__(self, elementwise: bool = True):
        self.elementwise = elementwise
        self.count = 0
        self._handles: list = []

    def attach(self, module: nn.Module) -> "MacCounter":
        for m in module.modules():
            if not any(True for _ in m.children()):
                self._handles.append(m.register_forward_hook(self._hook))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, module: nn.Module, inputs, output) -> None:
        x = inputs[0]
        per_sample = 1.0 / x.shape[0]
        if isinstance(module, nn.Conv2d):
            out_elems = output.shape[2] * output.shape[3]
            k = module.kernel_size[0] * module.kernel_size[1]
            self.count += out_elems * module.in_channels * module.out_channels * k / module.groups
        elif isinstance(module, nn.Linear):
            self.count += module.weight.numel() + (module.bias.numel() if module.bias is not None and self.elementwise else 0)
        elif not self.elementwise:
            return
        elif isinstance(module, nn.ReLU):
            self.count += x.numel() * per_sample
        elif isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
            ks = module.kernel_size
            k = ks * ks if isinstance(ks, int) else ks[0] * ks[1]
            self.count += output.numel() * per_sample * k
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            self.count += x.numel() * per_sample


@torch.no_grad()
def exit_macs(backbone: StepwiseBackbone, input_shape: tuple[int, int, int], elementwise: bool = True) -> list[float]:
    """Cumulative MACs at every exit of a stepwise backbone, for one input of shape (C, H, W)."""
    device = next(backbone.parameters()).device
    counter = MacCounter(elementwise).attach(backbone)
    try:
        with eval_mode(backbone):
            x = torch.zeros(1, *input_shape, device=device)
            return [float(counter.count) for _ in iter_exits(backbone, x)]
    finally:
        counter.detach()
