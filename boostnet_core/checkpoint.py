"""Checkpoint folders: `model.safetensors` (weights) + `model.json` (everything needed to rebuild and use them).

The names of every file a checkpoint folder may hold are defined here and nowhere else. Nothing is ever unpickled.
model.json records the sha256 of the weights file, so a truncated, swapped or tampered file is caught before it is
read. Training state for `--resume` lives beside them in `train_state.safetensors`
(weights, optimizer momentum and the loop's counters in its metadata), written atomically in one file.
Every file is written to a temporary name in the same folder, then renamed over the old one (atomic.py).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import atomic_write_json, temp_beside
from .boosting import BoostNet
from .errors import CheckpointError
from .weights import FORMAT   # "boostnet-checkpoint/1": in model.json and every safetensors file
from .factory import model_from_meta

WEIGHTS = "model.safetensors"          # the trained weights
META = "model.json"                    # what rebuilds them: architecture, data conventions, recipe, metrics
TRAIN_STATE = "train_state.safetensors"  # weights, momentum and loop counters for --resume
LOG = "train_log.jsonl"                # one JSON line per finished epoch
CACHE = "eval_cache.safetensors"       # per-sample, per-exit predictions of the validation and test splits
RESULTS = "evaluation.json"            # anytime and budgeted-batch results (boostnet evaluate)
# A model.json or a safetensors header larger than these is no BoostNet checkpoint (the shipped ones hold a few KB).
MAX_META_BYTES = 10_000_000
MAX_HEADER_BYTES = 16_000_000


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    fd, tmp = temp_beside(path)
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # safetensors recreates the file with private permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_meta(model: BoostNet) -> dict:
    """The metadata that rebuilds `model`: architecture, data conventions, method and costs."""
    return dict(model.meta, method=model.method, reweight=model.reweight, grad_rescale=model.backbone.grad_rescale,
                macs=model.macs, num_exits=model.num_exits)


def save_model(model: BoostNet, folder: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write weights then metadata (with the weights' hash) into `folder`, creating it if needed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    atomic_save_tensors(weights, model.state_dict(), {"format": FORMAT})
    meta = dict(model_meta(model), **(extra or {}))
    meta.update(format=FORMAT, weights_sha256=sha256_of(weights))
    atomic_write_json(folder / META, meta)
    model.meta["weights_sha256"] = meta["weights_sha256"]   # the model in memory now is what this folder holds
    return folder


def read_meta(folder: str | os.PathLike) -> dict:
    """model.json of a checkpoint folder, checked to be ours."""
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(f"Checkpoint folder {str(folder)!r} does not exist; pass a folder written by 'boostnet train'.")
    if not folder.is_dir():
        raise CheckpointError(f"{str(folder)!r} is a file, not a checkpoint folder; pass the folder that holds {META} and {WEIGHTS}.")
    path = folder / META
    if not path.is_file():
        raise CheckpointError(f"{str(folder)!r} is not a checkpoint folder: {META} is missing.")
    if path.stat().st_size > MAX_META_BYTES:
        raise CheckpointError(f"{str(path)!r} is {path.stat().st_size:,} bytes, too large for a BoostNet {META}.")
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({e}); the file is corrupt or not a BoostNet checkpoint.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a BoostNet checkpoint (expected \"format\": \"{FORMAT}\").")
    for key in ("arch", "config", "method", "reweight", "input_size", "mean", "std", "weights_sha256"):
        if key not in meta:
            raise CheckpointError(f"{str(path)!r} lacks the field {key!r}; the file was edited or is incomplete.")
    return meta


def data_key(meta: dict) -> str:
    """Which data a checkpoint was trained on, for grouping models that can be compared (the data set, and the
    folder name for folder data sets): "cifar10", "folder:cifar10-jpg", "mnist5k"."""
    data = meta.get("data") or {}
    dataset = data.get("dataset") or meta.get("preset") or "unknown"
    root = data.get("data_root")
    return f"{dataset}:{Path(root).name}" if dataset == "folder" and root else dataset


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> BoostNet:
    """Rebuild the exact model saved in a checkpoint folder, in eval mode, on `device`.

    Nothing is allocated before model.json has been checked against the weights file: its sizes are bounded
    (models/limits.py, factory.check_meta), the network is laid out on torch's meta device (shapes, no memory), and
    its tensor names and shapes must equal those of the safetensors header, read alone. Only then are the weights
    read, and they become the model's tensors.
    """
    folder = Path(path)
    meta = read_meta(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{str(folder)!r} is not a complete checkpoint: {WEIGHTS} is missing.")
    try:
        with torch.device("meta"):  # thread-local: other threads keep allocating as usual
            model = model_from_meta(meta)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{str(folder / META)!r} describes a model that cannot be built: {e}") from None
    if sha256_of(weights) != meta["weights_sha256"]:
        raise CheckpointError(f"{str(weights)!r} does not match the hash recorded in {META}: it was truncated, replaced or modified.")
    _check_fits({k: (_DTYPES.get(v.dtype), tuple(v.shape)) for k, v in model.state_dict().items()},
                read_header(weights), weights)
    model.load_state_dict(load_tensors(weights), assign=True)
    model.backbone.grad_rescale = False  # a training-only device; inference never needs it
    return model.to(device).eval()


# safetensors' names of the dtypes a BoostNet holds (float weights, BatchNorm's int64 step counter)
_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
           torch.int64: "I64"}


def _raw_header(path: Path) -> dict:
    """The JSON header of a safetensors file, read alone (bounded in size; no tensor is read)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= MAX_HEADER_BYTES:
                raise ValueError(f"its header would be {size:,} bytes")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        return header
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file ({e}).") from None


def read_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) of every tensor in a safetensors file, from its header alone (no tensor is read)."""
    header = _raw_header(path)
    try:
        return {name: (str(entry["dtype"]), tuple(int(n) for n in entry["shape"]))
                for name, entry in header.items() if name != "__metadata__"}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file ({e}).") from None


def read_tensor_metadata(path: Path) -> dict[str, str]:
    """The string metadata a safetensors file was saved with ({} when it has none)."""
    metadata = _raw_header(path).get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file ({e}).") from None


def _check_fits(expected: dict, found: dict, path: Path) -> None:
    """The tensors of a file (`found`: name -> shape, or (dtype, shape)) are exactly those a model expects."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape or dtype", wrong)) if keys
        )
        raise CheckpointError(f"{str(path)!r} does not fit the architecture in {META} ({detail}).")


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    _check_fits({k: v.shape for k, v in model.state_dict().items()}, {k: v.shape for k, v in state.items()}, path)
    model.load_state_dict(state)


def save_training_state(folder: Path, model: BoostNet, optimizer: torch.optim.Optimizer, counters: dict) -> None:
    """One file with everything `--resume` needs: weights, momentum buffers, and the loop's counters as JSON."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{names[id(p)]}"] = buf
    atomic_save_tensors(Path(folder) / TRAIN_STATE, tensors, {"format": FORMAT, "counters": json.dumps(counters, allow_nan=False)})


def load_training_state(folder: Path, model: BoostNet, optimizer: torch.optim.Optimizer) -> dict:
    """Restore weights and momentum from `folder`; returns the saved counters."""
    path = Path(folder) / TRAIN_STATE
    if not path.is_file():
        raise CheckpointError(f"Nothing to resume in {str(folder)!r}: {TRAIN_STATE} is missing; start without --resume.")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        counters = json.loads(header.get("counters", "null"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{str(path)!r} is not a readable training state ({e}).") from None
    if header.get("format") != FORMAT or not isinstance(counters, dict):
        raise CheckpointError(f"{str(path)!r} is not a BoostNet training state.")
    tensors = load_tensors(path)
    device = next(model.parameters()).device
    _load_state(model, {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith("momentum."):
            name = key[len("momentum."):]
            if name not in params:
                raise CheckpointError(f"{str(path)!r} holds momentum for an unknown parameter {name!r}.")
            optimizer.state[params[name]]["momentum_buffer"] = value.to(device)
    return counters
