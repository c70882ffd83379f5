"""The weight initialisation both backbones use (MSDNet's, which RANet's authors kept)."""
from __future__ import annotations

import math

from torch import nn


def init_weights(m: nn.Module) -> None:
    """He normal over fan-out for convolutions, unit batch norm, zero linear bias (apply with `module.apply`).

    A network laid out on the meta device (checkpoint.load_model: its weights are read next) has nothing to
    initialise; skipping it spares a second per model load in the app."""
    weight = getattr(m, "weight", None)
    if weight is not None and weight.is_meta:
        return
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.zeros_(m.bias)
