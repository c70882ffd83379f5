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


def _concat(states: list):
    """Join backbone states of several groups of samples along the batch dimension."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(states)
    if isinstance(first, (list, tuple)):
        return type(first)(_concat([s[i] for s in states]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([s[k] for s in states]) for k in first}
    return first  # counters (RANet's flow and block) are the same for every sample at one exit


def _exit_step(model, k: int, state, previous, threshold: float):
    """Block k and exit k for the samples in `state`: (exit logits, confidence, leave mask, state after block k)."""
    backbone = model.backbone
    state = backbone.run_block(k, state)
    f = backbone.run_head(k, state)
    exit_logits = f if previous is None else f + model.reweight * previous
    conf = exit_logits.softmax(-1).max(-1).values
    if k == model.num_exits - 1:
        leave = torch.ones_like(conf, dtype=torch.bool)
    else:
        leave = conf.double() >= threshold
    return exit_logits, conf, leave, state


class _EvalMode:
    """Eval mode for the duration of a call; switching walks every module, so only when needed."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        if self.was_training:
            self.model.eval()

    def __exit__(self, *exc):
        if self.was_training:
            self.model.train()


@torch.inference_mode()
def predict_early(model, x: torch.Tensor, thresholds) -> EarlyExit:
    """Exit each sample at the first exit whose confidence reaches its threshold (the last exit takes the rest)."""
    n_exits = model.num_exits
    t = check_thresholds(thresholds, n_exits).tolist()
    device, b = x.device, x.shape[0]
    exit_index = torch.full((b,), n_exits - 1, dtype=torch.long, device=device)
    logits = torch.zeros(b, model.backbone.cfg.num_classes, device=device)
    confidence = torch.zeros(b, device=device)
    exit_conf = torch.full((n_exits, b), float("nan"), device=device)
    active = torch.arange(b, device=device)       # original positions of the samples still running
    state, previous = x, None
    with _EvalMode(model):
        for k in range(n_exits):
            exit_logits, conf, leave, state = _exit_step(model, k, state, previous, t[k])
            exit_conf[k, active] = conf
            if leave.all():
                exit_index[active], logits[active], confidence[active] = k, exit_logits, conf
                break
            if leave.any():
                gone, keep = active[leave], ~leave
                exit_index[gone], logits[gone], confidence[gone] = k, exit_logits[leave], conf[leave]
                active, previous, state = active[keep], exit_logits[keep], _select(state, keep)
            else:
                previous = exit_logits
            state = model.backbone.continue_state(k, state)
    macs = torch.tensor(model.macs, dtype=torch.float64, device=device)[exit_index]
    return EarlyExit(exit_index, logits, confidence, macs, exit_conf)


@torch.inference_mode()
def predict_early_stream(model, batches, thresholds, batch_size: int | None = None) -> EarlyExit:
    """Early exit over a stream of input batches, pooling the samples that continue across batches.

    Samples that do not exit at block k wait in a queue for block k+1 until `batch_size` of them (default: the
    size of the first batch) are there, so every block runs on full batches and the cost per sample follows the
    MACs actually needed. Results are per sample, in input order, identical to `predict_early`'s.
    """
    n_exits = model.num_exits
    t = check_thresholds(thresholds, n_exits).tolist()
    queues: list[list] = [[] for _ in range(n_exits)]   # per block: [(sample ids, state before the block, F so far)]
    done: dict[str, list] = {"ids": [], "exit": [], "logits": [], "conf": []}
    conf_rows: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    next_id = 0

    def waiting(k):
        return sum(len(ids) for ids, _, _ in queues[k])

    def run(k, size):
        chunks, queues[k] = queues[k], []
        ids = torch.cat([c[0] for c in chunks])
        state = _concat([c[1] for c in chunks])
        previous = None if chunks[0][2] is None else torch.cat([c[2] for c in chunks])
        if len(ids) > size:  # run `size` now, put the rest back in front
            rest = torch.arange(size, len(ids))
            queues[k].append((ids[size:], _select(state, rest), None if previous is None else previous[size:]))
            head = torch.arange(size)
            ids, state, previous = ids[:size], _select(state, head), None if previous is None else previous[:size]
        exit_logits, conf, leave, state = _exit_step(model, k, state, previous, t[k])
        conf_rows.append((k, ids, conf))
        if leave.any():
            done["ids"].append(ids[leave]); done["exit"].append(torch.full((int(leave.sum()),), k))
            done["logits"].append(exit_logits[leave]); done["conf"].append(conf[leave])
        if not leave.all():
            keep = ~leave
            queues[k + 1].append((ids[keep], model.backbone.continue_state(k, _select(state, keep)), exit_logits[keep]))

    with _EvalMode(model):
        for x in batches:
            size = batch_size or len(x)
            queues[0].append((torch.arange(next_id, next_id + len(x)), x, None))
            next_id += len(x)
            for k in range(n_exits):
                while waiting(k) >= size:
                    run(k, size)
        for k in range(n_exits):  # end of the stream: flush whatever waits, in block order
            while waiting(k):
                run(k, size)
    order = torch.cat(done["ids"]).argsort()
    exit_index = torch.cat(done["exit"])[order]
    exit_conf = torch.full((n_exits, next_id), float("nan"))
    for k, ids, conf in conf_rows:
        exit_conf[k, ids] = conf.cpu()
    macs = torch.tensor(model.macs, dtype=torch.float64)[exit_index]
    return EarlyExit(exit_index, torch.cat(done["logits"])[order], torch.cat(done["conf"])[order], macs, exit_conf)


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
