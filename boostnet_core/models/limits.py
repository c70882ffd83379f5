"""Bounds on what an architecture config may ask for: generous above every preset (the paper's ImageNet models
included), small enough that a hostile or broken model.json is refused at once, as one sentence, instead of
building a network for minutes or asking for petabytes. The configs check them when they are made."""
from __future__ import annotations

from dataclasses import fields

from ..errors import ArgumentError

SIZES = {"n_blocks": (1, 32), "step": (1, 32), "base": (1, 32), "block_step": (1, 32), "n_channels": (1, 1024),
         "growth_rate": (1, 512), "head_channels": (1, 4096), "num_classes": (2, 25_000), "in_channels": (1, 4)}
FACTORS = {"gr_factor": (1, 16), "bn_factor": (1, 16), "scale_list": (1, 6)}   # per scale (flow); at most 6 of them
MAX_SCALES = 6
FRACTIONS = ("reduction", "compress_factor")                                    # in (0, 1]
# Dense layers over the whole network, an MSDNet layer counted once per scale it spans (imagenet-ranet has 160,
# imagenet-msdnet-step7 140, cifar100-msdnet-anytime 66): it bounds the time to build one.
MAX_LAYERS = 256


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_sizes(arch: str, cfg) -> None:
    """Every size of `cfg` (a frozen config dataclass) a whole number within its bounds, or an ArgumentError."""
    for f in fields(cfg):
        name, value = f.name, getattr(cfg, f.name)
        if name in SIZES:
            if name == "head_channels" and value is None:
                continue
            low, high = SIZES[name]
            if not _is_int(value) or not low <= value <= high:
                raise ArgumentError(f"{arch} {name} must be a whole number from {low} to {high}, got {value!r}.")
        elif name in FACTORS:
            low, high = FACTORS[name]
            if (not isinstance(value, tuple) or not 1 <= len(value) <= MAX_SCALES
                    or not all(_is_int(v) and low <= v <= high for v in value)):
                raise ArgumentError(f"{arch} {name} must list 1 to {MAX_SCALES} whole numbers from {low} to {high}, "
                                    f"got {value!r}.")
        elif name in FRACTIONS:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
                raise ArgumentError(f"{arch} {name} must be a number in (0, 1], got {value!r}.")


def check_layers(arch: str, layers: int) -> None:
    if layers > MAX_LAYERS:
        raise ArgumentError(f"{arch} with {layers} layers (counted per scale) is over the limit of {MAX_LAYERS}; "
                            "the config was edited or is not a BoostNet model.")
