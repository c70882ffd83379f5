"""Real early-exit inference, per-sample traces, and preprocessing of user images.

`predict_early` computes blocks only for samples that are still undecided: after each exit the samples whose
confidence reached the threshold leave the batch, and the backbone state is cut down to the rest, so no work is
spent on exited samples. The authors' code runs every exit for every sample and simulates the exits (PAPER.md s. 6).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import IN_MEMORY_MAX_SIZE, decode_to_array, normalize, open_image, resize_center_crop
from .evaluation import check_thresholds


@dataclass
class EarlyExit:
    exit_index: torch.Tensor       # int64 [B], 0-based
    logits: torch.Tensor           # [B, C]: F at the exit
    confidence: torch.Tensor       # [B]: max softmax of F at the exit
    macs: torch.Tensor             # float64 [B]: cumulative MACs actually spent
    exit_confidences: torch.Tensor  # [N_exits, B]: confidence at every exit computed (nan beyond the exit)


def _select(state, keep: torch.Tensor):
    """The backbone state restricted to the samples in `keep` (batch dimension first everywhere)."""
    if isinstance(state, torch.Tensor):
        return state[keep]
    if isinstance(state, list):
        return [_select(s, keep) for s in state]
    if isinstance(state, tuple):
        return tuple(_select(s, keep) for s in state)
    if isinstance(state, dict):
        return {k: _select(v, keep) for k, v in state.items()}
    return state


@torch.inference_mode()
def predict_early(model, x: torch.Tensor, thresholds) -> EarlyExit:
    """Exit each sample at the first exit whose confidence reaches its threshold (the last exit takes the rest)."""
    n_exits = model.num_exits
    t = check_thresholds(thresholds, n_exits).tolist()
    was_training = model.training
    if was_training:  # switching modes walks every module: only when needed (it dominates at batch 1)
        model.eval()
    backbone, w, device = model.backbone, model.reweight, x.device
    b = x.shape[0]
    num_classes = backbone.cfg.num_classes
    exit_index = torch.full((b,), n_exits - 1, dtype=torch.long, device=device)
    logits = torch.zeros(b, num_classes, device=device)
    confidence = torch.zeros(b, device=device)
    exit_conf = torch.full((n_exits, b), float("nan"), device=device)
    active = torch.arange(b, device=device)       # original positions of the samples still running
    state, previous = x, None
    for k in range(n_exits):
        state = backbone.run_block(k, state)
        f = backbone.run_head(k, state)
        exit_logits = f if previous is None else f + w * previous
        conf = exit_logits.softmax(-1).max(-1).values
        exit_conf[k, active] = conf
        leave = conf.double() >= t[k] if k < n_exits - 1 else torch.ones_like(conf, dtype=torch.bool)
        if leave.any():
            gone = active[leave]
            exit_index[gone], logits[gone], confidence[gone] = k, exit_logits[leave], conf[leave]
        if leave.all():
            break
        if leave.any():
            keep = ~leave
            active, previous, state = active[keep], exit_logits[keep], _select(state, keep)
        else:
            previous = exit_logits
        state = backbone.continue_state(k, state)
    if was_training:
        model.train()
    macs = torch.tensor(model.macs, dtype=torch.float64, device=device)[exit_index]
    return EarlyExit(exit_index, logits, confidence, macs, exit_conf)


# ---------------------------------------------------------------- preprocessing


def preprocess_image(image, meta: dict) -> torch.Tensor:
    """A PIL image (any mode, size, EXIF orientation) or a path / file object -> the model's input [C, H, W].

    Exactly the test transform of the model's data: small inputs are resized to the input size (as the data loader
    decodes them), large ones get the ImageNet resize + centre crop; then the data set's mean/std.
    """
    from PIL import Image, ImageOps
    in_channels, size = len(meta["mean"]), meta["input_size"]
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
def trace(model, x: torch.Tensor, threshold=0.9, top_k: int = 5) -> dict:
    """Everything about one input [C, H, W]: every head's raw logits, each head's contribution w^(n-i) f_i to
    every exit, each exit's softmax and top-k classes, the exit taken at `threshold`, and its MACs."""
    if model.training:
        model.eval()
    heads = model.head_logits(x[None])
    n = model.num_exits
    t = check_thresholds(threshold, n)
    from .boosting import ensemble
    exits = [F[0] for F in ensemble(heads, model.reweight)]
    probs = [F.softmax(-1) for F in exits]
    conf = torch.stack([p.max() for p in probs])
    passed = conf.double() >= t
    passed[-1] = True
    taken = int(passed.to(torch.uint8).argmax())
    k = min(top_k, exits[0].numel())
    classes = model.meta.get("classes") or [str(i) for i in range(exits[0].numel())]
    return {
        "head_logits": torch.stack([h[0] for h in heads]),                             # [N, C]
        "contributions": [model.contributions([h[0] for h in heads], e) for e in range(n)],  # e -> [e+1, C]
        "exit_logits": torch.stack(exits),                                           # [N, C]
        "probabilities": torch.stack(probs),                                         # [N, C]
        "confidence": conf,                                                          # [N]
        "top_k": [[(classes[i], float(p[i])) for i in p.topk(k).indices.tolist()] for p in probs],
        "exit_index": taken,
        "label": classes[int(probs[taken].argmax())],
        "macs": model.macs[taken],
        "full_macs": model.macs[-1],
        "thresholds": t.tolist(),
    }


def predict_files(model, paths, threshold) -> list[dict]:
    """Early-exit predictions for image files, one dict per file (see `boostnet predict --json`)."""
    device = next(model.parameters()).device
    inputs = torch.stack([preprocess_image(p, model.meta) for p in paths]).to(device)
    result = model.predict_early(inputs, threshold)
    classes = model.meta.get("classes") or [str(i) for i in range(result.logits.shape[1])]
    rows = []
    for i, path in enumerate(paths):
        k = int(result.exit_index[i])
        rows.append({"image": str(path), "exit_index": k, "label": classes[int(result.logits[i].argmax())],
                     "confidence": float(result.confidence[i]), "macs": float(result.macs[i]),
                     "exit_confidences": [float(c) for c in result.exit_confidences[: k + 1, i]]})
    return rows
