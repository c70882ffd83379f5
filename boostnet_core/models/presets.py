"""Named model presets: the paper's configurations (arXiv 2211.16726, section 4; docs/method.md) and small CPU
presets for the demo data.

Every preset holds the backbone's architecture arguments and the data it expects (a `DataSpec`: classes, input
size, channels, mean/std, augmentation), so that nothing downstream guesses them. factory.create_model builds one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from torch import nn

from ..errors import ArgumentError

from .msdnet import MSDNet, MSDNetConfig
from .ranet import RANet, RANetConfig

ARCHITECTURES = {"msdnet": (MSDNet, MSDNetConfig), "ranet": (RANet, RANetConfig)}

CIFAR10_STATS = ((0.4914, 0.4824, 0.4467), (0.2471, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
MNIST_STATS = ((0.1307,), (0.3081,))
DIGITS_STATS = ((0.3067,), (0.3799,))


@dataclass(frozen=True)
class DataSpec:
    """The data a preset's model expects; copied into every checkpoint's model.json."""
    dataset: str                  # the data set it was designed for
    num_classes: int
    in_channels: int
    input_size: int               # square inputs, pixels
    mean: tuple[float, ...]       # per-channel normalisation
    std: tuple[float, ...]
    augment: str                  # training augmentation policy: cifar | imagenet | digits


def _data(dataset: str, classes: int, size: int, stats, augment: str) -> DataSpec:
    mean, std = stats
    return DataSpec(dataset, classes, len(mean), size, tuple(mean), tuple(std), augment)


_IMAGENET_MSDNET = dict(n_channels=32, growth_rate=16, gr_factor=(1, 2, 4, 4), bn_factor=(1, 2, 4, 4),
                        stem="imagenet", head_channels=None)

PRESETS: dict[str, dict] = {
    # The paper's CIFAR-100 anytime model: 10 exits, 15.14 ... 121.68 M MACs.
    "cifar100-msdnet-anytime": {
        "arch": "msdnet", "config": dict(n_blocks=10, step=2, base=4, n_channels=16, growth_rate=6),
        "data": _data("cifar100", 100, 32, CIFAR100_STATS, "cifar")},
    # The paper's CIFAR-100 budgeted-batch model: the same with 6 exits.
    "cifar100-msdnet-budgeted": {
        "arch": "msdnet", "config": dict(n_blocks=6, step=2, base=4, n_channels=16, growth_rate=6),
        "data": _data("cifar100", 100, 32, CIFAR100_STATS, "cifar")},
    # ImageNet anytime model (step 7, 5 exits, 0.616 ... 3.254 G MACs).
    "imagenet-msdnet-step7": {
        "arch": "msdnet", "config": dict(n_blocks=5, step=7, base=7, **_IMAGENET_MSDNET),
        "data": _data("imagenet", 1000, 224, IMAGENET_STATS, "imagenet")},
    # ImageNet budgeted model (step 5).
    "imagenet-msdnet-step5": {
        "arch": "msdnet", "config": dict(n_blocks=5, step=5, base=5, **_IMAGENET_MSDNET),
        "data": _data("imagenet", 1000, 224, IMAGENET_STATS, "imagenet")},
    # RANet on CIFAR-100: 8 exits, 15.8 ... 95.0 M MACs.
    "cifar100-ranet": {
        "arch": "ranet", "config": dict(n_blocks=2, block_step=2, step=4, n_channels=16, growth_rate=6,
                                        scale_list=(1, 2, 3, 3), gr_factor=(4, 2, 1, 1), bn_factor=(4, 2, 1, 1)),
        "data": _data("cifar100", 100, 32, CIFAR100_STATS, "cifar")},
    "imagenet-ranet": {
        "arch": "ranet", "config": dict(n_blocks=2, block_step=2, step=8, n_channels=64, growth_rate=16,
                                        scale_list=(1, 2, 3, 4), gr_factor=(4, 2, 2, 1), bn_factor=(4, 2, 2, 1),
                                        stem="imagenet", head_channels=None),
        "data": _data("imagenet", 1000, 224, IMAGENET_STATS, "imagenet")},
    # Small CPU presets. cifar10: the project's reference recipe (issue 4), about 24 M MACs at the last exit.
    "cifar10": {
        "arch": "msdnet", "config": dict(n_blocks=5, step=2, base=4, n_channels=8, growth_rate=4),
        "data": _data("cifar10", 10, 32, CIFAR10_STATS, "cifar")},
    "mnist5k": {
        "arch": "msdnet", "config": dict(n_blocks=5, step=1, base=2, n_channels=8, growth_rate=4, head_channels=32),
        "data": _data("mnist5k", 10, 28, MNIST_STATS, "digits")},
    # Seconds-long trainings for tests: 8x8 digits, two scales, global pooling in the heads.
    "digits": {
        "arch": "msdnet", "config": dict(n_blocks=4, step=1, base=2, n_channels=12, growth_rate=6,
                                         gr_factor=(1, 2), bn_factor=(1, 2), head_channels=32, head_pool="global"),
        "data": _data("digits", 10, 8, DIGITS_STATS, "digits")},
}

# The preset a data set trains with when none is named.
DEFAULT_PRESET = {"digits": "digits", "mnist5k": "mnist5k", "cifar10": "cifar10",
                  "cifar100": "cifar100-msdnet-anytime", "folder": "cifar10"}


def get_preset(name: str) -> dict:
    if name not in PRESETS:
        raise ArgumentError(f"Unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}.")
    return PRESETS[name]


def architecture_config(arch: str, config: dict):
    """A frozen config from a plain dict (as stored in model.json), with clear errors for unknown fields."""
    if arch not in ARCHITECTURES:
        raise ArgumentError(f"Unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}.")
    cls = ARCHITECTURES[arch][1]
    known = {f.name for f in fields(cls)}
    unknown = set(config) - known
    if unknown:
        raise ArgumentError(f"Unknown {arch} setting(s) {sorted(unknown)}; known ones: {sorted(known)}.")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return cls(**values)


def resolve_preset(name: str, num_classes: int | None = None, in_channels: int | None = None) -> tuple[str, dict]:
    """(arch, full config dict) of a preset, with the data set's class and channel counts where given."""
    preset = get_preset(name)
    config = dict(preset["config"])
    config["num_classes"] = num_classes or preset["data"].num_classes
    config["in_channels"] = in_channels or preset["data"].in_channels
    full = asdict(architecture_config(preset["arch"], config))
    return preset["arch"], {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}


def build_backbone(arch: str, config: dict, grad_rescale: bool = False) -> nn.Module:
    return ARCHITECTURES[arch][0](architecture_config(arch, config), grad_rescale=grad_rescale)
