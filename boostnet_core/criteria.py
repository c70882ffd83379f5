"""Exit criteria: how sure exit k is about a sample, as a score where higher means "leave here".

A criterion is the one owner of that score. It is used alike by real early exit (early_exit.py, one exit at a time),
traces (inference.py), and the cached outputs of a split (all exits at once), on which thresholds are fitted
(thresholds.py), certified (calibration.py) and shown by the app. The exit logits F_k themselves come from
boosting.py; a criterion only reads them.

Every criterion scores exit k from the exit logits F_k [B, C], the top class of F_k [B] and the top classes of the
earlier exits [B, k] (what patience and the learned score need; k is that tensor's width). Two entry points, one
formula:
- `Criterion.score(exit_logits, earlier)`: real early exit and traces, in fp32 from the model;
- `score_cache(cache, criterion)`: the cached splits of a checkpoint, every exit at once, from the stored per-exit
  predictions and half-precision logits (evaluation.py writes them; max-softmax reads the cached fp32 confidence
  itself, so its numbers are exactly the shipped ones).
The top class is `softmax(F_k).max(-1)`'s index everywhere (the first of tied classes), as the cache stores it.

Criteria (`CRITERIA`; `get_criterion(name="max_softmax", **params)`), with the range of their scores:
- `max_softmax`: the largest softmax probability of F_k, in [0, 1]. The paper's, and the default.
- `entropy`: 1 - H(softmax F_k) / log C, in [0, 1] (1: all mass on one class, 0: uniform) (BranchyNet, DeeBERT).
- `margin`: the top-2 margin p_(1) - p_(2) of softmax F_k, in [0, 1] (CALM).
- `patience`: for how many exits in a row just before k the top class was the same as at k, an integer in 0..k
  (PABEE). A threshold t at every exit is PABEE's patience t: a sample leaves at the first exit whose top class has
  stayed the same over t + 1 exits; a t larger than the exits left sends it to the last exit.
- `learned`: a logistic regression per exit (scikit-learn) that predicts "exit k is right" from the max-softmax,
  margin and entropy scores of F_k and its agreement with the earlier exits (with the previous one, and the share
  of all earlier ones), in [0, 1]. `fit_learned` fits it on one part of the validation split
  (`validation_parts`); `score_cache` then returns only the other part as "val", on which thresholds are fitted, so
  neither the test split nor the thresholds' own images touch the fit. Its fitted parameters (`params`) rebuild it
  with `get_criterion("learned", params=...)`, for real early exit.

For the app: `prepare(cache, name, **params)` gives a ready criterion (the learned one fitted) and the scored
splits in one call; `MissingOutputs` says how to rebuild a cache that lacks what a criterion needs.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from .errors import ArgumentError, UserError
from .thresholds import ExitPredictions

DEFAULT = "max_softmax"


class MissingOutputs(UserError):
    """A cache lacks what a criterion needs (the per-exit logits); the message says how to rebuild it."""


def missing_logits(name: str) -> MissingOutputs:
    return MissingOutputs(f"The {name} criterion needs the per-exit logits, which this evaluation cache lacks; "
                          "rebuild the cache with: boostnet evaluate CHECKPOINT --write")


def softmax_top(exit_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(max-softmax confidence, top class) of F_k [..., C], exactly as the evaluation cache stores them."""
    confidence, top = exit_logits.softmax(-1).max(-1)
    return confidence, top


def run_length(top: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
    """For how many exits in a row just before this one the top class was `top` ([B] -> float32 [B], 0..k)."""
    same = earlier.flip(1) == top[:, None]                          # [B, k], nearest earlier exit first
    return same.to(torch.int64).cumprod(1).sum(1).to(torch.float32)  # leading run of True


class Criterion:
    """Base of the exit criteria: `name`, the score range (`low`, `high`), and the score of one exit."""
    name = ""
    low, high = 0.0, 1.0
    needs_logits = True   # False: the cached confidence and predictions are enough
    one_graph = False     # True: the engines' one-graph early exit computes this score (max softmax only)
    params: dict | None = None   # fitted parameters (the learned score's); the others have none

    @property
    def score_range(self) -> tuple[float, float]:
        return (self.low, self.high)

    def score(self, exit_logits: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
        """Scores [B] of exit k (k = earlier.shape[1]) from its logits F_k [B, C] and the earlier top classes [B, k]."""
        return self._score(exit_logits.float(), softmax_top(exit_logits)[1], earlier)

    def _score(self, logits: torch.Tensor | None, top: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, exit_logits: torch.Tensor) -> torch.Tensor:
        """Scores [E, B] of every exit from the exit logits [E, B, C] (a trace, or outputs held in memory)."""
        top = softmax_top(exit_logits)[1]
        return torch.stack([self.score(exit_logits[k], top[:k].T) for k in range(exit_logits.shape[0])])

    def cache_scores(self, predictions: ExitPredictions) -> torch.Tensor:
        """Scores [E, N] of every exit from cached outputs (stored top classes; fp16 logits read as fp32)."""
        logits = predictions.logits
        if self.needs_logits and logits is None:
            raise missing_logits(self.name)
        top = predictions.prediction
        return torch.stack([self._score(None if logits is None else logits[k].float(), top[k], top[:k].T)
                            for k in range(top.shape[0])])

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MaxSoftmax(Criterion):
    name, needs_logits = "max_softmax", False
    one_graph = True   # the score onnx_graphs.early_exit_graph computes

    def score(self, exit_logits, earlier):
        return softmax_top(exit_logits)[0]   # bit for bit the confidence real early exit has always used

    def cache_scores(self, predictions):
        return predictions.confidence        # the cached fp32 confidence itself


class Entropy(Criterion):
    name = "entropy"

    def _score(self, logits, top, earlier):
        p = logits.softmax(-1)
        return 1 - torch.special.entr(p).sum(-1) / math.log(p.shape[-1])


class Margin(Criterion):
    name = "margin"

    def _score(self, logits, top, earlier):
        top2 = logits.softmax(-1).topk(2, dim=-1).values
        return top2[:, 0] - top2[:, 1]


class Patience(Criterion):
    name, needs_logits = "patience", False
    high = math.inf   # a patience larger than the exits left is allowed: nobody leaves before the last exit

    def _score(self, logits, top, earlier):
        return run_length(top, earlier)


LEARNED_FEATURES = ("max_softmax", "margin", "entropy", "agrees_with_previous", "share_of_earlier_agreeing")


def learned_features(logits: torch.Tensor, top: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
    """[B, 5] float64: the features of `LEARNED_FEATURES` for exit k (agreement is 0 at the first exit)."""
    p = logits.float().softmax(-1)
    top2 = p.topk(2, dim=-1).values
    entropy = 1 - torch.special.entr(p).sum(-1) / math.log(p.shape[-1])
    agree = earlier == top[:, None]
    previous = agree[:, -1].float() if earlier.shape[1] else torch.zeros_like(top2[:, 0])
    share = agree.float().mean(1) if earlier.shape[1] else torch.zeros_like(top2[:, 0])
    return torch.stack([top2[:, 0], top2[:, 0] - top2[:, 1], entropy, previous, share], 1).double()


class Learned(Criterion):
    """P(exit k is right | features), one logistic regression per exit; `params` holds everything fitted."""
    name = "learned"

    def __init__(self, params: dict | None = None):
        self.params = params

    def _score(self, logits, top, earlier):
        if self.params is None:
            raise ArgumentError("The learned criterion is not fitted yet; fit it with criteria.fit_learned on a cache "
                             "(or pass params= from a fitted one).")
        k = earlier.shape[1]
        x = learned_features(logits, top, earlier)
        mean, scale = (torch.tensor(self.params[key][k], dtype=torch.float64) for key in ("mean", "scale"))
        coef = torch.tensor(self.params["coef"][k], dtype=torch.float64)
        z = ((x - mean) / scale) @ coef + self.params["intercept"][k]
        return torch.sigmoid(z).float()

    def __repr__(self) -> str:
        return f"Learned(fitted={self.params is not None})"


CRITERIA: dict[str, type[Criterion]] = {c.name: c for c in (MaxSoftmax, Entropy, Margin, Patience, Learned)}


def get_criterion(name: str | Criterion | None = DEFAULT, **params) -> Criterion:
    """The criterion called `name` (None: max-softmax); a Criterion passes through. Unknown name: ValueError."""
    if isinstance(name, Criterion):
        return name
    name = DEFAULT if name is None else name
    if name not in CRITERIA:
        raise ArgumentError(f"Unknown exit criterion {name!r}; choose one of: {', '.join(CRITERIA)}.")
    try:
        return CRITERIA[name](**params)
    except TypeError:
        raise ArgumentError(f"The {name} criterion takes no parameters {sorted(params)}.") from None


# ---------------------------------------------------------------- the learned score: fit on one part of val


def validation_parts(n: int, seed: int = 0, share: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of n validation images: (indices to fit the learned score on, the rest)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(round(n * share))
    return order[:cut].sort().values, order[cut:].sort().values


def subset(predictions: ExitPredictions, index: torch.Tensor) -> ExitPredictions:
    """The samples `index` of a split (every per-sample tensor cut alike)."""
    return replace(predictions, confidence=predictions.confidence[:, index],
                   prediction=predictions.prediction[:, index],
                   top5=predictions.top5[:, index], labels=predictions.labels[index],
                   logits=None if predictions.logits is None else predictions.logits[:, index])


def fit_learned(val: ExitPredictions, seed: int = 0, share: float = 0.5) -> Learned:
    """Fit the learned score on the `validation_parts(seed, share)` fit part of a validation split (with logits)."""
    from sklearn.linear_model import LogisticRegression
    if val.logits is None:
        raise missing_logits("learned")
    fit_part = subset(val, validation_parts(val.labels.numel(), seed, share)[0])
    top, correct = fit_part.prediction, fit_part.correct()
    params = {"features": list(LEARNED_FEATURES), "seed": seed, "share": share, "mean": [], "scale": [], "coef": [],
              "intercept": []}
    for k in range(top.shape[0]):
        x = learned_features(fit_part.logits[k], top[k], top[:k].T)
        mean, scale = x.mean(0), x.std(0).clamp(min=1e-6)
        y = correct[k].numpy()
        if y.all() or not y.any():   # one outcome only: a constant score at its (smoothed) rate
            coef, intercept = [0.0] * x.shape[1], math.log((y.sum() + 0.5) / (len(y) - y.sum() + 0.5))
        else:
            model = LogisticRegression(max_iter=1000).fit(((x - mean) / scale).numpy(), y)
            coef, intercept = model.coef_[0].tolist(), float(model.intercept_[0])
        params["mean"].append(mean.tolist()); params["scale"].append(scale.tolist())
        params["coef"].append(coef); params["intercept"].append(float(intercept))
    return Learned(params)


# ---------------------------------------------------------------- scores of cached splits


def score_cache(cache: dict[str, ExitPredictions], criterion=None, checkpoint=None) -> dict[str, ExitPredictions]:
    """The cached splits with `confidence` holding the criterion's scores (and `criterion` its name).

    Max-softmax returns the cache unchanged. For the learned score, "val" keeps only the images it was not fitted
    on (thresholds are fitted there). `checkpoint` (a folder) only words the message of a cache that lacks logits.
    """
    criterion = get_criterion(criterion)
    try:
        scored = {name: replace(p, confidence=criterion.cache_scores(p), criterion=criterion.name)
                  for name, p in cache.items()}
    except MissingOutputs as e:
        raise MissingOutputs(str(e).replace("CHECKPOINT", str(checkpoint)) if checkpoint else str(e)) from None
    if isinstance(criterion, Learned) and "val" in scored:
        params = criterion.params
        held_out = validation_parts(scored["val"].labels.numel(), params["seed"], params["share"])[1]
        scored["val"] = subset(scored["val"], held_out)
    return scored


def prepare(cache: dict[str, ExitPredictions], name=None, checkpoint=None, **params) -> tuple[Criterion, dict]:
    """(criterion, scored splits) for a checkpoint's cache: the learned score is fitted on its part of "val" first."""
    criterion = get_criterion(name, **params)
    if isinstance(criterion, Learned) and criterion.params is None:
        if "val" not in cache:
            raise ArgumentError("The learned criterion is fitted on the validation split, and this model has none "
                             "(train with --val-size > 0).")
        try:
            criterion = fit_learned(cache["val"])
        except MissingOutputs as e:
            raise MissingOutputs(str(e).replace("CHECKPOINT", str(checkpoint)) if checkpoint else str(e)) from None
    return criterion, score_cache(cache, criterion, checkpoint)
