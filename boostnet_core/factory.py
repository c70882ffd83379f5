"""The one factory: every BoostNet, new from a preset, for training, or rebuilt from a checkpoint, is built here.

`create_model(preset, ...)` resolves a named preset (models/presets.py); `model_from_meta(meta)` rebuilds what a
checkpoint's model.json describes. Both end in `build_model`, which is also the only place that writes a model's
metadata, so a model always carries what rebuilds it (architecture, classes, input size, mean/std, method, w).
"""
from __future__ import annotations

import math

from .boosting import BoostNet
from .errors import ArgumentError
from .models.limits import SIZES
from .models.presets import architecture_config, build_backbone, get_preset, resolve_preset

INPUT_SIZES = (8, 1024)   # pixels, square inputs: digits' 8 to well above ImageNet's 224


def build_model(arch: str, config: dict, method: str = "boostnet", reweight: float = 0.5, grad_rescale: bool = False,
                meta: dict | None = None) -> BoostNet:
    """A BoostNet over the backbone `arch` with `config` (a plain dict, as model.json stores it)."""
    backbone = build_backbone(arch, config, grad_rescale=grad_rescale)
    meta = dict(meta or {}, arch=arch, config=config)
    meta.setdefault("classes", [str(i) for i in range(config["num_classes"])])
    return BoostNet(backbone, reweight, method, meta)


def default_grad_rescale(method: str, arch: str) -> bool:
    """The paper's recipe, also `boostnet train --grad-rescale auto`: MSDNet's gradient rescaling on for BoostNet,
    off for the joint baseline (and for RANet, which has no such rescaling)."""
    return method == "boostnet" and arch == "msdnet"


def create_model(preset: str, method: str = "boostnet", reweight: float = 0.5, num_classes: int | None = None,
                 in_channels: int | None = None, grad_rescale: bool | None = None,
                 classes: list[str] | None = None, data: dict | None = None) -> BoostNet:
    """An untrained BoostNet from a named preset; `classes` names the classes (and sets their number), `data`
    records the data set and split it is trained on (data.DataBundle.info). grad_rescale: None gives the CLI's
    recipe (`default_grad_rescale`: on for BoostNet on MSDNet, off for joint); True or False forces it."""
    if classes is not None:
        num_classes = len(classes)
    arch, config = resolve_preset(preset, num_classes, in_channels)
    if grad_rescale is None:
        grad_rescale = default_grad_rescale(method, arch)
    spec = get_preset(preset)["data"]
    meta = {"preset": preset, "input_size": spec.input_size, "mean": list(spec.mean), "std": list(spec.std),
            "augment": spec.augment}
    if classes is not None:
        meta["classes"] = [str(c) for c in classes]
    if data is not None:
        meta["data"] = dict(data)
    return build_model(arch, config, method, reweight, grad_rescale, meta)


def input_channels(meta: dict) -> int:
    """The number of image channels a model takes (1 grey, 3 colour): one per mean of its input normalisation."""
    return len(meta["mean"])


def model_from_meta(meta: dict) -> BoostNet:
    """An untrained BoostNet with the architecture, method and metadata that a checkpoint's model.json records,
    after checking that every size it records is within bounds and agrees with the others (ArgumentError)."""
    check_meta(meta)
    if not isinstance(meta["config"], dict):
        raise ArgumentError(f"config must be an object of architecture settings, got {type(meta['config']).__name__}.")
    cfg = architecture_config(meta["arch"], meta["config"])  # every size checked (models/limits.py), nothing built
    if input_channels(meta) != cfg.in_channels:
        raise ArgumentError(f"mean and std have {input_channels(meta)} values but the network takes {cfg.in_channels} channels.")
    classes = meta.get("classes")
    if classes is not None and (len(classes) != cfg.num_classes or not all(isinstance(c, str) for c in classes)):
        raise ArgumentError(f"classes must name the network's {cfg.num_classes} classes, got {len(classes)} entries.")
    model = build_model(meta["arch"], meta["config"], meta["method"], meta["reweight"],
                        bool(meta.get("grad_rescale", False)), meta)
    macs = meta.get("macs")
    if macs is not None and (not isinstance(macs, list) or len(macs) != model.num_exits
                             or not all(_is_number(m) and m >= 0 for m in macs)):
        raise ArgumentError(f"macs must list one cost per exit ({model.num_exits}).")
    return model


def check_meta(meta: dict) -> None:
    """The data conventions of a model.json within bounds: input size, and one finite mean and positive std per
    channel (the architecture's sizes are checked by its config, models/limits.py)."""
    size = meta.get("input_size")
    if not (isinstance(size, int) and not isinstance(size, bool) and INPUT_SIZES[0] <= size <= INPUT_SIZES[1]):
        raise ArgumentError(f"input_size must be a whole number of pixels from {INPUT_SIZES[0]} to {INPUT_SIZES[1]}, "
                            f"got {size!r}.")
    mean, std = meta.get("mean"), meta.get("std")
    low, high = SIZES["in_channels"]
    if (not isinstance(mean, list) or not isinstance(std, list) or len(mean) != len(std)
            or not low <= len(mean) <= high or not all(_is_number(v) for v in mean + std) or min(std) <= 0):
        raise ArgumentError(f"mean and std must list {low} to {high} finite numbers each, one per channel, std "
                            "positive.")
    classes = meta.get("classes")
    if classes is not None and not isinstance(classes, list):
        raise ArgumentError("classes must be a list of class names.")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
