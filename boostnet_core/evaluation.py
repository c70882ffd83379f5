"""Running a model over a data split, anytime and budgeted-batch results, and the evaluation cache of a checkpoint.

- Anytime (arXiv 2211.16726, section 4, experiments; docs/method.md): top-1 and top-5 of F_k at every exit over a whole split,
  streamed in batches (memory grows only with one confidence, prediction and top-5 flag per sample and exit).
- Budgeted batch: thresholds fitted on the held-out validation split, applied to the test split (thresholds.py holds
  the protocol).
- The cache: every sample's per-exit confidence (max-softmax), prediction and top-5 hit for the validation and test
  splits, in CHECKPOINT/eval_cache.safetensors, so the app and the reports never recompute what a file already
  holds; and the exit logits F_k in float32 (what early exit scores) for models with up to `LOGITS_MAX_CLASSES`
  classes, from which every exit criterion is scored (criteria.score_cache). Above that the logits are not kept
  (docs/criteria.md). The cache records the SHA-256 of the weights it was computed from, and `load_cache` refuses a
  cache computed from other weights than the folder's, so nothing (calibrate, the app, a certificate) is ever
  computed from the predictions of weights that are gone.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .atomic import atomic_write_json
from .checkpoint import (CACHE, RESULTS, WEIGHTS, atomic_save_tensors, load_model, load_tensors,
                         read_meta, read_tensor_metadata)
from .data import FileImages, FileSet, ImageSet, load_dataset, normalize
from .errors import ArgumentError, CheckpointError, DataError
from .factory import input_channels
from .boosting import ensemble
from .criteria import softmax_top
from .engines import engine_for
from .models.stepwise import eval_mode, iter_exits
from .thresholds import (ExitPredictions, assign_exits, budgeted_curve, exit_outcome, fit_thresholds, fit_to_budget,
                         thresholds_to_json)

# fit_thresholds and assign_exits live in thresholds.py; they are named here too because the project's public surface
# has always offered them as evaluation.fit_thresholds and evaluation.assign_exits (docs/core.md). Every other
# threshold function is imported from thresholds.py.
__all__ = ["anytime_accuracy", "anytime_from", "assign_exits", "evaluate_checkpoint", "fit_thresholds", "load_cache",
           "predict_split", "save_cache", "upgrade_cache"]

# The cache keeps the exit logits F_k (float32) up to this many classes: 15,000 CIFAR-10 images x 5 exits x 10
# classes is 3 MB; ImageNet's 100,000 val + test images x 5 exits x 1,000 classes would be 2 GB.
LOGITS_MAX_CLASSES = 100


def _batches(data, meta: dict, batch_size: int, workers: int = 0):
    if isinstance(data, ImageSet):
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            yield normalize(data.images[sl], meta["mean"], meta["std"]), data.labels[sl]
    elif isinstance(data, FileSet):
        dataset = FileImages(data, meta["input_size"], input_channels(meta), meta["mean"], meta["std"], train=False)
        yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    else:
        raise TypeError(f"Cannot evaluate on {type(data).__name__}.")


@torch.inference_mode()
def predict_split(model, data, device="cpu", batch_size: int = 500, progress: bool = False,
                  fast: bool = True, *, engine=None) -> ExitPredictions:
    """Run every exit over a split, keeping only per-sample results, and the exit logits (float32) when the model
    has at most `LOGITS_MAX_CLASSES` classes. engine: an InferenceEngine, a name, or None for the model's default
    engine (engines/); fast=False: eager."""
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be at least 1, got {batch_size!r}.")
    keep_logits = model.num_classes <= LOGITS_MAX_CLASSES
    confs, preds, hits, labels, logits = [], [], [], [], []
    batches = _batches(data, model.meta, batch_size)
    if progress:
        from tqdm import tqdm
        batches = tqdm(batches, total=math.ceil(len(data) / batch_size), desc="evaluate", leave=False)
    backbone = engine_for(model, engine, fast)
    with eval_mode(model):
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            heads = backbone.head_logits(x) if fast else [s.head_logits for s in iter_exits(backbone, x)]
            exit_logits = torch.stack(ensemble(heads, model.reweight))  # [E, B, C]
            conf, pred = softmax_top(exit_logits)
            k = min(5, exit_logits.shape[-1])
            top5 = (exit_logits.topk(k, dim=-1).indices == y[None, :, None]).any(-1)
            confs.append(conf.float().cpu()); preds.append(pred.cpu()); hits.append(top5.cpu()); labels.append(y.cpu())
            if keep_logits:
                logits.append(exit_logits.float().cpu())
    return ExitPredictions(torch.cat(confs, 1), torch.cat(preds, 1), torch.cat(hits, 1), torch.cat(labels),
                           torch.cat(logits, 1) if keep_logits else None)


def anytime_from(predictions: ExitPredictions) -> dict:
    return {"top1": (predictions.correct().double().mean(1) * 100).tolist(),
            "top5": (predictions.top5.double().mean(1) * 100).tolist()}


def anytime_accuracy(model, data, device="cpu", batch_size: int = 500, fast: bool = True, *, engine=None) -> dict:
    """{"top1": [...], "top5": [...]} in percent, one value per exit."""
    return anytime_from(predict_split(model, data, device, batch_size, fast=fast, engine=engine))


# ---------------------------------------------------------------- checkpoint evaluation and its cache

def save_cache(folder, splits: dict[str, ExitPredictions], weights_sha256: str) -> None:
    """Per-exit confidences, predictions, top-5 hits, labels and (if kept) float32 exit logits of each split, in one
    safetensors file; its metadata records that `confidence` is the max-softmax criterion's score and the SHA-256 of
    the weights the splits were computed from (model.meta["weights_sha256"])."""
    tensors = {}
    for name, p in splits.items():
        if p.criterion != "max_softmax":
            raise ValueError(f"The cache holds max-softmax confidences; got scores of the {p.criterion} criterion.")
        tensors.update({f"{name}.confidence": p.confidence, f"{name}.prediction": p.prediction,
                        f"{name}.top5": p.top5.to(torch.uint8), f"{name}.labels": p.labels})
        if p.logits is not None:
            tensors[f"{name}.logits"] = p.logits.float()
    atomic_save_tensors(Path(folder) / CACHE, tensors, {"splits": ",".join(splits), "confidence": "max_softmax",
                                                        "weights_sha256": weights_sha256})


def load_cache(folder) -> dict[str, ExitPredictions]:
    """The cached splits of a checkpoint folder ({} when there is no cache).

    Refuses (CheckpointError) a cache computed from other weights than the folder's model.json names, and one that
    records no weights at all beside a weights file (written by an earlier version): re-evaluating makes it anew.
    A folder without weights (a study run kept for its statistics) has no model its cache could disagree with.
    """
    folder = Path(folder)
    path = folder / CACHE
    if not path.is_file():
        return {}
    recorded = read_tensor_metadata(path).get("weights_sha256")
    weights = read_meta(folder)["weights_sha256"]
    if recorded != weights and (recorded is not None or (folder / WEIGHTS).is_file()):
        found = ("records no weights hash (an earlier version wrote it), so it cannot be matched to"
                 if recorded is None else f"was computed from weights {recorded[:12]}..., not from")
        raise CheckpointError(f"The evaluation cache of {str(folder)!r} {found} this model's weights "
                              f"{weights[:12]}...; re-run 'boostnet evaluate {folder} --write'.")
    return _read_splits(path)


def _read_splits(path: Path, logits: bool = True) -> dict[str, ExitPredictions]:
    """The splits a cache file holds, as written by save_cache (logits=False: without the exit logits)."""
    t = load_tensors(path)
    return {n: ExitPredictions(t[f"{n}.confidence"], t[f"{n}.prediction"], t[f"{n}.top5"].bool(), t[f"{n}.labels"],
                               t[f"{n}.logits"].float() if logits and f"{n}.logits" in t else None)
            for n in sorted({k.split(".")[0] for k in t})}


def checkpoint_data(model, folder, dataset: str | None = None, data_root: str | None = None):
    """(data set name, whether it is the one the model was trained on, its splits) for evaluating `model`."""
    meta = model.meta
    recorded = meta.get("data", {})
    dataset = dataset or recorded.get("dataset")
    if dataset is None:
        raise ArgumentError(f"{folder} does not record its data set; pass --dataset.")
    same_data = dataset == recorded.get("dataset")
    if data_root is None and same_data and recorded.get("data_root") and not Path(recorded["data_root"]).is_dir():
        raise DataError(f"The data root recorded at training, {recorded['data_root']!r}, does not exist here "
                        f"(relative paths are read from {str(Path.cwd())!r}); pass --data-root to say where the "
                        f"{dataset} data are.")
    bundle = load_dataset(dataset, data_root or (recorded.get("data_root") if same_data else None),
                          meta["input_size"], input_channels(meta),
                          recorded.get("val_size", 0) if same_data else 0, recorded.get("split_seed", 0))
    if len(bundle.classes) != model.backbone.cfg.num_classes:
        raise DataError(f"The {dataset} data set has {len(bundle.classes)} classes but the model predicts "
                         f"{model.backbone.cfg.num_classes}; evaluate it on the data it was trained for.")
    return dataset, same_data, bundle


def upgrade_cache(folder, device="cpu", batch_size: int = 500, progress: bool = False, fast: bool = True) -> dict:
    """Bring a cache written by an earlier version up to date: float32 exit logits and the weights' SHA-256, leaving
    every cached confidence, prediction, top-5 hit and label as it is.

    Runs the model over the cached splits again and refuses (ArgumentError) unless it predicts exactly the cached
    classes, so the logits and the hash belong to the cached outputs. Returns {split: largest |confidence - cached|}.
    """
    model = load_model(folder, device)
    _, _, bundle = checkpoint_data(model, folder)
    cached = _read_splits(Path(folder) / CACHE, logits=False)   # load_cache would refuse a cache without the hash
    fresh = {"test": bundle.test, "val": bundle.val}
    gaps = {}
    for name, p in cached.items():
        run = predict_split(model, fresh[name], device, batch_size, progress, fast)
        if not torch.equal(run.prediction, p.prediction) or not torch.equal(run.labels, p.labels):
            raise ArgumentError(f"{folder}: the model no longer predicts the cached {name} classes; re-evaluate it.")
        gaps[name] = float((run.confidence - p.confidence).abs().max())
        p.logits = run.logits
    save_cache(folder, cached, model.meta["weights_sha256"])
    return gaps


def evaluate_checkpoint(folder, dataset: str | None = None, data_root: str | None = None, device="cpu",
                        batch_size: int = 500, monotone: bool = False, budgets=(), progress: bool = False,
                        fast: bool = True, engine=None, write: bool | None = True) -> dict:
    """Anytime results on the test split and the budgeted curve (validation -> test) of a checkpoint.

    Writes the per-exit predictions to CHECKPOINT/eval_cache.safetensors and the results to
    CHECKPOINT/evaluation.json (write=True; None: only when the folder has no evaluation yet, so re-evaluating a
    shipped checkpoint leaves its files as they are; False: never), and returns the results (the JSON of DESIGN.md).
    """
    model = load_model(folder, device)
    dataset, same_data, bundle = checkpoint_data(model, folder, dataset, data_root)
    splits = {"test": predict_split(model, bundle.test, device, batch_size, progress, fast, engine=engine)}
    if bundle.val is not None:
        splits["val"] = predict_split(model, bundle.val, device, batch_size, progress, fast, engine=engine)
    result = {"checkpoint": str(folder), "dataset": dataset, "macs": model.macs, "anytime": anytime_from(splits["test"]),
              "test_size": len(bundle.test)}
    if "val" in splits:
        result["val_anytime"] = anytime_from(splits["val"])
        result["budgeted"] = budgeted_curve(splits["val"], splits["test"], model.macs, monotone=monotone)
        result["budget_fits"] = []
        for budget in budgets:
            t = fit_to_budget(splits["val"], model.macs, budget)
            point = exit_outcome(splits["test"], assign_exits(splits["test"].confidence, t), model.macs)
            result["budget_fits"].append(dict(point, budget_macs=budget, thresholds=thresholds_to_json(t)))
    else:
        result["budgeted"] = []
        result["note"] = "No validation split was held out at training, so no budgeted-batch curve (train with --val-size > 0)."
        if budgets:
            raise ArgumentError(f"{folder} was trained without a validation split, so thresholds cannot be fitted to a budget; "
                             "retrain with --val-size > 0.")
    if same_data and (write or (write is None and not (Path(folder) / RESULTS).is_file())):
        save_cache(folder, splits, model.meta["weights_sha256"])
        atomic_write_json(Path(folder) / RESULTS, result)
    return result
