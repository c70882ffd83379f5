"""The shipped checkpoints: their files agree with each other, and re-running a fixed subset of test images gives
exactly the per-sample predictions their cached evaluation holds (a full re-evaluation is `boostnet evaluate`)."""
import json

import pytest
import torch

from boostnet_core import load_model
from boostnet_core.data import ImageSet, folder_split, decode_to_array, load_dataset, open_image
from boostnet_core.evaluation import anytime_from, load_cache, predict_split
from boostnet_core.factory import input_channels

from conftest import CIFAR10_JPG, REPO

CKPT = REPO / "checkpoints"
CIFAR10 = ["cifar10-boostnet", "cifar10-joint", "cifar10-boostnet-norescale"]
MNIST = ["mnist5k-boostnet", "mnist5k-joint"]
SUBSET = 60  # test images re-run per model, spread evenly over the split (so over every class)


def _subset(n: int) -> torch.Tensor:
    return torch.arange(0, n, n // SUBSET)[:SUBSET]


def _cifar10_subset(meta, index: torch.Tensor) -> ImageSet:
    """Only the chosen test images, decoded exactly as the folder loader decodes them."""
    paths, labels, _ = folder_split(CIFAR10_JPG, "test")
    size, channels = meta["input_size"], input_channels(meta)
    images = torch.stack([torch.from_numpy(decode_to_array(open_image(paths[i]), size, channels).copy()) for i in index])
    return ImageSet(images, torch.tensor([labels[i] for i in index]))


def _check_subset(name, subset_of):
    folder = CKPT / name
    model = load_model(folder)
    cached = load_cache(folder)["test"]
    index = _subset(len(cached.labels))
    data = subset_of(model.meta, index)
    assert torch.equal(data.labels, cached.labels[index]), "the test split's order changed"
    fresh = predict_split(model, data, batch_size=50)
    assert torch.equal(fresh.prediction, cached.prediction[:, index]), name
    assert torch.equal(fresh.top5, cached.top5[:, index]), name
    assert torch.allclose(fresh.confidence, cached.confidence[:, index], atol=1e-5), name


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist5k").test


@pytest.mark.parametrize("name", MNIST)
def test_shipped_mnist_models_reproduce_their_cached_predictions(name, mnist_test):
    _check_subset(name, lambda meta, index: mnist_test.subset(index))


@pytest.mark.skipif(not CIFAR10_JPG.is_dir(), reason="../shared/data/cifar10-jpg is absent")
@pytest.mark.parametrize("name", CIFAR10)
def test_shipped_cifar10_models_reproduce_their_cached_predictions(name):
    _check_subset(name, _cifar10_subset)


@pytest.mark.parametrize("name", CIFAR10 + MNIST)
def test_shipped_folder_is_complete_and_consistent(name):
    folder = CKPT / name
    for f in ("model.safetensors", "model.json", "train_log.jsonl", "eval_cache.safetensors", "evaluation.json"):
        assert (folder / f).is_file(), f
    meta = json.loads((folder / "model.json").read_text())
    assert meta["command"].startswith("boostnet train") and meta["metrics"]
    cache = load_cache(folder)
    assert set(cache) == {"val", "test"}
    recorded = json.loads((folder / "evaluation.json").read_text())
    # The cached predictions are the ones the recorded results were computed from.
    assert anytime_from(cache["test"]) == recorded["anytime"]
    assert recorded["macs"] == meta["macs"] == load_model(folder).macs
    assert len(recorded["budgeted"]) == 39
    assert recorded["anytime"]["top1"][-1] >= (85.0 if name.startswith("cifar10") else 97.0)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.name != "train_state.safetensors")
    assert size < 10 * 2**20


def test_results_doc_shows_the_generated_tables():
    """docs/results.md's results and study tables (the README links them) are what scripts/results.py writes, not a
    typed or stale copy."""
    import runpy
    script = runpy.run_path(str(REPO / "scripts" / "results.py"))
    doc = (REPO / "docs" / "results.md").read_text()
    for name, content in script["block_contents"]().items():
        assert script["embedded"](doc, name, "results.md") == content, \
            f"docs/results.md's {name!r} block is stale: run scripts/results.py --readme"


def test_criteria_doc_shows_the_generated_tables():
    """docs/criteria.md's criteria and validity tables are what scripts/results.py writes from assets/criteria/."""
    import runpy
    script = runpy.run_path(str(REPO / "scripts" / "results.py"))
    doc = (REPO / "docs" / "criteria.md").read_text()
    for name, content in script["criteria_block_contents"]().items():
        assert script["embedded"](doc, name, "criteria.md") == content, \
            f"docs/criteria.md's {name!r} block is stale: run scripts/results.py --readme"


def test_every_shipped_cache_beside_weights_is_theirs():
    """A cache that sits beside its weights records their hash (load_cache refuses it otherwise): every shipped
    checkpoint folder, the study's included, can be read by calibrate, the app and `study report`."""
    folders = [p.parent for p in CKPT.rglob("model.safetensors") if (p.parent / "eval_cache.safetensors").is_file()]
    assert len(folders) >= 7
    for folder in folders:
        assert load_cache(folder), folder
