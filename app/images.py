"""Pictures the app shows: a model's test images (the full split, or the sample shipped in assets/), uploads, and
thumbnails.

A fresh clone has no CIFAR-10 images; `assets/cifar10-sample/` holds 5 test images per class (their test indices
recorded in index.json, pixels exactly as the data loader decodes them), so the picker and the galleries still work.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from boostnet_core.data import DataError, load_test_split, open_image
from boostnet_core.errors import UserError
from boostnet_core.factory import input_channels
from store import ASSETS, REPO, metadata, model, predictions

SAMPLE = ASSETS / "cifar10-sample"
# BOOSTNET_DATA_ROOT points every checkpoint's recorded data root elsewhere: a folder, or one that does not exist to
# see the app as on a fresh clone (the tests do that).
DATA_ROOT_VARIABLE = "BOOSTNET_DATA_ROOT"


@dataclass(frozen=True)
class TestImages:
    """Test images of a model's data set: `images[j]` is test image number `indices[j]` of the evaluation cache."""
    images: np.ndarray          # uint8 [n, C, H, W]
    indices: np.ndarray         # int [n], increasing
    note: str = ""              # "" for the whole split; else a sentence saying which sample this is

    @property
    def is_sample(self) -> bool:
        return bool(self.note)

    def image(self, test_index: int) -> np.ndarray:
        """Test image `test_index` for display (RGB or grey uint8)."""
        return to_display(self.images[int(np.searchsorted(self.indices, test_index))])

    def has(self, test_indices: np.ndarray) -> np.ndarray:
        """Which of these test indices are among the images."""
        return np.isin(test_indices, self.indices)


@st.cache_resource(show_spinner="Reading the data set's test images ...", max_entries=8)
def _full_split(dataset: str, data_root: str | None, input_size: int, in_channels: int) -> np.ndarray:
    """The test split's images, uint8 [N, C, H, W], in the order the evaluation cache uses."""
    return load_test_split(dataset, data_root, input_size, in_channels).images.numpy()


@st.cache_resource(show_spinner=False)
def shipped_sample() -> tuple[dict, np.ndarray] | None:
    """(index.json, images uint8 [n, 3, 32, 32]) of assets/cifar10-sample, or None if this copy lacks it."""
    from PIL import Image
    try:
        index = json.loads((SAMPLE / "index.json").read_text())
        sheet = np.asarray(Image.open(SAMPLE / index["sheet"]).convert("RGB"))
    except (OSError, json.JSONDecodeError, KeyError):   # a damaged copy of the shipped sample
        return None
    tile, cols = index["tile"], index["columns"]
    rows = sheet.shape[0] // tile
    tiles = sheet.reshape(rows, tile, cols, tile, 3).transpose(0, 2, 4, 1, 3).reshape(rows * cols, 3, tile, tile)
    return index, tiles[:len(index["images"])]


def _sample_for(path: str) -> TestImages | None:
    """The shipped sample, if it is a sample of this model's test split (same classes, size, and labels where the
    model's evaluation cache records them)."""
    shipped = shipped_sample()
    meta = metadata(path)
    if shipped is None or meta.get("input_size") != 32 or "mean" not in meta or input_channels(meta) != 3:
        return None
    index, tiles = shipped
    data = meta.get("data") or {}
    if data.get("dataset") != "folder" or meta.get("classes") != index["classes"] or data.get("test_size") != index["test_size"]:
        return None
    indices = np.array([e["test_index"] for e in index["images"]])
    test = predictions(path).get("test")
    if test is not None:
        wanted = np.array([index["classes"].index(e["class"]) for e in index["images"]])
        if len(test.labels) != index["test_size"] or not np.array_equal(test.labels.numpy()[indices], wanted):
            return None
    order = np.argsort(indices)
    return TestImages(tiles[order], indices[order],
                      f"the {len(indices)} CIFAR-10 test images shipped with the app "
                      f"({len(indices) // len(index['classes'])} per class, assets/cifar10-sample)")


def dataset_images(path: str, data_root: str | None = None) -> tuple[TestImages | None, str]:
    """(test images, "") of a checkpoint's data set: the whole split when its images are here, else the shipped
    sample when it is one of this data set; (None, a sentence saying why) when there are none."""
    meta = model(path).meta
    data = meta.get("data", {})
    dataset = data.get("dataset")
    if data_root and not Path(data_root).expanduser().is_dir():
        return None, f"The folder {data_root!r} does not exist on this machine; give the folder that holds the images."
    root = str(Path(data_root).expanduser()) if data_root else resolve_data_root(path)
    if dataset in ("cifar10", "cifar100", "folder") and root is None:
        sample = _sample_for(path)
        if sample is not None:
            return sample, ""
        return None, f"The {dataset} images are not on this machine; give their data root to see them."
    try:
        images = _full_split(dataset, root, meta["input_size"], input_channels(meta))
    except (UserError, OSError) as e:
        return None, str(e)
    return TestImages(images, np.arange(len(images))), ""


def resolve_data_root(path: str) -> str | None:
    """The data root a checkpoint records, if that folder exists here (as given, or relative to the project)."""
    root = (metadata(path).get("data") or {}).get("data_root")
    root = os.environ.get(DATA_ROOT_VARIABLE, root)
    if not root:
        return None
    for candidate in (Path(root), REPO / root):
        if candidate.is_dir():
            return str(candidate)
    return None


# ---------------------------------------------------------------- display


def to_display(image_chw: np.ndarray) -> np.ndarray:
    """uint8 [C, H, W] -> an RGB/grey array st.image can show."""
    return image_chw[0] if image_chw.shape[0] == 1 else image_chw.transpose(1, 2, 0)


def thumbnail(pixels: np.ndarray, box: int = 160) -> np.ndarray:
    """An RGB uint8 image of exactly box x box: the picture scaled to fit (a 1x300 strip stays visible as a strip,
    at least 4 px thick) on a neutral grey background, so that no aspect ratio can stretch the page."""
    from PIL import Image
    rgb = pixels if pixels.ndim == 3 else np.stack([pixels] * 3, -1)
    rgb = rgb[..., :3].astype(np.uint8)
    h, w = rgb.shape[:2]
    scale = box / max(h, w)
    size = (max(4, min(box, round(w * scale))), max(4, min(box, round(h * scale))))
    picture = Image.fromarray(rgb).resize(size, Image.NEAREST if max(h, w) < box else Image.BILINEAR)
    canvas = Image.new("RGB", (box, box), (200, 200, 200))
    canvas.paste(picture, ((box - size[0]) // 2, (box - size[1]) // 2))
    return np.asarray(canvas)


def picture_digest(pixels: np.ndarray) -> str:
    """A name for a picture's content (its pixels and shape): the same picture from any source, model or session
    gets the same name, another picture another name."""
    import hashlib
    return hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()


@st.cache_resource(show_spinner=False, max_entries=512)
def thumbnail_png(key: str, _pixels: np.ndarray, box: int = 160) -> bytes:
    """thumbnail() as PNG bytes, made once per picture (`key`: its picture_digest, shared by every session of the
    server, so it must name the content, not a position in a list): st.image(..., output_format="PNG")
    sends them as they are, where an array (or other bytes) is encoded anew at every rerun of the page."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(thumbnail(_pixels, box)).save(buffer, "PNG")
    return buffer.getvalue()


def strip(images: list[np.ndarray], box: int = 72, gap: int = 8) -> np.ndarray:
    """Thumbnails side by side in one RGB image (in the order given)."""
    tiles = [thumbnail(im, box) for im in images]
    canvas = np.full((box, len(tiles) * (box + gap) - gap, 3), 255, np.uint8)
    for j, tile in enumerate(tiles):
        canvas[:, j * (box + gap): j * (box + gap) + box] = tile
    return canvas


# ---------------------------------------------------------------- uploads

# The app enforces this limit itself, with a sentence naming the file; Streamlit's own (server.maxUploadSize in
# .streamlit/config.toml) is set higher so that it never answers first. In megabytes of 10^6 bytes, the unit the
# uploader's own list of files uses, so that a file's size reads the same there and in the app's sentence.
MEGABYTE = 1_000_000
MAX_UPLOAD_BYTES = 20 * MEGABYTE
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]


@st.cache_data(show_spinner=False, max_entries=64)
def decode_upload(data: bytes, name: str) -> np.ndarray:
    """Upload bytes -> RGB, RGBA or L uint8 array (first frame, EXIF applied, 16-bit scaled), or a DataError that
    names the file."""
    if not data:
        raise DataError(f"{name} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(f"{name} is {len(data) / MEGABYTE:.1f} MB, over the app's {MAX_UPLOAD_BYTES // MEGABYTE} MB "
                        "limit per image; it was not read.")
    img = open_image(io.BytesIO(data), name=name)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float greys: scale to 8 bits for display
        values = np.asarray(img, dtype=np.float64)
        top = values.max() if values.max() > 255 else 255.0
        return (np.clip(values / top, 0, 1) * 255).astype(np.uint8)
    keep = "RGBA" if img.mode in ("RGBA", "LA", "P", "PA") else ("L" if img.mode in ("1", "L") else "RGB")
    return np.asarray(img.convert(keep))


def decode_uploads(files: list[tuple[str, bytes]], input_size: int) -> tuple[list[tuple[str, np.ndarray]], list[str], list[str]]:
    """Uploaded (name, bytes) -> (decoded (shown name, pixels), error sentences, notes).

    Two files of the same name are shown as "name (1)", "name (2)" with a note, and named so in their sentences too;
    an image smaller than the model's input is accepted with a note saying it was resized from its size. Any file may
    be uploaded (the uploaders take every type): one that is not an image gets the app's sentence, not only the
    uploader's red mark with its reason on hover."""
    counts: dict[str, int] = {}
    for name, _ in files:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    items, errors, notes = [], [], []
    for name, data in files:
        shown = name
        if counts[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            shown = f"{name} ({seen[name]})"
        try:
            pixels = decode_upload(data, shown)
        except DataError as e:
            errors.append(str(e))
            continue
        h, w = pixels.shape[:2]
        if h < input_size or w < input_size:
            notes.append(f"{shown} is {w}x{h} pixels, smaller than the model's {input_size}x{input_size} input; it "
                         f"was resized to {input_size}x{input_size}, so the model sees little detail.")
        items.append((shown, pixels))
    notes[:0] = [f"{n} files are named {name}; they are shown as {name} (1) to ({n})." for name, n in counts.items() if n > 1]
    return items, errors, notes
