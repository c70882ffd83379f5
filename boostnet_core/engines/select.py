"""The front door of engines/: which engine runs a model, by name or by the default ("auto").

    engine_for(model, engine=None, fast=True)   # what early_exit.py, evaluation.py and inference.py walk
      -> prepare_inference(model, name)         # "auto": AutoEngine (auto.py); else registry.prepare_named
"""
from __future__ import annotations

import os

from .auto import AutoEngine
from .base import InferenceEngine
from .registry import DEFAULT_ENGINE, check_choice, disk_of, kept_for_weights, prepare_named


def prepare_inference(model, engine: str = "auto", precision: str = "fp32") -> InferenceEngine:
    """The engine `engine` for `model`'s current weights, prepared once and kept while the weights stay the same:
    "auto" measures the candidates on this machine per use (auto.py); any other name is that engine, or the next one
    of registry.FALLBACK with one warning when it is not installed, refused or disagreeing."""
    check_choice(engine, precision)
    if engine == "auto":
        return kept_for_weights(model, ("auto", precision), lambda: AutoEngine(model, precision, disk_of(model)))
    return prepare_named(model, engine, precision)


def default_engine() -> str:
    """The engine a model runs when none is named: BOOSTNET_ENGINE if set, else "auto"."""
    name = os.environ.get("BOOSTNET_ENGINE", DEFAULT_ENGINE)
    check_choice(name, "fp32")
    return name


def engine_for(model, engine=None, fast: bool = True, precision: str = "fp32"):
    """What the core walks: the eager backbone for fast=False, a given InferenceEngine as is, else the named engine
    (None: the model's default) prepared once for the current weights."""
    if not fast:
        return model.backbone
    if isinstance(engine, InferenceEngine):
        return engine
    return prepare_inference(model, engine or default_engine(), precision)


def engine_name(backbone) -> str:
    """The name of what ran: an engine's name ("auto:<engine>" for auto's last pick), "eager" for the model's own
    backbone."""
    return backbone.describe() if isinstance(backbone, InferenceEngine) else "eager"
