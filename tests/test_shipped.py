"""The shipped checkpoints: re-evaluated here, they reproduce the numbers they carry (and the README's)."""
import json

import pytest
import torch

from boostnet_core import load_model
from boostnet_core.data import load_dataset
from boostnet_core.evaluation import anytime_from, load_cache, predict_split

from conftest import CIFAR10_JPG, REPO

CKPT = REPO / "checkpoints"


def _reevaluate(folder, data_root=None):
    model = load_model(folder)
    meta = model.meta
    bundle = load_dataset(meta["data"]["dataset"], data_root, meta["input_size"], len(meta["mean"]), val_size=0)
    return model, anytime_from(predict_split(model, bundle.test))


def _check(folder, data_root=None, floor=None):
    recorded = json.loads((folder / "evaluation.json").read_text())
    model, fresh = _reevaluate(folder, data_root)
    for ours, theirs in zip(fresh["top1"], recorded["anytime"]["top1"]):
        assert abs(ours - theirs) <= 0.1, (folder.name, fresh["top1"], recorded["anytime"]["top1"])
    assert recorded["macs"] == model.macs
    cache = load_cache(folder)["test"]
    cached_top1 = (cache.prediction == cache.labels).double().mean(1) * 100
    assert torch.allclose(cached_top1, torch.tensor(recorded["anytime"]["top1"], dtype=torch.float64), atol=1e-6)
    assert len(recorded["budgeted"]) == 39
    if floor is not None:
        assert fresh["top1"][-1] >= floor
    size = sum(f.stat().st_size for f in folder.iterdir() if f.name != "train_state.safetensors")
    assert size < 10 * 2**20


@pytest.mark.parametrize("name", ["mnist5k-boostnet", "mnist5k-joint"])
def test_shipped_mnist_models_reproduce_their_numbers(name):
    _check(CKPT / name, floor=97.0)


@pytest.mark.skipif(not CIFAR10_JPG.is_dir(), reason="../shared/data/cifar10-jpg is absent")
@pytest.mark.parametrize("name", ["cifar10-boostnet", "cifar10-joint", "cifar10-boostnet-norescale"])
def test_shipped_cifar10_models_reproduce_their_numbers(name):
    _check(CKPT / name, data_root=str(CIFAR10_JPG), floor=85.0)


@pytest.mark.parametrize("name", ["cifar10-boostnet", "cifar10-joint", "cifar10-boostnet-norescale", "mnist5k-boostnet", "mnist5k-joint"])
def test_shipped_folder_is_complete(name):
    folder = CKPT / name
    for f in ("model.safetensors", "model.json", "train_log.jsonl", "eval_cache.safetensors", "evaluation.json"):
        assert (folder / f).is_file(), f
    meta = json.loads((folder / "model.json").read_text())
    assert meta["command"].startswith("boostnet train") and meta["metrics"]
    assert set(load_cache(folder)) == {"val", "test"}
