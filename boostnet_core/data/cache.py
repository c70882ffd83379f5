"""The disk caches of decoded data, kept between processes in $BOOSTNET_CACHE (default ~/.cache/boostnet).

Three kinds, each keyed so that a stale entry is never read: a built-in data set's decoded arrays (by the version
of the library that ships it), stratified split indices (by the labels, size, seed and scikit-learn's version), and
a folder data set decoded at one size (by its files as seen from their split folder, and their sizes). Entries are
written atomically; a read-only cache folder only costs the work again next time.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_write


def cache_dir() -> Path:
    """Where decoded data sets and engine graphs are kept between runs ($BOOSTNET_CACHE, default ~/.cache/boostnet;
    without a home folder, as for a container's anonymous user, the system's temporary folder)."""
    if os.environ.get("BOOSTNET_CACHE"):
        return Path(os.environ["BOOSTNET_CACHE"])
    try:
        return Path.home() / ".cache" / "boostnet"
    except RuntimeError:
        import tempfile
        return Path(tempfile.gettempdir()) / "boostnet-cache"


def _keep(path: Path, write) -> None:
    """Write a cache entry atomically; a read-only cache is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except OSError:
        pass


def cached_arrays(name: str, library: str, build: Callable[[], tuple]) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N x C x H x W, labels int64) of a built-in data set: from the cache, else build() and keep."""
    from importlib.metadata import version
    path = cache_dir() / f"{name}-{library}-{version(library)}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            return saved["images"], saved["labels"]
    except (OSError, ValueError, KeyError):
        images, labels = build()
        labels = np.asarray(labels, dtype=np.int64)
        _keep(path, lambda f: np.savez(f, images=images, labels=labels))
        return images, labels


def cached_split(labels: np.ndarray, test_size: float | int, seed: int,
                 split: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of a stratified split of `labels`: from the cache, else split() and keep."""
    from importlib.metadata import version
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    key = hashlib.sha256(labels.tobytes() + repr((test_size, seed)).encode()).hexdigest()[:20]
    path = cache_dir() / "splits" / f"{key}-scikit-learn-{version('scikit-learn')}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            return saved["train"], saved["test"]
    except (OSError, ValueError, KeyError):
        idx_train, idx_test = split()
        _keep(path, lambda f: np.savez(f, train=idx_train, test=idx_test))
        return idx_train, idx_test


def cached_decode(paths: list[str], size: int, in_channels: int,
                  decode: Callable[[], np.ndarray]) -> np.ndarray:
    """uint8 [N, C, size, size] of image files: from the cache, else decode() and keep."""
    # Keyed by the files as seen from their split folder (class/name) and their sizes, not by absolute paths or
    # times: another copy or checkout of the same images finds the same cache.
    base = Path(paths[0]).parent.parent if paths else Path(".")
    key = hashlib.sha256("\n".join([str(size), str(in_channels)]).encode())
    for p in paths:
        key.update(f"{os.path.relpath(p, base)}:{os.stat(p).st_size}\n".encode())
    path = cache_dir() / f"folder-{key.hexdigest()[:24]}.npy"
    if path.is_file():
        try:
            images = np.load(path, allow_pickle=False)
            if images.shape == (len(paths), in_channels, size, size):
                return images
        except (OSError, ValueError):
            pass
    images = decode()
    _keep(path, lambda f: np.save(f, images))
    return images
