"""What preparing engines leaves on disk for the next process: per set of weights, the model's ONNX graphs (exporting
and joining them takes 1-2 s, importing onnx alone 0.9 s) and the auto engine's picks per use, so that `boostnet
predict` on a few files, an evaluation or the app's first image pays for exporting and measuring once per machine,
not at every start (figures in docs/engines.md).

Kept in $BOOSTNET_CACHE/engines (default ~/.cache/boostnet/engines; BOOSTNET_ENGINE_CACHE=off keeps nothing), one
folder per set of weights, named by a hash of all that the graphs depend on (`weights_key`); the picks' file name
adds the precision, torch's thread count and the runtimes' versions. A stale entry is never read; a folder that
cannot be written, or a file that cannot be read, only costs the work again (two processes measuring at once may
each keep only their own picks). Nothing is ever removed: delete the folder to free the space (about 17 MB per
CIFAR-10 model) or to have auto measure afresh (a pick measured on a busy machine stays until then).
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path

import torch

from ..atomic import atomic_write_bytes, atomic_write_json
from ..data.cache import cache_dir
from ..weights import per_weights

OFF = ("off", "0", "no", "false")


def _versions(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    out = []
    for name in names:
        try:
            out.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            out.append(f"{name}=none")
    return ",".join(out)


def weights_key(model) -> str:
    """A hash of what the exported graphs depend on: every parameter and buffer (bytes, shape, dtype), the backbone's
    class and configuration, the input shape (fixed in the graphs but for the batch), the boosting weight w (in the
    early-exit graph), the code that makes the graphs (onnx_graphs.py) and the versions of torch and onnx. Worked out
    once per set of weights (the disk entry and the in-process export memo both ask for it)."""
    return per_weights(model, "engine_key", _weights_key)


def _weights_key(model) -> str:
    digest = hashlib.sha256(f"{type(model.backbone).__name__}|{model.backbone.cfg!r}|{tuple(model.input_shape)}|"
                            f"w={model.reweight!r}|{_versions('torch', 'onnx')}".encode())
    digest.update(Path(__file__).with_name("onnx_graphs.py").read_bytes())   # the code that makes the graphs
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def _well_formed(pick) -> bool:
    """{"engine": name, "seconds": {name: number}, "measured": {...}} as keep_pick writes it, and for early exit
    "exit_plan": {"engine": name, "one_graph_by_exit": [number, ...], "whole_then_choose": number}."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def plan_ok(plan):   # seconds > 0: the plan divides by none, but a zero would pick one plan for ever
        return (isinstance(plan, dict) and isinstance(plan.get("engine"), str)
                and isinstance(plan.get("one_graph_by_exit"), list) and len(plan["one_graph_by_exit"]) > 0
                and all(number(s) and s > 0 for s in plan["one_graph_by_exit"] + [plan.get("whole_then_choose")]))
    if not isinstance(pick, dict) or not isinstance(pick.get("engine"), str):
        return False
    seconds, measured = pick.get("seconds", {}), pick.get("measured", {})
    return (isinstance(seconds, dict) and isinstance(measured, dict) and all(map(number, seconds.values()))
            and ("exit_plan" not in pick or plan_ok(pick["exit_plan"])))


class EngineCache:
    """The disk entry of one model's weights (or a no-op when the cache is off)."""

    def __init__(self, model):
        self._model_ref = weakref.ref(model)   # held weakly, as the engine registry holds models
        self._folder: Path | None | bool = False   # False: not worked out yet (hashing the weights waits for a use)

    @property
    def folder(self) -> Path | None:
        """This entry's folder, or None when the cache is off or has no place on this machine."""
        if self._folder is False:
            model = self._model_ref()
            if os.environ.get("BOOSTNET_ENGINE_CACHE", "").lower() in OFF or model is None:
                self._folder = None
            else:
                try:
                    self._folder = cache_dir() / "engines" / weights_key(model)
                except (OSError, RuntimeError):   # no home folder (a container's anonymous user): no cache
                    self._folder = None
        return self._folder

    def graph(self, name: str) -> bytes | None:
        """The serialized ONNX graph `name` kept for these weights, or None."""
        if self.folder is None:
            return None
        try:
            return (self.folder / f"{name}.onnx").read_bytes() or None
        except OSError:
            return None

    def keep_graph(self, name: str, data: bytes) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.folder / f"{name}.onnx", data)   # a reader sees the whole file or none
        except OSError:
            pass

    def _picks_file(self, precision: str) -> Path | None:
        if self.folder is None:
            return None
        runtimes = hashlib.sha256(_versions("onnxruntime", "openvino").encode()).hexdigest()[:12]
        return self.folder / f"auto-{precision}-{torch.get_num_threads()}threads-{runtimes}.json"

    def picks(self, precision: str) -> dict:
        """use/mode -> {"engine": name, "seconds": {candidate: seconds}, "measured": {when, where, load}} as auto
        measured them on this machine (engines/auto.py; `boostnet engines CKPT` shows them)."""
        path = self._picks_file(precision)
        try:
            found = json.loads(path.read_text()) if path is not None else {}
        except (OSError, ValueError):
            return {}
        if not isinstance(found, dict):
            return {}
        return {use: pick for use, pick in found.items() if _well_formed(pick)}   # a damaged entry is measured again

    def keep_pick(self, precision: str, use: str, mode: str, engine: str, seconds: dict | None,
                  measured: dict | None = None, exit_plan: dict | None = None) -> None:
        """The one writer of the picks table: one use's pick, its timings and the conditions it was measured under
        (and, for early exit, the costs its plan weighs: auto.ExitPlan)."""
        path = self._picks_file(precision)
        if path is None:
            return
        picks = self.picks(precision)
        picks[f"{use}/{mode}"] = {"engine": engine, "seconds": seconds or {}, "measured": measured or {}}
        if exit_plan is not None:
            picks[f"{use}/{mode}"]["exit_plan"] = exit_plan
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, picks)
        except OSError:
            pass
