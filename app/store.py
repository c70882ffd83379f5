"""The checkpoints the app can see and what it reads from them, each read once per version of the file.

Shipped models (checkpoints/), runs trained on the Train page (runs/app/, seen by every session once evaluated) and
folders loaded on the Models page (this session). Every number comes from boostnet_core's public API.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from boostnet_core import CheckpointError, UserError, load_model
from boostnet_core.checkpoint import CACHE, META, RESULTS, WEIGHTS, data_key, read_meta
from boostnet_core.thresholds import ExitPredictions
from boostnet_core.evaluation import load_cache
from boostnet_core.engines import engine_for

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = Path(os.environ.get("BOOSTNET_CHECKPOINTS", REPO / "checkpoints"))
RUNS = Path(os.environ.get("BOOSTNET_RUNS", REPO / "runs" / "app"))   # where the Train page saves its runs
ASSETS = REPO / "assets"


def shipped_checkpoints() -> list[str]:
    """Checkpoint folders shipped in checkpoints/, CIFAR-10 first."""
    if not CHECKPOINTS.is_dir():
        return []
    found = [str(p) for p in sorted(CHECKPOINTS.iterdir()) if (p / META).is_file()]
    return sorted(found, key=lambda p: (not Path(p).name.startswith("cifar10"), Path(p).name))


def trained_here() -> list[str]:
    """Runs the Train page finished (evaluated), in any session of this server, oldest first."""
    if not RUNS.is_dir():
        return []
    return [str(p) for p in sorted(RUNS.iterdir(), key=lambda p: p.name) if (p / RESULTS).is_file()]


def available_checkpoints() -> list[str]:
    """Shipped checkpoints, runs trained on the Train page, and the folders loaded on the Models page."""
    found = shipped_checkpoints() + trained_here()
    extra = st.session_state.setdefault("extra_checkpoints", [])
    return found + [p for p in extra if p not in found]


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


def load_or_error(path: str):
    """The model, or None after one st.error sentence."""
    try:
        return model(path)
    except (UserError, OSError) as e:
        st.error(str(e))
        return None


def cache_key(path: str) -> tuple[float, float, float]:
    """What every result computed from a checkpoint's cache depends on: the cache, the weights and model.json (a
    `train --resume` or new weights make the cache stale, and load_cache then refuses it)."""
    return _mtime_of(path, CACHE), _mtime_of(path, WEIGHTS), _mtime_of(path, META)


@st.cache_resource(show_spinner=False)
def cached_predictions(path: str, key: tuple = ()) -> dict[str, ExitPredictions] | str:
    """The checkpoint's cached per-exit predictions {split: ExitPredictions}, shared and read-only; or the core's
    sentence when the cache cannot be used (computed from other weights)."""
    try:
        return load_cache(path)
    except CheckpointError as e:
        return str(e)


def predictions(path: str) -> dict[str, ExitPredictions]:
    """The cached splits, or {} when there is no usable cache (`cache_problem` says why)."""
    found = cached_predictions(path, cache_key(path))
    return {} if isinstance(found, str) else found


def cache_problem(path: str) -> str | None:
    """Why a checkpoint's cache cannot be used (one sentence), or None."""
    found = cached_predictions(path, cache_key(path))
    return found if isinstance(found, str) else None


def no_cache_sentence(path: str) -> str:
    """What a page that needs the cached splits says without them."""
    return cache_problem(path) or (f"{path} has no cached evaluation. Run `boostnet evaluate {path}` once; the app "
                                   "then reads its cache.")


@st.cache_data(show_spinner=False)
def evaluation_results(path: str, mtime: float = 0.0) -> dict | None:
    f = Path(path) / RESULTS
    return json.loads(f.read_text()) if f.is_file() else None


def results(path: str) -> dict | None:
    return evaluation_results(path, _mtime_of(path, RESULTS))


@st.cache_resource(show_spinner="Scoring the cached splits with the exit criterion ...", max_entries=32)
def _scored(path: str, criterion: str, key: tuple):
    from boostnet_core.criteria import prepare
    return prepare(predictions(path), criterion, path)


def scored(path: str, criterion: str = "max_softmax"):
    """(criterion ready to use, the cached splits with `confidence` holding its scores): max-softmax is the cache
    itself; the learned score is fitted on part of the validation split. Raises the core's one-sentence errors (a
    cache without the logits a criterion needs says how to rebuild it)."""
    return _scored(path, criterion, cache_key(path))


def scored_or_error(path: str, criterion: str):
    """scored(), or (None, None) after one st.error sentence."""
    try:
        return scored(path, criterion)
    except UserError as e:
        st.error(f"{label(path)}: {e}")
        return None, None


@st.cache_data(show_spinner=False, max_entries=512)
def _budget_thresholds(path: str, share: int, criterion: str, key: tuple) -> np.ndarray:
    from boostnet_core.thresholds import fit_to_budget
    m = model(path)
    return fit_to_budget(scored(path, criterion)[1]["val"], m.macs, share / 100 * m.macs[-1]).numpy()


def budget_thresholds(path: str, share: int, criterion: str = "max_softmax") -> np.ndarray:
    """Per-exit thresholds fitted on the validation split to an average of `share` % of the full MACs."""
    return _budget_thresholds(path, share, criterion, cache_key(path))


@st.cache_data(show_spinner="Certifying thresholds on the validation split ...", max_entries=128)
def _certified(path: str, risk: str, epsilon: float, delta: float, criterion: str, key: tuple) -> dict:
    from boostnet_core.calibration import calibrate_checkpoint
    return calibrate_checkpoint(path, risk, epsilon, delta, criterion)


def certified(path: str, risk: str, epsilon: float, delta: float, criterion: str) -> dict:
    """What `boostnet calibrate --json` prints: certified per-exit thresholds, the guarantee, the test results."""
    return _certified(path, risk, epsilon, delta, criterion, cache_key(path))


def run_folders_here() -> list[str]:
    """Every evaluated run the app can see: under checkpoints/ (studies included, any depth) and those loaded."""
    from boostnet_core.study import run_folders
    shipped = [str(p) for p in run_folders(CHECKPOINTS)] if CHECKPOINTS.is_dir() else []
    return shipped + [p for p in available_checkpoints() if p not in shipped]


@st.cache_data(show_spinner=False)
def _seed_siblings(path: str, candidates: tuple[str, ...], versions: tuple[float, ...]) -> list[str]:
    from boostnet_core.study.runs import seed_siblings
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


def data_name(path: str) -> str:
    """The data set's name for people: "CIFAR-10 (image folder)", "mnist5k", ..."""
    meta = metadata(path)
    data = meta.get("data") or {}
    dataset = data.get("dataset", "?")
    if dataset == "folder":
        classes = meta.get("classes") or []
        return "CIFAR-10 (image folder)" if classes == CIFAR10_CLASSES else f"image folder, {len(classes)} classes"
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(dataset, dataset)


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
