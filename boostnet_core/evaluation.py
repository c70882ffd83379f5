"""Anytime and budgeted-batch evaluation (PAPER.md section 6).

- Anytime: top-1 and top-5 of F_k at every exit over a whole split, streamed in batches (memory grows only with
  one confidence, prediction and top-5 flag per sample and exit).
- Budgeted batch: for q = p/20 (p = 1..39) the target exit fractions are proportional to q^k. Thresholds are
  fitted on the held-out validation split exactly as the authors' loop does (the confidence of the
  floor(n * pi_k)-th not-yet-exited sample at exit k; ties included), vectorised, then applied to the test split.
  Expected cost = sum_k (fraction exiting at k) * cumulative MACs of exit k.

Threshold conventions: confidences are max-softmax values in [0, 1]; a threshold is in [0, 1] or +inf ("no sample
leaves here"); the last exit takes every sample that reaches it, whatever its threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import atomic_save_tensors, atomic_write_json, load_model, load_tensors
from .data import FileImages, FileSet, ImageSet, load_dataset, normalize


@dataclass
class ExitPredictions:
    """Per-exit outputs over a split: confidence and prediction of F_k, top-5 hit, and the labels."""
    confidence: torch.Tensor   # float32 [E, N]
    prediction: torch.Tensor   # int64 [E, N]
    top5: torch.Tensor         # bool [E, N]
    labels: torch.Tensor       # int64 [N]

    def correct(self) -> torch.Tensor:
        return self.prediction == self.labels[None]


def _batches(data, meta: dict, batch_size: int, workers: int = 0):
    if isinstance(data, ImageSet):
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            yield normalize(data.images[sl], meta["mean"], meta["std"]), data.labels[sl]
    elif isinstance(data, FileSet):
        dataset = FileImages(data, meta["input_size"], len(meta["mean"]), meta["mean"], meta["std"], train=False)
        yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    else:
        raise TypeError(f"Cannot evaluate on {type(data).__name__}.")


@torch.inference_mode()
def predict_split(model, data, device="cpu", batch_size: int = 500, progress: bool = False) -> ExitPredictions:
    """Run every exit over a split, keeping only per-sample results."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}.")
    was_training = model.training
    model.eval()
    confs, preds, hits, labels = [], [], [], []
    batches = _batches(data, model.meta, batch_size)
    if progress:
        from tqdm import tqdm
        batches = tqdm(batches, total=math.ceil(len(data) / batch_size), desc="evaluate", leave=False)
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        exit_logits = torch.stack(model(x))                 # [E, B, C]
        conf, pred = exit_logits.softmax(-1).max(-1)
        k = min(5, exit_logits.shape[-1])
        top5 = (exit_logits.topk(k, dim=-1).indices == y[None, :, None]).any(-1)
        confs.append(conf.float().cpu()); preds.append(pred.cpu()); hits.append(top5.cpu()); labels.append(y.cpu())
    model.train(was_training)
    return ExitPredictions(torch.cat(confs, 1), torch.cat(preds, 1), torch.cat(hits, 1), torch.cat(labels))


def anytime_from(predictions: ExitPredictions) -> dict:
    return {"top1": (predictions.correct().double().mean(1) * 100).tolist(),
            "top5": (predictions.top5.double().mean(1) * 100).tolist()}


def anytime_accuracy(model, data, device="cpu", batch_size: int = 500) -> dict:
    """{"top1": [...], "top5": [...]} in percent, one value per exit."""
    return anytime_from(predict_split(model, data, device, batch_size))


# ---------------------------------------------------------------- thresholds


def exit_fractions(q: float, n_exits: int) -> torch.Tensor:
    """The paper's target fractions pi_k proportional to q^k, k = 1..N."""
    if not q > 0:
        raise ValueError(f"q must be positive, got {q!r}.")
    k = torch.arange(1, n_exits + 1, dtype=torch.float64)
    p = torch.exp(math.log(q) * k)
    return p / p.sum()


def _check_confidence(confidence: torch.Tensor) -> torch.Tensor:
    confidence = torch.as_tensor(confidence)
    if confidence.ndim != 2 or confidence.shape[0] < 1:
        raise ValueError(f"confidence must be a [n_exits, n_samples] tensor, got shape {tuple(confidence.shape)}.")
    return confidence


def fit_thresholds(confidence: torch.Tensor, fractions) -> torch.Tensor:
    """Thresholds [N] so that about fractions[k] of the samples leave at exit k (the paper's procedure).

    For k < N: among the samples that have not exited, T_k is the confidence of the floor(n * pi_k)-th most
    confident at exit k (+inf if there is no such sample); every sample with confidence >= T_k then exits.
    T_N = 0 accepts everything left.
    """
    confidence = _check_confidence(confidence)
    n_exits, n = confidence.shape
    fractions = torch.as_tensor(fractions, dtype=torch.float64)
    if fractions.shape != (n_exits,):
        raise ValueError(f"fractions must have one value per exit ({n_exits}), got shape {tuple(fractions.shape)}.")
    if (fractions < 0).any() or abs(float(fractions.sum()) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got sum {float(fractions.sum()):.6g}.")
    thresholds = torch.full((n_exits,), math.inf, dtype=torch.float64)
    exited = torch.zeros(n, dtype=torch.bool)
    for k in range(n_exits - 1):
        take = math.floor(n * float(fractions[k]))
        remaining = confidence[k][~exited]
        if 1 <= take <= remaining.numel():
            thresholds[k] = float(remaining.topk(take).values[-1])
            exited |= confidence[k] >= thresholds[k]
    thresholds[-1] = 0.0
    return thresholds


def fit_thresholds_loop(confidence: torch.Tensor, fractions) -> torch.Tensor:
    """The authors' per-sample loop, kept verbatim in spirit as the reference `fit_thresholds` is tested and
    benchmarked against. Slow: a Python loop over samples for every exit."""
    confidence = _check_confidence(confidence)
    n_exits, n = confidence.shape
    sorted_idx = confidence.argsort(dim=1, descending=True)
    filtered = torch.zeros(n)
    thresholds = torch.full((n_exits,), math.inf, dtype=torch.float64)
    for k in range(n_exits - 1):
        count, out_n = 0, math.floor(n * float(fractions[k]))
        for i in range(n):
            idx = sorted_idx[k][i]
            if filtered[idx] == 0:
                count += 1
                if count == out_n:
                    thresholds[k] = float(confidence[k][idx])
                    break
        filtered.add_(confidence[k].double().ge(thresholds[k]).float())
    thresholds[-1] = 0.0
    return thresholds


def assign_exits_loop(confidence: torch.Tensor, thresholds) -> torch.Tensor:
    """Plain per-sample loop for exit assignment, the reference `assign_exits` is tested and benchmarked against."""
    exits = []
    for i in range(confidence.shape[1]):
        for k in range(confidence.shape[0]):
            if k == confidence.shape[0] - 1 or confidence[k, i] >= thresholds[k]:
                exits.append(k)
                break
    return torch.tensor(exits)


def check_thresholds(thresholds, n_exits: int) -> torch.Tensor:
    """One float for all exits, or one per exit; each in [0, 1] (or +inf: nobody leaves there)."""
    t = torch.as_tensor(thresholds, dtype=torch.float64)
    if t.ndim == 0:
        t = t.repeat(n_exits)
    if t.shape != (n_exits,):
        raise ValueError(f"Expected one threshold or {n_exits} (one per exit), got {t.numel()}.")
    bad = torch.isnan(t) | (t < 0) | ((t > 1) & ~torch.isposinf(t))
    if bad.any():
        raise ValueError(f"Thresholds must lie in [0, 1], got {[round(v, 4) for v in t[bad].tolist()]}.")
    return t


def assign_exits(confidence: torch.Tensor, thresholds) -> torch.Tensor:
    """[n_samples] exit index: the first exit whose confidence reaches its threshold; the last takes the rest."""
    confidence = _check_confidence(confidence)
    t = check_thresholds(thresholds, confidence.shape[0]).to(confidence.device)
    passed = confidence.double() >= t[:, None]
    passed[-1] = True
    return passed.to(torch.uint8).argmax(0)


def exit_outcome(predictions: ExitPredictions, exits: torch.Tensor, macs: list[float]) -> dict:
    """Accuracy, average MACs and per-exit fractions when each sample leaves at exits[i]."""
    n_exits = predictions.confidence.shape[0]
    idx = torch.arange(len(exits))
    correct = predictions.correct()[exits, idx]
    fractions = torch.bincount(exits, minlength=n_exits).double() / len(exits)
    return {"top1": float(correct.double().mean() * 100),
            "avg_macs": float((fractions * torch.tensor(macs, dtype=torch.float64)).sum()),
            "exit_fractions": fractions.tolist()}


def _json_thresholds(t: torch.Tensor) -> list:
    return [None if math.isinf(v) else v for v in t.tolist()]


def budgeted_curve(val: ExitPredictions, test: ExitPredictions, macs: list[float], points: int = 39,
                   monotone: bool = False) -> list[dict]:
    """The paper's budgeted-batch curve: thresholds fitted on `val`, applied to `test`, q = p/20 for p = 1..points.

    monotone: where validation accuracy does not improve on the best so far, repeat the previous test accuracy.
    A threshold of None in the result means no sample leaves at that exit.
    """
    n_exits = val.confidence.shape[0]
    curve, best_val, last_top1 = [], -1.0, None
    for p in range(1, points + 1):
        thresholds = fit_thresholds(val.confidence, exit_fractions(p / 20, n_exits))
        val_top1 = exit_outcome(val, assign_exits(val.confidence, thresholds), macs)["top1"]
        point = exit_outcome(test, assign_exits(test.confidence, thresholds), macs)
        if monotone and last_top1 is not None and val_top1 <= best_val:
            point["top1"] = last_top1
        best_val, last_top1 = max(best_val, val_top1), point["top1"]
        curve.append({"q": p / 20, "avg_macs": point["avg_macs"], "top1": point["top1"], "val_top1": val_top1,
                      "thresholds": _json_thresholds(thresholds), "exit_fractions": point["exit_fractions"]})
    return curve


def fit_to_budget(val: ExitPredictions, macs: list[float], budget_macs: float) -> torch.Tensor:
    """Thresholds of the paper's family (fractions ~ q^k) whose average cost on `val` is at most `budget_macs`.

    Bisects on log q; the average cost grows with q. Raises if the budget is below the first exit's cost.
    """
    n_exits = val.confidence.shape[0]
    if budget_macs < macs[0]:
        raise ValueError(f"A budget of {budget_macs:.4g} MACs is below the cost of the first exit ({macs[0]:.4g}).")

    def cost(log_q: float) -> tuple[float, torch.Tensor]:
        t = fit_thresholds(val.confidence, exit_fractions(math.exp(log_q), n_exits))
        return exit_outcome(val, assign_exits(val.confidence, t), macs)["avg_macs"], t

    lo, hi = math.log(1e-4), math.log(1e4)
    best = cost(lo)[1]
    for _ in range(60):
        mid = (lo + hi) / 2
        c, t = cost(mid)
        if c <= budget_macs:
            lo, best = mid, t
        else:
            hi = mid
    return best


# ---------------------------------------------------------------- checkpoint evaluation and its cache

CACHE = "eval_cache.safetensors"
RESULTS = "evaluation.json"


def save_cache(folder, splits: dict[str, ExitPredictions]) -> None:
    """Per-exit confidences, predictions, top-5 hits and labels of each split, in one safetensors file."""
    tensors = {}
    for name, p in splits.items():
        tensors.update({f"{name}.confidence": p.confidence, f"{name}.prediction": p.prediction,
                        f"{name}.top5": p.top5.to(torch.uint8), f"{name}.labels": p.labels})
    atomic_save_tensors(Path(folder) / CACHE, tensors, {"splits": ",".join(splits)})


def load_cache(folder) -> dict[str, ExitPredictions]:
    """The cached splits of a checkpoint folder ({} when there is no cache)."""
    path = Path(folder) / CACHE
    if not path.is_file():
        return {}
    t = load_tensors(path)
    names = sorted({k.split(".")[0] for k in t})
    return {n: ExitPredictions(t[f"{n}.confidence"], t[f"{n}.prediction"], t[f"{n}.top5"].bool(), t[f"{n}.labels"])
            for n in names}


def evaluate_checkpoint(folder, dataset: str | None = None, data_root: str | None = None, device="cpu",
                        batch_size: int = 500, monotone: bool = False, budgets=(), progress: bool = False) -> dict:
    """Anytime results on the test split and the budgeted curve (validation -> test) of a checkpoint.

    Writes the per-exit predictions to CHECKPOINT/eval_cache.safetensors and the results to
    CHECKPOINT/evaluation.json, and returns the results (the JSON of DESIGN.md).
    """
    model = load_model(folder, device)
    meta = model.meta
    recorded = meta.get("data", {})
    dataset = dataset or recorded.get("dataset")
    if dataset is None:
        raise ValueError(f"{folder} does not record its data set; pass --dataset.")
    same_data = dataset == recorded.get("dataset")
    bundle = load_dataset(dataset, data_root or (recorded.get("data_root") if same_data else None),
                          meta["input_size"], len(meta["mean"]),
                          recorded.get("val_size", 0) if same_data else 0, recorded.get("split_seed", 0))
    if len(bundle.classes) != model.backbone.cfg.num_classes:
        raise ValueError(f"The {dataset} data set has {len(bundle.classes)} classes but the model predicts "
                         f"{model.backbone.cfg.num_classes}; evaluate it on the data it was trained for.")
    splits = {"test": predict_split(model, bundle.test, device, batch_size, progress)}
    if bundle.val is not None:
        splits["val"] = predict_split(model, bundle.val, device, batch_size, progress)
    result = {"checkpoint": str(folder), "dataset": dataset, "macs": model.macs, "anytime": anytime_from(splits["test"]),
              "test_size": len(bundle.test)}
    if "val" in splits:
        result["val_anytime"] = anytime_from(splits["val"])
        result["budgeted"] = budgeted_curve(splits["val"], splits["test"], model.macs, monotone=monotone)
        result["budget_fits"] = []
        for budget in budgets:
            t = fit_to_budget(splits["val"], model.macs, budget)
            point = exit_outcome(splits["test"], assign_exits(splits["test"].confidence, t), model.macs)
            result["budget_fits"].append(dict(point, budget_macs=budget, thresholds=_json_thresholds(t)))
    else:
        result["budgeted"] = []
        result["note"] = "No validation split was held out at training, so no budgeted-batch curve (train with --val-size > 0)."
        if budgets:
            raise ValueError(f"{folder} was trained without a validation split, so thresholds cannot be fitted to a budget; "
                             "retrain with --val-size > 0.")
    if same_data:
        save_cache(folder, splits)
        atomic_write_json(Path(folder) / RESULTS, result)
    return result
