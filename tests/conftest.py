"""Shared fixtures: a digits model trained once per session (a few seconds on CPU)."""
import functools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR10_JPG = SHARED_DATA / "cifar10-jpg"

# The default engine "auto" exports, compiles and times every engine per model (seconds for the shipped CIFAR-10
# model); the suite's other tests run the cheap torch-fold engine instead (the app's server inherits this too), and
# tests/test_engines.py tests "auto" itself.
os.environ.setdefault("BOOSTNET_ENGINE", "torch-fold")

TEST_THREADS = max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(TEST_THREADS)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Code under test may set torch's thread count (the CLI's --threads, the app); later tests must not inherit it."""
    yield
    torch.set_num_threads(TEST_THREADS)


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory) -> Path:
    from boostnet_core.training import TrainConfig, train
    out = tmp_path_factory.mktemp("ckpt") / "digits"
    train(TrainConfig(dataset="digits", out=str(out), epochs=3, progress=False, command="boostnet train --dataset digits --epochs 3"))
    return out


@pytest.fixture
def digits_copy(digits_checkpoint, tmp_path) -> Path:
    """A private copy of the session checkpoint that a test may damage."""
    dst = tmp_path / "copy"
    shutil.copytree(digits_checkpoint, dst)
    return dst


@pytest.fixture(scope="session")
def digits_model(digits_checkpoint):
    from boostnet_core import load_model
    return load_model(digits_checkpoint)


@functools.lru_cache(maxsize=1)
def ambiguous_digit():
    """A blend of two MNIST test digits whose exit differs between thresholds 0 and 1 (found with the library)."""
    from boostnet_core import load_model
    from boostnet_core.data import load_dataset
    from boostnet_core.inference import preprocess_image, trace
    model = load_model(REPO / "checkpoints" / "mnist5k-boostnet")
    test = load_dataset("mnist5k").test.images[:, 0].numpy().astype(np.float32)
    for i in range(40):
        img = Image.fromarray(((test[i] + test[i + 40]) / 2).astype(np.uint8))
        x = preprocess_image(img, model.meta)
        low, high = trace(model, x, 0.0)["exit_index"], trace(model, x, 1.0)["exit_index"]
        if low != high:
            return img, low, high
    raise AssertionError("no ambiguous blend found")
