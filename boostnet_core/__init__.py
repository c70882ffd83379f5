"""boostnet_core: early-exit networks trained as boosted additive ensembles (BoostNet, AAAI 2023).

Public surface: `load_model(path)`, `create_model(preset)`, `BoostNet`, and the modules `evaluation`,
`inference`, `explain`, `macs`, `data`, `training`, `checkpoint`.
"""
from .boosting import BoostNet
from .checkpoint import CheckpointError, load_model

__all__ = ["BoostNet", "CheckpointError", "load_model", "create_model"]
__version__ = "0.1.0"


def create_model(preset: str, method: str = "boostnet", reweight: float = 0.5, num_classes: int | None = None,
                 in_channels: int | None = None, grad_rescale: bool = False) -> BoostNet:
    """An untrained BoostNet from a named preset (see models/presets.py)."""
    from .models.presets import build_backbone, get_preset, resolve_preset
    arch, config = resolve_preset(preset, num_classes, in_channels)
    data = get_preset(preset)["data"]
    meta = {"preset": preset, "arch": arch, "config": config, "input_size": data["input_size"],
            "mean": data["mean"], "std": data["std"], "augment": data["augment"],
            "classes": [str(i) for i in range(config["num_classes"])]}
    return BoostNet(build_backbone(arch, config, grad_rescale), reweight, method, meta)
