"""One image at a time: preprocessing of user images, per-sample traces, and predictions for image files.

A trace is everything the app shows about one input: every head's raw logits f_i, each head's additive
contribution w^(n-i) f_i to every exit F_n, each exit's softmax and top classes, each exit's score under an exit
criterion (criteria.py; `rescore` switches criterion without running the model again), and the exit taken at a
threshold.
Real early exit itself lives in early_exit.py.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .boosting import ensemble
from .criteria import get_criterion
from .data import IN_MEMORY_MAX_SIZE, decode_to_array, normalize, open_image, resize_center_crop
from .early_exit import predict_early
from .engines import engine_for, engine_name
from .errors import DataError
from .factory import input_channels
from .models.stepwise import eval_mode, iter_exits
from .thresholds import assign_exits, check_thresholds

__all__ = ["at_threshold", "predict_files", "preprocess_image", "rescore", "trace"]


# ---------------------------------------------------------------- preprocessing


def preprocess_image(image, meta: dict) -> torch.Tensor:
    """A PIL image (any mode, size, EXIF orientation) or a path / file object -> the model's input [C, H, W].

    Exactly the test transform of the model's data: small inputs are resized to the input size (as the data loader
    decodes them), large ones get the ImageNet resize + centre crop; then the data set's mean/std.
    """
    from PIL import Image, ImageOps
    in_channels, size = input_channels(meta), meta["input_size"]
    img = image if isinstance(image, Image.Image) else open_image(image)
    if isinstance(image, Image.Image):
        img = ImageOps.exif_transpose(img)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = _flatten_alpha(img)
    if size > IN_MEMORY_MAX_SIZE:
        img = resize_center_crop(img.convert("L" if in_channels == 1 else "RGB"), size)
    arr = decode_to_array(img, size, in_channels)
    return normalize(torch.from_numpy(np.array(arr))[None], meta["mean"], meta["std"])[0]


def _flatten_alpha(img):
    """Transparent pixels become white, the usual background of uploaded drawings and icons."""
    from PIL import Image
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


# ---------------------------------------------------------------- traces


@torch.inference_mode()
def trace(model, x: torch.Tensor, threshold=0.9, top_k: int = 5, fast: bool = True, criterion=None, *,
          engine=None) -> dict:
    """Everything about one input [C, H, W]: every head's raw logits, each head's contribution w^(n-i) f_i to
    every exit, each exit's softmax and top-k classes, each exit's score under `criterion` (None: max-softmax),
    the exit taken at `threshold`, and its MACs. engine: as for predict_early (None: the model's default engine;
    fast=False: eager); `engine` in the result names what ran."""
    backbone = engine_for(model, engine, fast)
    start = time.perf_counter()
    with eval_mode(model):
        heads = backbone.head_logits(x[None]) if fast else [s.head_logits for s in iter_exits(backbone, x[None])]
    seconds = time.perf_counter() - start   # wall time of every exit, to show beside MACs (they differ)
    n = model.num_exits
    exits = [F[0] for F in ensemble(heads, model.reweight)]
    probs = [F.softmax(-1) for F in exits]
    k = min(top_k, exits[0].numel())
    classes = model.classes
    result = {
        "head_logits": torch.stack([h[0] for h in heads]),                             # [N, C]
        "contributions": [model.contributions([h[0] for h in heads], e) for e in range(n)],  # e -> [e+1, C]
        "exit_logits": torch.stack(exits),                                           # [N, C]
        "probabilities": torch.stack(probs),                                         # [N, C]
        "confidence": torch.stack([p.max() for p in probs]),                         # [N]
        "top_k": [[(classes[i], float(p[i])) for i in p.topk(k).indices.tolist()] for p in probs],
        "full_macs": model.macs[-1],
        "engine": engine_name(backbone),
        "seconds": seconds,
    }
    return at_threshold(rescore(result, criterion), model, threshold)


def rescore(trace_result: dict, criterion=None) -> dict:
    """A trace with every exit's score under `criterion` (a name or a Criterion; None: max-softmax) in "scores",
    its name in "criterion" and its range in "score_range", without running the model again."""
    criterion = get_criterion(criterion)
    scores = criterion.scores(trace_result["exit_logits"][:, None])[:, 0]
    return dict(trace_result, scores=scores, criterion=criterion.name, score_range=criterion.score_range)


def at_threshold(trace_result: dict, model, threshold) -> dict:
    """A trace's threshold-dependent fields (exit taken, its label and MACs) for another threshold (on the trace's
    criterion scores), without running the model again: a new dict sharing the rest."""
    score_range = trace_result.get("score_range", (0.0, 1.0))
    t = check_thresholds(threshold, model.num_exits, score_range)
    scores = trace_result.get("scores", trace_result["confidence"])
    taken = int(assign_exits(scores[:, None], t, score_range)[0])
    return dict(trace_result, exit_index=taken, label=model.classes[int(trace_result["probabilities"][taken].argmax())],
                macs=model.macs[taken], cost_ratio=model.macs[taken] / model.macs[-1],   # MACs, not wall time
                thresholds=t.tolist())


def predict_files(model, paths, threshold, fast: bool = True, criterion=None, *,
                  engine=None) -> list[dict]:
    """Early-exit predictions for image files, one dict per file in the order given (see `boostnet predict --json`);
    with a criterion other than max-softmax each dict also holds the criterion, its score and its per-exit scores.
    A file that cannot be read as an image gets {"image", "error"} (one sentence) and the others still run.
    threshold: as for predict_early (one, one per exit, or a Certificate)."""
    device = next(model.parameters()).device
    rows: list[dict] = [{"image": str(path)} for path in paths]
    inputs, readable = [], []
    for i, path in enumerate(paths):
        try:
            inputs.append(preprocess_image(path, model.meta))
            readable.append(i)
        except DataError as e:
            rows[i]["error"] = str(e)
    if not readable:
        return rows
    result = predict_early(model, torch.stack(inputs).to(device), threshold, fast, criterion=criterion, engine=engine)
    classes = model.classes
    for j, i in enumerate(readable):
        k = int(result.exit_index[j])
        rows[i].update({"exit_index": k, "label": classes[int(result.logits[j].argmax())],
                        "confidence": float(result.confidence[j]), "macs": float(result.macs[j]),
                        "exit_confidences": [float(c) for c in result.exit_confidences[: k + 1, j]],
                        "engine": result.engine})
        if result.criterion != "max_softmax":
            rows[i].update(criterion=result.criterion, score=float(result.scores[j]),
                           exit_scores=[float(c) for c in result.exit_scores[: k + 1, j]])
    return rows
