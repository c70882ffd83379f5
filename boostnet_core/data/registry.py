"""The data sets by name: what loads each one, whether it needs a data root, and its default validation size.
`load_dataset(name, ...)` is the one way in; an unknown name gets a sentence listing the valid ones."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DataError
from .builtin import load_digits, load_mnist5k
from .cifar import load_cifar
from .folder import load_folder, load_folder_test
from .sets import DataBundle, FileSet, ImageSet
from .splits import split_validation


@dataclass(frozen=True)
class DataSource:
    """How to load one data set: load(root or None, input_size, in_channels) -> (train, test, class names)."""
    load: Callable
    root_hint: str | None = None          # what to do when its --data-root is missing; None: it needs no root
    val_size: int | None = None           # default validation images (None: 10% of small sets, 50000 of huge ones)
    load_test: Callable | None = None     # the test split alone, without reading the training images

    @property
    def needs_root(self) -> bool:
        return self.root_hint is not None


_DOWNLOAD = "run 'boostnet data download --dataset NAME --data-root DIR' first"
SOURCES: dict[str, DataSource] = {
    "digits": DataSource(lambda root, size, channels: load_digits()),
    "mnist5k": DataSource(lambda root, size, channels: load_mnist5k()),
    "cifar10": DataSource(lambda root, size, channels: load_cifar("cifar10", root), _DOWNLOAD, 5000),
    "cifar100": DataSource(lambda root, size, channels: load_cifar("cifar100", root), _DOWNLOAD, 5000),
    "folder": DataSource(load_folder, "point it at root/<split>/<class>/<image>",
                         load_test=load_folder_test),
}
DATASETS = tuple(SOURCES)


def source(name: str) -> DataSource:
    if name not in SOURCES:
        raise DataError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.")
    return SOURCES[name]


def load_dataset(name: str, data_root: str | None = None, input_size: int = 32, in_channels: int = 3,
                 val_size: float | int | None = None, split_seed: int = 0) -> DataBundle:
    """Train / validation / test splits of a data set. `val_size`: a count, a fraction < 1, or 0 for none."""
    src = source(name)
    train, test, classes = src.load(_root(name, src, data_root), input_size, in_channels)
    if val_size is None:
        val_size = src.val_size or (50000 if len(train) > 500_000 else 0.1)
    train, val, val_count = split_validation(train, val_size, split_seed)
    info = {"dataset": name, "val_size": val_count, "split_seed": split_seed,
            "train_size": len(train), "test_size": len(test)}
    if data_root is not None and src.needs_root:
        info["data_root"] = str(Path(data_root).resolve())   # absolute: a later command may run from elsewhere
    return DataBundle(train, val, test, classes, info)


def load_test_split(name: str, data_root: str | None = None, input_size: int = 32,
                    in_channels: int = 3) -> ImageSet | FileSet:
    """The test split alone, in the order evaluations use (for folder data, the training images are not read)."""
    src = source(name)
    if src.load_test is None:
        return load_dataset(name, data_root, input_size, in_channels, val_size=0).test
    return src.load_test(_root(name, src, data_root), input_size, in_channels)


def _root(name: str, src: DataSource, data_root: str | None) -> Path | None:
    if not src.needs_root:
        return None
    if not data_root:
        raise DataError(f"The {name} dataset needs --data-root; {src.root_hint}.")
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"Data root {str(root)!r} does not exist or is not a folder.")
    return root
