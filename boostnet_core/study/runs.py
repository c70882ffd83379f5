"""Finding a study's runs: finished, evaluated checkpoint folders, grouped by recipe and variant.

A recipe is every training setting but the variant's (method, gradient rescaling, w) and the seed; runs compare only
within one recipe. Runs of one recipe and variant differ by seed alone ("seed siblings").
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import RESULTS, CheckpointError, data_key, read_meta
from ..evaluation import load_cache
from ..thresholds import ExitPredictions
from .grid import run_folders
from .stats import mean_sd
from .variants import Variant

# Settings that tell variants and seeds apart; every other training setting defines the recipe.
VARIANT_KEYS = ("method", "grad_rescale", "reweight", "seed")


@dataclass
class StudyRun:
    """One finished and evaluated run."""
    folder: Path
    recipe: str              # what defines the recipe (data and every training setting but the variant's), as JSON
    recipe_settings: dict
    variant: Variant
    method: str
    seed: int
    macs: list[float]
    test: ExitPredictions
    results: dict            # its evaluation.json

    @property
    def top1(self) -> np.ndarray:
        return np.asarray(self.results["anytime"]["top1"], dtype=np.float64)


def as_roots(roots) -> list:
    """One folder or several, as a list."""
    return [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)


def load_runs(roots) -> list[StudyRun]:
    """Every run under the `roots` (a folder or several) that finished its epochs and has an evaluation with a
    per-sample test cache."""
    runs = []
    for folder in sorted({f for root in as_roots(roots) for f in run_folders(root)}):
        meta = read_meta(folder)
        train = meta.get("train") or {}
        if train.get("epochs_done", 0) < train.get("epochs", 1) or not (folder / RESULTS).is_file():
            continue
        cache = load_cache(folder)
        if "test" not in cache:
            continue
        key, settings = recipe_of(meta)
        runs.append(StudyRun(folder, key, settings, Variant.of_meta(meta), meta["method"], int(train.get("seed", 0)),
                             list(meta["macs"]), cache["test"], json.loads((folder / RESULTS).read_text())))
    return runs


def recipe_of(meta: dict) -> tuple[str, dict]:
    """(key, settings) of a run's recipe: the data it was trained on and every training setting but the method,
    gradient rescaling, w and the seed. Runs compare only within one recipe."""
    train = meta.get("train") or {}
    settings = {k: v for k, v in train.items() if k not in VARIANT_KEYS and k != "epochs_done"}
    return json.dumps([data_key(meta), settings], sort_keys=True), settings


def recipe_name(settings: dict) -> str:
    data = settings.get("dataset", "?")
    preset = settings.get("preset") or "default preset"
    val = settings.get("val_size")
    held = "no validation split" if val == 0 else f"validation {val if val is not None else 'default'}"
    return f"{data}, {preset}, {settings.get('epochs')} epochs, {settings.get('schedule')}, {held}"


def run_identity(meta: dict) -> str | None:
    """What a run is, but for its seed (data, recipe, method, gradient rescaling, w): runs with the same identity
    differ only by seed. None for a folder that records no training."""
    if not meta.get("train"):
        return None
    return json.dumps([recipe_of(meta)[0], meta.get("method"), bool(meta.get("grad_rescale")), meta.get("reweight")])


def seed_siblings(folder, candidates) -> list[Path]:
    """The finished, evaluated runs among `candidates` (folders) that differ from `folder` only by seed, itself
    included, ordered by seed."""
    try:
        identity = run_identity(read_meta(folder))
    except CheckpointError:
        return []
    found = {}
    for c in candidates:
        try:
            meta = read_meta(c)
        except CheckpointError:
            continue
        train = meta.get("train") or {}
        if (run_identity(meta) == identity and identity is not None and (Path(c) / RESULTS).is_file()
                and train.get("epochs_done", 0) >= train.get("epochs", 1)):
            found.setdefault(int(train.get("seed", 0)), Path(c))
    return [found[s] for s in sorted(found)]


def seed_band(folders) -> dict:
    """Anytime test top-1 per exit over runs that differ by seed: mean, sample sd, and n (from evaluation.json)."""
    top1 = np.array([json.loads((Path(f) / RESULTS).read_text())["anytime"]["top1"] for f in folders])
    macs = json.loads((Path(folders[0]) / RESULTS).read_text())["macs"]
    stats = [mean_sd(top1[:, k]) for k in range(top1.shape[1])]
    return {"n": len(folders), "macs": macs, "mean": [m for m, _ in stats], "sd": [s for _, s in stats]}
