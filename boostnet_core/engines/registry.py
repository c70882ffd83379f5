"""Preparing one named engine: names, the per-model cache (one engine per set of weights), fallback and refusal.

`prepare_named` is what an explicit `engine="openvino"` gets; `try_prepare` is what the auto engine (auto.py) uses
to prepare its candidates, without falling back. The front door, which also knows "auto", is select.py."""
from __future__ import annotations

import threading
import warnings
import weakref


from ..errors import ArgumentError
from ..fast_inference import fingerprint, model_tensors
from .base import AGREEMENT_TOLERANCE, EngineUnavailable, InferenceEngine, check_agreement
from .disk_cache import EngineCache

ENGINES = ("auto", "torch", "torch-fold", "torch-jit", "openvino", "onnxruntime")
PRECISIONS = ("fp32", "bf16")
FALLBACK = {"openvino": "onnxruntime", "onnxruntime": "torch-jit", "torch-jit": "torch-fold", "torch-fold": "torch"}
DEFAULT_ENGINE = "auto"   # BOOSTNET_ENGINE in the environment overrides it

_models: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> {"key", "tensors", (name, precision): engine}
_lock = threading.RLock()
_warned: set[str] = set()


def check_choice(engine: str, precision: str) -> None:
    if engine not in ENGINES:
        raise ArgumentError(f"Unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}.")
    if precision not in PRECISIONS:
        raise ArgumentError(f"Unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}.")


def _build(model, name: str, precision: str) -> InferenceEngine:
    """One engine, checked against the eager model (raises on any failure)."""
    if name in ("torch", "torch-fold", "torch-jit"):
        from .torch_engines import TorchEngine
        engine = TorchEngine(name, model, precision)
    elif name == "onnxruntime":
        from .onnx_engines import OnnxRuntimeEngine
        engine = OnnxRuntimeEngine(model, precision, _graphs(model))
    else:
        from .onnx_engines import OpenVinoEngine
        engine = OpenVinoEngine(model, precision, _graphs(model))
    try:   # the first run: a runtime may refuse only now (an operator it cannot run at this shape)
        check_agreement(engine, model, AGREEMENT_TOLERANCE if precision == "fp32" else None)
    except engine.runtime_errors as e:
        raise EngineUnavailable(f"its first run failed ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    return engine


def _entry(model) -> dict:
    """The cache entry of `model` for its current weights (a new one when they changed)."""
    entry = _models.get(model)
    if entry is None or fingerprint(entry["tensors"]) != entry["key"]:
        tensors = model_tensors(model)
        entry = _models[model] = {"tensors": tensors, "key": fingerprint(tensors)}
    return entry


def _disk(model) -> EngineCache:
    """The model's entry in the engine cache on disk (disk_cache.py), once per set of weights."""
    entry = _entry(model)
    if "disk" not in entry:
        entry["disk"] = EngineCache(model)
    return entry["disk"]


def _graphs(model):
    """The model's ONNX graphs for both ONNX engines (made once per set of weights, or read from the disk cache)."""
    from .onnx_graphs import ModelGraphs
    entry = _entry(model)
    if "graphs" not in entry:
        entry["graphs"] = ModelGraphs(_disk(model))
    return entry["graphs"]


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _exact(entry: dict, model, name: str, precision: str):
    """Engine `name` exactly, or the exception that stopped it (both cached for the current weights)."""
    key = (name, precision, "exact")
    if key not in entry:
        try:
            entry[key] = _build(model, name, precision)
        except (EngineUnavailable, ImportError) as error:   # refused, disagreeing, or not installed; bugs raise
            entry[key] = error
    return entry[key]


def _reason(error: Exception) -> str:
    return str(error).split("\n")[0] or type(error).__name__


def prepare_named(model, engine: str, precision: str = "fp32") -> InferenceEngine:
    """Engine `engine` (not "auto") for `model`'s current weights, prepared once and cached on the model.

    Not installed, refused by its runtime or disagreeing with the eager model (EngineUnavailable, ImportError): the
    next engine of FALLBACK, with one warning naming why ("torch", the eager backbone, always prepares). Any other
    exception is a bug and raises.
    """
    check_choice(engine, precision)
    with _lock:
        entry = _entry(model)
        key = (engine, precision)
        if key not in entry:
            name = engine
            while isinstance(got := _exact(entry, model, name, precision), Exception):
                if FALLBACK.get(name) is None:
                    raise got
                _warn_once(f"{name}:{precision}:{_reason(got)}", f"Inference engine {name!r} ({precision}) is "
                           f"not used: {_reason(got)}; using {FALLBACK[name]!r} instead.")
                name = FALLBACK[name]
            entry[key] = got
        return entry[key]


def kept_for_weights(model, key, make):
    """make(), once per set of `model`'s weights and `key` (the auto engine lives here, beside the named ones)."""
    with _lock:
        entry = _entry(model)
        if key not in entry:
            entry[key] = make()
        return entry[key]


def disk_of(model) -> EngineCache:
    """The model's entry in the engine cache on disk (disk_cache.py), once per set of weights."""
    return _disk(model)


def try_prepare(model, name: str, precision: str = "fp32") -> InferenceEngine | None:
    """Engine `name` without falling back: None (and one warning) when it does not prepare."""
    with _lock:
        got = _exact(_entry(model), model, name, precision)
    if isinstance(got, Exception):
        if not (name == "onnxruntime" and precision == "bf16"):   # known: fp32 only, not worth a warning
            _warn_once(f"{name}:{precision}:{_reason(got)}", f"Inference engine {name!r} ({precision}) is not used: "
                       f"{_reason(got)}.")
        return None
    return got
