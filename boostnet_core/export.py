"""`boostnet export CHECKPOINT --format onnx --out DIR`: a model as ONNX files and a manifest, to serve without torch.

DIR holds:
- model.onnx: the whole network, images "x" -> every head's raw logits f0..f{N-1} (anytime inference);
- exit{k}.onnx: piece k, block k and head k (onnx_graphs.py): the state of block k-1 (x for k = 0) -> f{k} and the
  state for block k+1, for an early-exit loop that stops running pieces once a sample is sure enough;
- early_exit.onnx: max-softmax early exit in one graph (x, thresholds -> ids{k}, F{k}, conf{k} per exit);
- manifest.json: classes, preprocessing, input size, the ensemble weight w (F_k = f_k + w F_{k-1}), MACs per exit
  (cumulative), every file's inputs and outputs, thresholds when given (null: no exit here) and the certificate they come from.
The folder is written next to DIR and renamed into place, so a reader sees the old export or the new one, whole.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from .data import IN_MEMORY_MAX_SIZE
from .engines.onnx_graphs import OPSET, early_exit_graph, export_pieces, join_pieces
from .errors import ArgumentError
from .factory import input_channels
from .thresholds import check_thresholds, thresholds_to_json

MANIFEST = "manifest.json"


def _resize_rule(size: int) -> str:
    """The test transform of inference.preprocess_image, in words."""
    if size > IN_MEMORY_MAX_SIZE:
        return f"shorter side to {round(size * 256 / 224)} px (bilinear), then the centre {size} x {size}"
    return f"resize to {size} x {size} (bilinear)"


def _io(proto) -> dict:
    return {"inputs": [i.name for i in proto.graph.input], "outputs": [o.name for o in proto.graph.output]}


def export_onnx(model, out, thresholds=None, source: str | None = None, certificate=None) -> dict:
    """Write the ONNX files and manifest of `model` to folder `out` (atomically) and return the manifest.

    thresholds: one or one per exit (None: no exit here), recorded in the manifest (JSON null for no exit here).
    certificate: a Certificate (certificate.py) instead: its thresholds and guarantee go into the manifest; refused
    for other weights, and for a criterion other than max-softmax (the exported exit rule is max-softmax's).
    """
    import onnx
    out = Path(out)
    certified = None
    if certificate is not None:
        if thresholds is not None:
            raise ArgumentError("Give thresholds or a certificate to export, not both.")
        certificate.check_model(model)
        if certificate.criterion != "max_softmax":
            raise ArgumentError(f"The exported early-exit rule is max-softmax, and this certificate is for the "
                                f"{certificate.criterion} criterion; calibrate with --criterion max_softmax to export.")
        thresholds = list(certificate.thresholds)
        certified = {k: certificate.record.get(k) for k in ("risk", "epsilon", "delta", "guarantee", "criterion",
                                                            "weights_sha256", "cache_sha256", "calibration")}
    if thresholds is not None:
        thresholds = thresholds_to_json(check_thresholds(thresholds, model.num_exits))
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise ArgumentError(f"{out} exists and is not an earlier export; choose a new or empty folder for --out.")
    pieces = export_pieces(model)   # ArgumentError for a backbone without an ONNX form (RANet)
    meta = model.meta
    files = {"model.onnx": join_pieces(pieces)}
    files.update({f"exit{k}.onnx": onnx.load_from_string(p) for k, p in enumerate(pieces)})
    files["early_exit.onnx"] = early_exit_graph(pieces, model.reweight, model.num_classes)
    manifest = {
        "format": "boostnet-onnx/1", "opset": OPSET, "source": source,
        "classes": list(model.classes), "num_exits": model.num_exits, "w": float(model.reweight),
        "macs": [float(m) for m in model.macs],
        "preprocessing": {"input_size": meta["input_size"], "channels": input_channels(meta), "layout": "NCHW float32",
                          "scale": "pixel / 255", "mean": list(meta["mean"]), "std": list(meta["std"]),
                          "resize": _resize_rule(meta["input_size"])},
        "exit_rule": "F_k = f_k + w * F_{k-1}; leave at the first exit k with max softmax(F_k) >= thresholds[k]; "
                     "the last exit takes the rest",
        "whole": dict(file="model.onnx", **_io(files["model.onnx"])),
        "pieces": [dict(file=f"exit{k}.onnx", **_io(files[f"exit{k}.onnx"])) for k in range(model.num_exits)],
        "early_exit": dict(file="early_exit.onnx", **_io(files["early_exit.onnx"])),
        "thresholds": thresholds,   # null: no exit here
        "certificate": certified,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _new_folder(out.parent, f".{out.name}.")
    try:
        for name, proto in files.items():
            (staging / name).write_bytes(proto.SerializeToString())
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest



def _new_folder(parent: Path, prefix: str) -> Path:
    """A new empty folder in `parent` with the process's umask applied (os.mkdir's mode is masked by it; mkdtemp
    would make it private, 0o700, and an export folder is meant to be shared like any other)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
