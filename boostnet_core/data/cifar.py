"""CIFAR-10 and CIFAR-100: the canonical python release under a data root, and its download.

The release's pickles are read by a restricted unpickler that can only build arrays, lists, dicts and strings.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .sets import ImageSet

CIFAR_RELEASES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", "batches.meta", b"label_names"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only numpy arrays and plain containers: the CIFAR pickles need nothing else."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"{str(path)!r} is not a readable CIFAR batch ({e}); run 'boostnet data download' again.") from None


def _cifar_dir(name: str, root: Path) -> Path:
    sub = CIFAR_RELEASES[name][2]
    for candidate in (root / sub, root):
        if all((candidate / f).is_file() for f in CIFAR_RELEASES[name][3] + CIFAR_RELEASES[name][4]):
            return candidate
    raise DataError(f"{str(root)!r} does not hold the {name} python release (expected {sub}/ with its batch files); "
                    f"run 'boostnet data download --dataset {name} --data-root {root}'.")


def load_cifar(name: str, root: Path):
    """(train, test, classes) of CIFAR-10 or CIFAR-100 from its python release under `root`."""
    _, _, _, train_files, test_files, label_key, meta_file, names_key = CIFAR_RELEASES[name]
    folder = _cifar_dir(name, root)

    def read(files):
        xs, ys = [], []
        for f in files:
            d = _read_cifar_pickle(folder / f)
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[label_key], dtype=np.int64))
        return ImageSet(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))

    meta = _read_cifar_pickle(folder / meta_file) if (folder / meta_file).is_file() else {}
    classes = [c.decode() for c in meta.get(names_key, [])] or [str(i) for i in range(10 if name == "cifar10" else 100)]
    return read(train_files), read(test_files), classes


def download_cifar(name: str, data_root: str | os.PathLike) -> Path:
    """Fetch and verify the canonical python release of CIFAR-10/100 into data_root; return its folder."""
    if name not in CIFAR_RELEASES:
        raise DataError(f"Only cifar10 and cifar100 can be downloaded, not {name!r}.")
    url, md5, sub = CIFAR_RELEASES[name][:3]
    root = Path(data_root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _cifar_dir(name, root)
    except DataError:
        pass
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            payload = response.read()
    except OSError as e:
        raise DataError(f"Could not download {name} from {url} ({e}); with no network, copy the python release "
                        f"(folder {sub}/) into {root} by hand.") from None
    if hashlib.md5(payload).hexdigest() != md5:
        raise DataError(f"The {name} archive from {url} failed its MD5 check; nothing was written. Try again.")
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
        tar.extractall(root, filter="data")
    return _cifar_dir(name, root)
