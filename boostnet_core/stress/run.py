"""A model over clean and stressed versions of the same images: what early exit does under each condition.

`stress_test(model, images, labels, conditions, rule)` corrupts or attacks the images once per condition, runs every
exit over them, and applies the exit rule to the per-exit outputs with thresholds.assign_exits, exactly as real
early exit decides (early_exit.py: a sample leaves at the first exit whose score reaches its threshold), so the
exits, accuracy and MACs are those `predict_early` would give. Per condition (`summarise`, the JSON of
`boostnet stress`):
    top1            top-1 (%) of every exit on every image
    exit_histogram  images leaving at each exit
    mean_macs       average cumulative MACs spent; macs_share: over the full network's
    top1_at_exits   top-1 (%) of early exit (each image at the exit it took)
    ece             expected calibration error of every exit's max-softmax (calibration.reliability, 10 bins)
    risk            with a certificate: the risk observed on these images against its epsilon (calibration.losses)
The per-image outcomes stay available (`ConditionRun`) for intervals over images (scripts/stress_results.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..boosting import ensemble
from ..calibration import losses, reliability
from ..criteria import get_criterion, softmax_top
from ..engines import engine_for
from ..errors import ArgumentError
from ..models.stepwise import eval_mode, iter_exits
from ..thresholds import ExitPredictions, assign_exits, check_thresholds, outcome_of
from .attacks import EPSILON, STEPS, UNIVERSAL_ITERATIONS, slowdown_attack, universal_slowdown
from .corruptions import check_corruption, check_severity, corrupt

ATTACKS = ("slowdown", "universal")


@dataclass(frozen=True)
class Condition:
    """One stress: a corruption at a severity, or an attack ("slowdown": per image; "universal")."""
    kind: str                      # "corruption" | "attack"
    name: str
    severity: int | None = None    # corruptions only
    epsilon: float = EPSILON       # attacks only
    steps: int | None = None       # attacks only: PGD steps or universal iterations (None: the authors' default)

    def describe(self) -> dict:
        if self.kind == "corruption":
            return {"kind": self.kind, "name": self.name, "severity": self.severity}
        return {"kind": self.kind, "name": self.name, "severity": None, "epsilon": self.epsilon,
                "steps": self.steps or (STEPS if self.name == "slowdown" else UNIVERSAL_ITERATIONS)}


def corruption(name: str, severity: int) -> Condition:
    check_corruption(name)
    return Condition("corruption", name, check_severity(severity))


def attack(name: str, epsilon: float = EPSILON, steps: int | None = None) -> Condition:
    if name not in ATTACKS:
        raise ArgumentError(f"Unknown attack {name!r}; choose one of: {', '.join(ATTACKS)}.")
    return Condition("attack", name, None, float(epsilon), steps)


@dataclass(frozen=True)
class ExitRule:
    """Thresholds (one per exit, +inf: nobody leaves there) on a criterion's score; with a certificate, the risk it
    certifies and its epsilon, to compare with what each condition shows."""
    thresholds: torch.Tensor                  # float64 [E]
    criterion: object = None                  # a Criterion (None: max-softmax)
    risk: str | None = None
    epsilon: float | None = None

    @classmethod
    def of(cls, thresholds, n_exits: int, criterion=None, risk: str | None = None, epsilon: float | None = None):
        crit = get_criterion(criterion)
        t = check_thresholds(thresholds, n_exits, crit.score_range)   # None in a list: no exit here
        return cls(t, crit, risk, epsilon)


@dataclass
class ConditionRun:
    """One condition's per-exit outputs on every image, the exits taken, and its summary."""
    condition: Condition | None               # None: the clean images
    predictions: ExitPredictions              # confidence: max-softmax; scores: the rule's criterion
    scores: torch.Tensor                      # [E, N]
    exits: torch.Tensor                       # int64 [N]
    summary: dict = field(default_factory=dict)
    pixels: torch.Tensor | None = None        # float [N, C, H, W] in [0, 1], kept when asked (the app shows them)
    extra: dict = field(default_factory=dict)  # attacks: the loss curve; universal: the perturbation, where crafted


@torch.inference_mode()
def exit_outputs(model, pixels: torch.Tensor, labels: torch.Tensor, batch_size: int = 250,
                 engine=None, fast: bool = True) -> tuple[ExitPredictions, torch.Tensor]:
    """Every exit over float pixels [N, C, H, W] in [0, 1] (normalised here with model.meta): the per-exit
    predictions (max-softmax confidence, as the evaluation cache holds them) and the exit logits F_k, fp32 [E, N, C]."""
    c = model.input_shape[0]
    mean = torch.tensor(model.meta["mean"], dtype=torch.float32).view(1, c, 1, 1)
    std = torch.tensor(model.meta["std"], dtype=torch.float32).view(1, c, 1, 1)
    backbone = engine_for(model, engine, fast)
    device = next(model.parameters()).device
    confs, preds, hits, logits = [], [], [], []
    with eval_mode(model):
        for start in range(0, len(pixels), batch_size):
            x = ((pixels[start:start + batch_size].float() - mean) / std).to(device)
            y = labels[start:start + batch_size].to(device)
            heads = backbone.head_logits(x) if fast else [s.head_logits for s in iter_exits(backbone, x)]
            exit_logits = torch.stack(ensemble(heads, model.reweight)).float()
            conf, pred = softmax_top(exit_logits)
            k = min(5, exit_logits.shape[-1])
            top5 = (exit_logits.topk(k, dim=-1).indices == y[None, :, None]).any(-1)
            confs.append(conf.cpu()); preds.append(pred.cpu()); hits.append(top5.cpu())
            logits.append(exit_logits.cpu())
    predictions = ExitPredictions(torch.cat(confs, 1), torch.cat(preds, 1), torch.cat(hits, 1), labels.cpu())
    return predictions, torch.cat(logits, 1)


def summarise(predictions: ExitPredictions, scores: torch.Tensor, rule: ExitRule,
              macs: list[float]) -> tuple[torch.Tensor, dict]:
    """(exits taken [N], the condition's summary; see the module docstring)."""
    crit = rule.criterion or get_criterion(None)
    exits = assign_exits(scores, rule.thresholds, crit.score_range)
    outcome = outcome_of(predictions, exits, macs)
    n = len(exits)
    out = {"images": n,
           "top1": (predictions.correct().double().mean(1) * 100).tolist(),
           "exit_histogram": outcome.counts.tolist(),
           "mean_macs": outcome.avg_macs, "macs_share": outcome.cost_ratio,
           "top1_at_exits": outcome.top1,
           "last_exit_share": float(outcome.counts[-1]) / n,
           "ece": [row["ece"] for row in reliability(predictions)]}
    if rule.risk is not None:
        observed = float(losses(predictions, exits, rule.risk).double().mean())
        out["risk"] = {"name": rule.risk, "observed": observed, "epsilon": rule.epsilon,
                       "held": observed <= rule.epsilon}
    return exits, out


def run_condition(model, pixels: torch.Tensor, labels: torch.Tensor, condition: Condition | None, rule: ExitRule, *,
                  keys=None, seed: int = 0, crafting: torch.Tensor | None = None, batch_size: int = 250,
                  engine=None, fast: bool = True, keep_pixels: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> ConditionRun:
    """One condition over float pixels [N, C, H, W] in [0, 1] (uint8 images are turned into them).

    keys: per-image keys for the corruptions' random numbers (test indices; default 0..N-1). crafting: the images
    a universal perturbation is crafted on (default: the images themselves, which flatters the attack; say so).
    progress(done, total): the attack's steps."""
    pixels = pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels.float()
    extra = {}
    if condition is None:
        stressed = pixels
    elif condition.kind == "corruption":
        as_uint8 = np.uint8(np.clip(np.round(pixels.numpy() * 255), 0, 255))
        stressed = torch.from_numpy(corrupt(as_uint8, condition.name, condition.severity, seed, keys)).float() / 255
    elif condition.name == "slowdown":
        stressed, history = slowdown_attack(model, pixels, condition.epsilon, steps=condition.steps or STEPS,
                                            progress=progress)
        extra["loss"] = history.tolist()
    else:
        source = pixels if crafting is None else (crafting.float() / 255 if crafting.dtype == torch.uint8 else crafting)
        delta, history = universal_slowdown(model, source, condition.epsilon,
                                            iterations=condition.steps or UNIVERSAL_ITERATIONS, progress=progress)
        stressed = (pixels + delta).clamp(0, 1)
        extra.update(loss=history.tolist(), perturbation=delta,
                     crafted_on="the attacked images themselves" if crafting is None else f"{len(crafting)} other images")
    predictions, logits = exit_outputs(model, stressed, labels, batch_size, engine, fast)
    crit = rule.criterion or get_criterion(None)
    scores = predictions.confidence if crit.name == "max_softmax" else crit.scores(logits)
    exits, summary = summarise(predictions, scores, rule, model.macs)
    return ConditionRun(condition, predictions, scores, exits, summary, stressed if keep_pixels else None, extra)


def stress_test(model, pixels: torch.Tensor, labels: torch.Tensor, conditions: list[Condition], rule: ExitRule, *,
                keys=None, seed: int = 0, crafting: torch.Tensor | None = None, batch_size: int = 250,
                engine=None, fast: bool = True, progress: Callable[[str], None] | None = None,
                attack_progress: Callable[[int, int], None] | None = None) -> dict:
    """{"clean": R, "conditions": [{"kind", "name", "severity", ...R}]}: the JSON of `boostnet stress`.
    progress(label) is called as each condition starts; attack_progress(done, total) after each attack step."""
    runs = iter_runs(model, pixels, labels, conditions, rule, keys=keys, seed=seed, crafting=crafting,
                     batch_size=batch_size, engine=engine, fast=fast, progress=progress, steps=attack_progress)
    clean = next(runs)
    out = {"clean": clean.summary, "conditions": []}
    for run in runs:
        row = dict(run.condition.describe(), **run.summary)
        if run.extra:   # the attack's loss curve (and where a universal perturbation was crafted), not the tensor
            row["attack"] = {k: v for k, v in run.extra.items() if k != "perturbation"}
        out["conditions"].append(row)
    return out


def iter_runs(model, pixels, labels, conditions, rule, *, progress=None, steps=None, **options):
    """The clean run, then one ConditionRun per condition, one at a time (so a caller can show progress):
    progress(label) as each starts, steps(done, total) after each attack step."""
    for condition in [None, *conditions]:
        if progress:
            progress("clean" if condition is None else label(condition))
        yield run_condition(model, pixels, labels, condition, rule, progress=steps, **options)


def label(condition: Condition) -> str:
    if condition.kind == "corruption":
        return f"{condition.name} {condition.severity}"
    return f"{condition.name} attack"


def stress_images(model, n: int, data_root: str | None = None, seed: int = 0, crafting: int = 0):
    """(uint8 images [n, C, H, W], labels [n], test indices [n], crafting images [m, C, H, W]) from the model's test
    split: n images drawn at random without replacement (a fixed permutation per seed; the split is ordered by class
    in folder data sets), in test order, and up to `crafting` other images of the split for a universal perturbation.
    data_root: default the one recorded at training, as given or relative to the working folder."""
    from pathlib import Path

    from ..data import ImageSet, load_test_split
    from ..errors import DataError
    from ..factory import input_channels
    meta = model.meta
    data = meta.get("data") or {}
    dataset = data.get("dataset")
    if dataset is None:
        raise DataError("This checkpoint does not record its data set, so there are no test images to stress.")
    root = data_root or data.get("data_root")
    if root is not None and not Path(root).is_dir():
        raise DataError(f"The test images of this checkpoint are not at {str(root)!r}; give --data-root.")
    test = load_test_split(dataset, root, meta["input_size"], input_channels(meta))
    if not isinstance(test, ImageSet):
        raise ArgumentError(f"Stress tests run on data sets of small images (up to 64 pixels); {dataset} streams "
                            "its images from disk.")
    if n < 1:
        raise ArgumentError(f"--images must be at least 1, got {n}.")
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))
    chosen = order[:n].sort().values
    other = order[n:n + crafting].sort().values
    return (test.images[chosen].numpy(), test.labels[chosen], chosen.numpy(), test.images[other].numpy())


def load_outputs(path) -> tuple[dict[str, ExitPredictions], dict[str, torch.Tensor]]:
    """What scripts/stress_results.py stored for one model (assets/stress/<model>.safetensors): per condition key
    ("clean", "<corruption>/<severity>", "attack/slowdown", "attack/universal") the per-exit max-softmax confidence
    (stored in float16, read as float32) and top class with the labels; and the other tensors (the test indices, the
    attacks' loss curves, the universal perturbation [C, H, W])."""
    from ..checkpoint import load_tensors
    t = load_tensors(path)
    outputs = {}
    for key in sorted({k.rsplit(".", 1)[0] for k in t if k.endswith(".confidence")}):
        prediction = t[f"{key}.prediction"].long()
        no_top5 = torch.zeros_like(prediction, dtype=torch.bool)   # not stored
        outputs[key] = ExitPredictions(t[f"{key}.confidence"].float(), prediction, no_top5,
                                       t.get(f"{key}.labels", t["labels"]))
    others = {k: v for k, v in t.items() if not k.endswith((".confidence", ".prediction"))}
    return outputs, others
