"""Splits: the built-in sets' fixed test split, and the seeded, stratified validation split held out of a training
set (read without augmentation: budgeted mode fits its thresholds there; the authors' code augmented it;
docs/method.md). Both are scikit-learn's stratified shuffle split, its indices kept in the cache."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .cache import cached_split
from .sets import ImageSet


def stratified_split(labels: np.ndarray, test_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's stratified shuffle split of range(len(labels)): (train indices, test indices).

    The indices are kept in the cache folder, so a later process reads them instead of importing scikit-learn (a
    second and a half per process).
    """
    def split():
        from sklearn.model_selection import train_test_split
        return train_test_split(np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=seed)
    return cached_split(labels, test_size, seed, split)


def fixed_test_split(images: np.ndarray, labels: np.ndarray) -> tuple[ImageSet, ImageSet]:
    """(train, test) of a built-in data set without an official test split: a fixed stratified 80/20 (seed 0)."""
    idx_train, idx_test = stratified_split(labels, 0.2, seed=0)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    return ImageSet(x[idx_train], y[idx_train]), ImageSet(x[idx_test], y[idx_test])


def split_validation(train, val_size: float | int, seed: int):
    """Hold a seeded, stratified validation split out of `train`. Returns (train, val or None, val count)."""
    n = len(train)
    count = int(round(val_size * n)) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if count <= 0:
        return train, None, 0
    if count >= n:
        raise DataError(f"--val-size {val_size} leaves no training images (the training split has {n}).")
    idx_train, idx_val = stratified_split(train.labels.numpy(), count, seed)
    return train.subset(np.sort(idx_train)), train.subset(np.sort(idx_val)), count
