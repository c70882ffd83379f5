"""What every page shares: finding and loading checkpoints (cached), the model picker, sample images, plot style.

Only presentation and caching live in app/; every number comes from boostnet_core's public API.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from boostnet_core import CheckpointError, load_model
from boostnet_core.checkpoint import CACHE, META, RESULTS, WEIGHTS, data_key, read_meta
from boostnet_core.data import DataError, load_test_split
from boostnet_core.evaluation import ExitPredictions, load_cache
from boostnet_core.engines import engine_for

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = Path(os.environ.get("BOOSTNET_CHECKPOINTS", REPO / "checkpoints"))
ASSETS = REPO / "assets"
EXIT_COLORS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC"]

# Half the cores: the browser usually runs on the same machine, and two-thread tensor ops on a CPU the browser is
# busy on wait for each other (the Threshold page's arithmetic took 40 ms instead of 4 on two cores).
APP_THREADS = max(1, min(4, (os.cpu_count() or 1) // 2))
torch.set_num_threads(APP_THREADS)


def shipped_checkpoints() -> list[str]:
    """Checkpoint folders shipped in checkpoints/, CIFAR-10 first."""
    if not CHECKPOINTS.is_dir():
        return []
    found = [str(p) for p in sorted(CHECKPOINTS.iterdir()) if (p / META).is_file()]
    return sorted(found, key=lambda p: (not Path(p).name.startswith("cifar10"), Path(p).name))


def available_checkpoints() -> list[str]:
    """Shipped checkpoints plus the folders loaded on the Models page in this session."""
    extra = st.session_state.setdefault("extra_checkpoints", [])
    return shipped_checkpoints() + [p for p in extra if p not in shipped_checkpoints()]


def label(path: str) -> str:
    return Path(path).name


# Cached readers take the file's modification time as an argument without a leading underscore: Streamlit keys its
# caches on every such argument, so a retrained or re-evaluated checkpoint is read again at once.


def _mtime_of(path: str, name: str) -> float:
    try:
        return (Path(path) / name).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner="Loading model ...")
def get_model(path: str, mtime: float = 0.0):
    """One shared, read-only model per checkpoint folder and weights file (eval mode), with its default inference
    engine prepared and measured for one image here (engines/), which traces then use."""
    loaded = load_model(path)
    engine_for(loaded).head_logits(torch.zeros(1, *loaded.input_shape))   # auto measures its one-image pick now
    return loaded


def model(path: str):
    return get_model(path, weights_mtime(path))


def weights_mtime(path: str) -> float:
    """When the weights were last written: part of every cache key that depends on them."""
    return _mtime_of(path, WEIGHTS)


@st.cache_resource(show_spinner=False)
def cached_predictions(path: str, mtime: float = 0.0) -> dict[str, ExitPredictions]:
    """The checkpoint's cached per-exit predictions {split: ExitPredictions}; shared, read-only."""
    return load_cache(path)


def predictions(path: str) -> dict[str, ExitPredictions]:
    return cached_predictions(path, _mtime_of(path, CACHE))


@st.cache_data(show_spinner=False)
def evaluation_results(path: str, mtime: float = 0.0) -> dict | None:
    f = Path(path) / RESULTS
    return json.loads(f.read_text()) if f.is_file() else None


def results(path: str) -> dict | None:
    return evaluation_results(path, _mtime_of(path, RESULTS))


@st.cache_data(show_spinner=False, max_entries=512)
def _budget_thresholds(path: str, share: int, mtime: float) -> np.ndarray:
    from boostnet_core.thresholds import fit_to_budget
    m = model(path)
    return fit_to_budget(predictions(path)["val"], m.macs, share / 100 * m.macs[-1]).numpy()


def budget_thresholds(path: str, share: int) -> np.ndarray:
    """Per-exit thresholds fitted on the validation split to an average of `share` % of the full MACs."""
    return _budget_thresholds(path, share, _mtime_of(path, CACHE))


def run_folders_here() -> list[str]:
    """Every evaluated run the app can see: under checkpoints/ (studies included, any depth) and those loaded."""
    from boostnet_core.study import run_folders
    shipped = [str(p) for p in run_folders(CHECKPOINTS)] if CHECKPOINTS.is_dir() else []
    return shipped + [p for p in available_checkpoints() if p not in shipped]


@st.cache_data(show_spinner=False)
def _seed_siblings(path: str, candidates: tuple[str, ...], versions: tuple[float, ...]) -> list[str]:
    from boostnet_core.study_report import seed_siblings
    return [str(p) for p in seed_siblings(path, candidates)] or [path]


def seed_siblings_of(path: str) -> list[str]:
    """The runs that differ from `path` only by seed (itself included); one element when it has none. Read once per
    set of runs and evaluations, not on every rerun."""
    candidates = tuple(run_folders_here())
    return _seed_siblings(path, candidates, tuple(_mtime_of(c, RESULTS) for c in candidates))


@st.cache_data(show_spinner=False)
def _metadata(path: str, mtime: float) -> dict | None:
    try:
        return read_meta(path)
    except (CheckpointError, OSError):
        return None


def metadata(path: str) -> dict:
    """model.json of a checkpoint ({} if unreadable), read once per version of the file."""
    return _metadata(path, _mtime_of(path, META)) or {}


def data_group(path: str) -> str:
    """The data a checkpoint was trained on (models of one group can be compared); "" if unreadable."""
    meta = metadata(path)
    return data_key(meta) if meta else ""


def pick_model(key: str = "model", label_text: str = "Model", where=None) -> str | None:
    """A model picker (in the sidebar by default) remembered across pages; None with a message when there is none."""
    options = available_checkpoints()
    if not options:
        st.warning("No checkpoint found. Train one (`boostnet train ...`) or load a folder on the Models page.")
        return None
    where = where or st.sidebar
    current = st.session_state.get(key)
    if current is None and "model" in st.query_params:  # a link like ?model=mnist5k-boostnet (for a class)
        current = next((p for p in options if label(p) == st.query_params["model"]), None)
    index = options.index(current) if current in options else 0
    choice = where.selectbox(label_text, options, index=index, format_func=label, key=f"_{key}_widget")
    st.session_state[key] = choice
    return choice


def load_or_error(path: str):
    """The model, or None after one st.error sentence."""
    try:
        return model(path)
    except (CheckpointError, ValueError, OSError) as e:
        st.error(str(e))
        return None


@st.cache_resource(show_spinner="Reading the data set's test images ...", max_entries=8)
def test_images(dataset: str, data_root: str | None, input_size: int, in_channels: int) -> np.ndarray:
    """The test split's images, uint8 [N, C, H, W], in the order the evaluation cache uses."""
    return load_test_split(dataset, data_root, input_size, in_channels).images.numpy()


def dataset_images(path: str, data_root: str | None = None) -> tuple[np.ndarray | None, str]:
    """(test images or None, a sentence saying why not) for a checkpoint's data set."""
    meta = model(path).meta
    data = meta.get("data", {})
    dataset = data.get("dataset")
    if data_root and not Path(data_root).expanduser().is_dir():
        return None, f"The folder {data_root!r} does not exist on this machine; give the folder that holds the images."
    root = str(Path(data_root).expanduser()) if data_root else data.get("data_root")
    if dataset in ("cifar10", "cifar100", "folder"):
        root = _resolve_root(root)
        if root is None:
            return None, f"The {dataset} images are not on this machine; give their data root to see them."
    try:
        return test_images(dataset, root, meta["input_size"], len(meta["mean"])), ""
    except (DataError, ValueError, OSError) as e:
        return None, str(e)


def resolve_data_root(path: str) -> str | None:
    """The data root a checkpoint records, if that folder exists here (as given, or relative to the project)."""
    return _resolve_root((metadata(path).get("data") or {}).get("data_root"))


def _resolve_root(root: str | None) -> str | None:
    if not root:
        return None
    for candidate in (Path(root), REPO / root):
        if candidate.is_dir():
            return str(candidate)
    return None


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


def strip(images: list[np.ndarray], box: int = 72, gap: int = 8) -> np.ndarray:
    """Thumbnails side by side in one RGB image (in the order given)."""
    tiles = [thumbnail(im, box) for im in images]
    canvas = np.full((box, len(tiles) * (box + gap) - gap, 3), 255, np.uint8)
    for j, tile in enumerate(tiles):
        canvas[:, j * (box + gap): j * (box + gap) + box] = tile
    return canvas


MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]


@st.cache_data(show_spinner=False, max_entries=64)
def decode_upload(data: bytes, name: str) -> np.ndarray:
    """Upload bytes -> RGB, RGBA or L uint8 array (first frame, EXIF applied, 16-bit scaled), or a DataError that
    names the file."""
    from boostnet_core.data import open_image
    import io
    if not data:
        raise DataError(f"{name} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(f"{name} is over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit.")
    img = open_image(io.BytesIO(data), name=name)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float greys: scale to 8 bits for display
        values = np.asarray(img, dtype=np.float64)
        top = values.max() if values.max() > 255 else 255.0
        return (np.clip(values / top, 0, 1) * 255).astype(np.uint8)
    keep = "RGBA" if img.mode in ("RGBA", "LA", "P", "PA") else ("L" if img.mode in ("1", "L") else "RGB")
    return np.asarray(img.convert(keep))


def model_color(path: str) -> str:
    """One colour per checkpoint for the whole session, whatever is selected: its place among all checkpoints."""
    options = available_checkpoints()
    index = options.index(path) if path in options else len(options) + sum(map(ord, path))
    return MODEL_COLORS[index % len(MODEL_COLORS)]


MODEL_COLORS = ["#1F77B4", "#D62728", "#2CA02C", "#9467BD", "#FF7F0E", "#17BECF", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22"]


def remembered(key: str, default):
    """A setting that outlives the page that sets it (widget keys are dropped when their page is left)."""
    return st.session_state.setdefault(f"saved_{key}", default)


def remember(key: str, value) -> None:
    st.session_state[f"saved_{key}"] = value


def fmt_macs(macs: float) -> str:
    return f"{macs / 1e9:.2f} G MACs" if macs >= 1e9 else f"{macs / 1e6:.2f} M MACs"


# Charts redrawn on every threshold move: no tool bar, so the browser has less to build each time (hover stays).
LIGHT = {"displayModeBar": False}


def plot_layout(fig, x_title: str, y_title: str, height: int = 320):
    """Axis titles with units; transparent background so light and dark themes both read well."""
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title=x_title, yaxis_title=y_title,
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(gridcolor="rgba(128,128,128,0.25)")
    fig.update_yaxes(gridcolor="rgba(128,128,128,0.25)")
    return fig


def contribution_panels(t: dict, net, height: int = 300) -> go.Figure:
    """Small multiples: for every exit, each head's contribution w^(n-i) f_i to the top-3 classes of F_n, stacked so
    that they visibly sum to F_n (the diamond)."""
    n = net.num_exits
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, subplot_titles=[f"F_{k + 1} (exit {k + 1})" for k in range(n)],
                        horizontal_spacing=0.02)
    for k in range(n):
        contrib = t["contributions"][k].numpy()                 # [k + 1, C]
        logits = t["exit_logits"][k].numpy()
        top = np.argsort(-logits)[:3]
        names = [net.classes[c] for c in top]
        for i in range(k + 1):
            fig.add_bar(x=names, y=contrib[i, top], marker_color=EXIT_COLORS[i % 10], name=f"head {i + 1}",
                        legendgroup=f"h{i}", showlegend=k == n - 1, row=1, col=k + 1,
                        hovertemplate=f"head {i + 1} (x{net.reweight ** (k - i):g}): " + "%{y:.2f}<extra></extra>")
        fig.add_scatter(x=names, y=logits[top], mode="markers", marker=dict(symbol="diamond", size=10, color="black"),
                        name="F (sum)", legendgroup="F", showlegend=k == n - 1, row=1, col=k + 1,
                        hovertemplate="F: %{y:.2f}<extra></extra>")
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=names, row=1, col=k + 1)
    fig.update_layout(barmode="relative")
    return plot_layout(fig, "", "logit contribution w^(n-i) f_i", height)
