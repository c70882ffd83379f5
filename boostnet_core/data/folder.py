"""Folder data sets: root/<split>/<class>/<image> (the ImageNet layout), splits `train` and `test` (or `val`).
Small inputs decode once (kept in the cache); large ones stay file paths, streamed from disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cache import cached_decode
from .images import IMAGE_EXTENSIONS, decode_to_array, open_image
from .sets import IN_MEMORY_MAX_SIZE, FileSet, ImageSet


def _test_folder(root: Path) -> str | None:
    """The folder that holds the test split: test/, else val/ (None without either)."""
    return next((s for s in ("test", "val") if (root / s).is_dir()), None)


def folder_split(root: Path, split: str) -> tuple[list[str], list[int], list[str]]:
    """(image paths, labels, class names) of root/split/<class>/<image>, classes in sorted order."""
    base = root / split
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{str(base)!r} has no class folders; expected {root}/{split}/<class>/<image>.")
    if len(classes) < 2:   # checked before any image is decoded: a classifier needs two classes to tell apart
        raise DataError(f"{str(base)!r} holds one class folder ({classes[0]!r}); a classifier needs at least two, "
                        f"one folder per class under {base}.")
    paths, labels = [], []
    for label, c in enumerate(classes):
        files = sorted(p for p in (base / c).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    if not paths:
        raise DataError(f"{str(base)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    return paths, labels, classes


def images_of(paths: list[str], labels: list[int], size: int, in_channels: int) -> ImageSet | FileSet:
    """Decoded (from the cache when it has them) for small inputs; file paths for large ones."""
    if size > IN_MEMORY_MAX_SIZE:
        return FileSet(paths, torch.tensor(labels))

    def decode():
        images = np.empty((len(paths), in_channels, size, size), dtype=np.uint8)
        for i, p in enumerate(paths):
            images[i] = decode_to_array(open_image(p), size, in_channels)
        return images
    return ImageSet(torch.from_numpy(cached_decode(paths, size, in_channels, decode)), torch.tensor(labels))


def load_folder(root: Path, input_size: int, in_channels: int):
    """(train, test, classes) of a folder data set."""
    test_split = _test_folder(root)
    if not (root / "train").is_dir() or test_split is None:
        raise DataError(f"{str(root)!r} must hold train/ and test/ (or val/) folders, each with one folder per class.")
    train_paths, train_labels, classes = folder_split(root, "train")
    test_paths, test_labels, test_classes = folder_split(root, test_split)
    if test_classes != classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        differ = "; ".join(part for part in (
            f"only in train/: {', '.join(only_train)}" if only_train else "",
            f"only in {test_split}/: {', '.join(only_test)}" if only_test else "") if part)
        raise DataError(f"The class folders of {root}/train and {root}/{test_split} differ ({differ}); they must be "
                        "the same.")
    return (images_of(train_paths, train_labels, input_size, in_channels),
            images_of(test_paths, test_labels, input_size, in_channels), classes)


def load_folder_test(root: Path, input_size: int, in_channels: int) -> ImageSet | FileSet:
    """The test split alone; the training images are not read."""
    split = _test_folder(root)
    if split is None:
        raise DataError(f"{str(root)!r} must hold a test/ (or val/) folder with one folder per class.")
    paths, labels, _ = folder_split(root, split)
    return images_of(paths, labels, input_size, in_channels)
