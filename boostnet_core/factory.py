"""The one factory: every BoostNet, new from a preset, for training, or rebuilt from a checkpoint, is built here.

`create_model(preset, ...)` resolves a named preset (models/presets.py); `model_from_meta(meta)` rebuilds what a
checkpoint's model.json describes. Both end in `build_model`, which is also the only place that writes a model's
metadata, so a model always carries what rebuilds it (architecture, classes, input size, mean/std, method, w).
"""
from __future__ import annotations

from .boosting import BoostNet
from .models.presets import build_backbone, get_preset, resolve_preset


def build_model(arch: str, config: dict, method: str = "boostnet", reweight: float = 0.5, grad_rescale: bool = False,
                meta: dict | None = None) -> BoostNet:
    """A BoostNet over the backbone `arch` with `config` (a plain dict, as model.json stores it)."""
    backbone = build_backbone(arch, config, grad_rescale=grad_rescale)
    meta = dict(meta or {}, arch=arch, config=config)
    meta.setdefault("classes", [str(i) for i in range(config["num_classes"])])
    return BoostNet(backbone, reweight, method, meta)


def create_model(preset: str, method: str = "boostnet", reweight: float = 0.5, num_classes: int | None = None,
                 in_channels: int | None = None, grad_rescale: bool = False,
                 classes: list[str] | None = None, data: dict | None = None) -> BoostNet:
    """An untrained BoostNet from a named preset; `classes` names the classes (and sets their number), `data`
    records the data set and split it is trained on (data.DataBundle.info)."""
    if classes is not None:
        num_classes = len(classes)
    arch, config = resolve_preset(preset, num_classes, in_channels)
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
    """An untrained BoostNet with the architecture, method and metadata that a checkpoint's model.json records."""
    return build_model(meta["arch"], meta["config"], meta["method"], meta["reweight"],
                       bool(meta.get("grad_rescale", False)), meta)
