"""Exit thresholds, and what they do to a set of per-exit predictions. Torch only; a leaf of the package.

Everything here works on `ExitPredictions` (per sample and exit: a score and the prediction of F_k, top-5 hit),
whether they come from a model run (evaluation.py) or from a checkpoint's cache, so the CLI, the benchmarks and the
app share one implementation of the budgeted-batch protocol (arXiv 2211.16726, section 4, experiments; docs/method.md):

- target exit fractions pi_k proportional to q^k (`exit_fractions`);
- thresholds fitted on a validation split exactly as the authors' loop does: among the samples that have not
  exited, the confidence of the floor(n * pi_k)-th most confident at exit k, ties included (`fit_thresholds`,
  vectorised; `fit_thresholds_loop` is the reference loop it is tested against);
- each sample leaves at the first exit whose confidence reaches its threshold (`assign_exits`);
- expected cost = sum_k (fraction exiting at k) * cumulative MACs of exit k (`exit_outcome`, `ExitOutcome`).

Conventions: `confidence` holds the exit criterion's score (criteria.py; higher = leave), max-softmax in [0, 1]
unless `criterion` says otherwise; the last exit takes every sample that reaches it, whatever its threshold. The
algorithms only compare scores, so they work alike for every criterion.

One threshold format, everywhere. A threshold is a number in the criterion's score range ([0, 1] for max-softmax)
or "no exit here" (no sample leaves at that exit). "No exit here" is `None` in Python lists and `null` in JSON files
(`thresholds_to_json`), `none` on the command line and on screen (`parse_thresholds`, `format_thresholds`; `inf`
is accepted as an alias), and +inf inside tensors (`check_thresholds`). Numbers are printed as the shortest text that
reads back as the same float (Python's repr), so a threshold copied from the screen is the one that was fitted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ArgumentError


# Thresholds fitted here are scores of the data themselves (or +inf): any criterion's range holds them.
ANY_SCORE = (-math.inf, math.inf)


@dataclass
class ExitPredictions:
    """Per-exit outputs over a split: score and prediction of F_k, top-5 hit, the labels, and the logits if kept."""
    confidence: torch.Tensor   # float32 [E, N]: the criterion's score (max-softmax of F_k as evaluated)
    prediction: torch.Tensor   # int64 [E, N]: top class of F_k
    top5: torch.Tensor         # bool [E, N]
    labels: torch.Tensor       # int64 [N]
    logits: torch.Tensor | None = None   # float16 [E, N, C]: F_k, kept up to 100 classes (evaluation.py)
    criterion: str = "max_softmax"       # what `confidence` holds

    def correct(self) -> torch.Tensor:
        return self.prediction == self.labels[None]


def exit_fractions(q: float, n_exits: int) -> torch.Tensor:
    """The paper's target fractions pi_k proportional to q^k, k = 1..N."""
    if not q > 0:
        raise ArgumentError(f"q must be positive, got {q!r}.")
    k = torch.arange(1, n_exits + 1, dtype=torch.float64)
    p = torch.exp(math.log(q) * k)
    return p / p.sum()


def _check_confidence(confidence: torch.Tensor) -> torch.Tensor:
    confidence = torch.as_tensor(confidence)
    if confidence.ndim != 2 or confidence.shape[0] < 1:
        raise ArgumentError(f"confidence must be a [n_exits, n_samples] tensor, got shape {tuple(confidence.shape)}.")
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
        raise ArgumentError(f"fractions must have one value per exit ({n_exits}), got shape {tuple(fractions.shape)}.")
    if (fractions < 0).any() or abs(float(fractions.sum()) - 1.0) > 1e-6:
        raise ArgumentError(f"fractions must be non-negative and sum to 1, got sum {float(fractions.sum()):.6g}.")
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


NO_EXIT = "none"              # "no exit here" on the command line and on screen
NO_EXIT_ALIASES = ("none", "inf", "+inf", "infinity")


def _as_float(value) -> float:
    """One threshold as a float: None (no exit here) is +inf."""
    if value is None:
        return math.inf
    if isinstance(value, str) or isinstance(value, bool):
        raise ArgumentError(f"A threshold is a number or None (no exit here), got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"A threshold is a number or None (no exit here), got {value!r}.") from None


def check_thresholds(thresholds, n_exits: int, score_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """float64 [n_exits] from one threshold for all exits, or one per exit (a list, tuple, array or tensor); each a
    number in the criterion's `score_range`, or None / +inf for "no exit here"."""
    # Checked as Python floats: a few microseconds, where torch's operations on a 5-element tensor took ~50 us of
    # every early-exit call (a one-image call runs in ~1 ms). Only a tensor is flattened, as before.
    if isinstance(thresholds, torch.Tensor):
        t = thresholds.detach().to("cpu", torch.float64)
        values = t.reshape(-1).tolist() if t.ndim else t.item()
    elif hasattr(thresholds, "tolist") and not isinstance(thresholds, (list, tuple)):   # numpy arrays and scalars
        values = thresholds.tolist()   # (an object array may hold None)
    else:
        values = thresholds
    values = [_as_float(v) for v in values] if isinstance(values, (list, tuple)) else [_as_float(values)] * n_exits
    if len(values) != n_exits:
        raise ArgumentError(f"Expected one threshold or {n_exits} (one per exit), got {len(values)}.")
    low, high = score_range
    bad = [v for v in values if math.isnan(v) or v < low or (v > high and v != math.inf)]
    if bad:
        raise ArgumentError(f"Thresholds must lie in [{low:g}, {high:g}] or be none (no exit here), got {bad}.")
    return torch.tensor(values, dtype=torch.float64)


def parse_thresholds(text: str) -> list[float]:
    """The command line's thresholds: one value, or one per exit separated by commas; each a number or `none`
    (no exit here; `inf` is an alias). Returns floats, +inf for none. Ranges are checked by `check_thresholds`,
    which knows the criterion."""
    values = []
    for part in str(text).split(","):
        word = part.strip().lower()
        if word in NO_EXIT_ALIASES:
            values.append(math.inf)
            continue
        try:
            value = float(word)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ArgumentError(f"Expected one threshold or one per exit separated by commas, each a number or "
                                f"'{NO_EXIT}' (no exit here); got {part.strip()!r} in {text!r}.")
        values.append(value)
    return values


def format_threshold(value) -> str:
    """One threshold as text that `parse_thresholds` reads back exactly: `none` or the float's shortest repr."""
    value = _as_float(value)
    return NO_EXIT if math.isinf(value) and value > 0 else repr(value)


def format_thresholds(thresholds) -> str:
    """Thresholds as one command-line word (`none,0.9007123,...,0.0`): what --threshold accepts unchanged."""
    values = thresholds.tolist() if isinstance(thresholds, torch.Tensor) else list(thresholds)
    return ",".join(format_threshold(v) for v in values)


def reaches(scores: torch.Tensor, thresholds) -> torch.Tensor:
    """The exit rule, written once: a sample may leave at an exit when its score reaches the threshold there,
    score >= t compared in float64 (so a threshold printed and read back exactly leaves exactly the same samples; +inf:
    nobody). Broadcasts. Used by `assign_exits`, real early exit (early_exit.py) and calibration's family; the ONNX
    early-exit graph and the README's ONNX Runtime loop write it in their own operators (tests/test_exit_rule.py)."""
    return scores.double() >= torch.as_tensor(thresholds, dtype=torch.float64, device=scores.device)


def assign_exits(confidence: torch.Tensor, thresholds, score_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """[n_samples] exit index: the first exit whose score reaches its threshold; the last takes the rest."""
    confidence = _check_confidence(confidence)
    t = check_thresholds(thresholds, confidence.shape[0], score_range).to(confidence.device)
    passed = reaches(confidence, t[:, None])
    passed[-1] = True
    return passed.to(torch.uint8).argmax(0)


def exit_outcome(predictions: ExitPredictions, exits: torch.Tensor, macs: list[float]) -> dict:
    """Accuracy, average MACs and per-exit fractions when each sample leaves at exits[i] (the JSON of a curve point)."""
    outcome = outcome_of(predictions, exits, macs)
    return {"top1": outcome.top1, "avg_macs": outcome.avg_macs,
            "exit_fractions": (outcome.counts.double() / len(exits)).tolist()}


def thresholds_to_json(t) -> list:
    """Thresholds as a JSON list: numbers, and null for "no exit here" (never Infinity: not JSON)."""
    values = t.tolist() if isinstance(t, torch.Tensor) else [_as_float(v) for v in t]
    return [None if math.isinf(v) and v > 0 else v for v in values]


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
        val_top1 = exit_outcome(val, assign_exits(val.confidence, thresholds, ANY_SCORE), macs)["top1"]
        point = exit_outcome(test, assign_exits(test.confidence, thresholds, ANY_SCORE), macs)
        if monotone and last_top1 is not None and val_top1 <= best_val:
            point["top1"] = last_top1
        best_val, last_top1 = max(best_val, val_top1), point["top1"]
        curve.append({"q": p / 20, "avg_macs": point["avg_macs"], "top1": point["top1"], "val_top1": val_top1,
                      "thresholds": thresholds_to_json(thresholds), "exit_fractions": point["exit_fractions"]})
    return curve


def fit_to_budget(val: ExitPredictions, macs: list[float], budget_macs: float) -> torch.Tensor:
    """Thresholds of the paper's family (fractions ~ q^k) whose average cost on `val` is at most `budget_macs`.

    Bisects on log q; the average cost grows with q. Raises if the budget is below the first exit's cost.
    """
    n_exits, n = _check_confidence(val.confidence).shape
    if budget_macs < macs[0]:
        raise ArgumentError(f"A budget of {budget_macs:.4g} MACs is below the cost of the first exit ({macs[0]:.4g}).")
    # The thresholds depend on q only through how many samples each exit takes, floor(n * pi_k) as fit_thresholds
    # counts them: most of the 61 steps below land on counts already seen, and reuse their thresholds and cost.
    seen: dict[tuple[int, ...], tuple[float, torch.Tensor]] = {}

    def cost(log_q: float) -> tuple[float, torch.Tensor]:
        fractions = exit_fractions(math.exp(log_q), n_exits)
        takes = tuple(math.floor(n * float(f)) for f in fractions[:-1])
        if takes not in seen:
            t = fit_thresholds(val.confidence, fractions)
            exits = assign_exits(val.confidence, t, ANY_SCORE)
            seen[takes] = average_macs(torch.bincount(exits, minlength=n_exits), macs), t
        return seen[takes]

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


def average_macs(counts: torch.Tensor, macs: list[float]) -> float:
    """The average cumulative MACs spent per sample when counts[k] samples leave at exit k."""
    return float((counts.double() / int(counts.sum()) * torch.tensor(macs, dtype=torch.float64)).sum())


@dataclass(frozen=True)
class ExitOutcome:
    """Where each sample leaves at some thresholds, and what that gives (one split, one model)."""
    exits: torch.Tensor              # int64 [N]: exit index taken by each sample (0-based)
    final_prediction: torch.Tensor   # int64 [N]: the class predicted at that exit
    correct: torch.Tensor            # bool [N]
    counts: torch.Tensor             # int64 [E]: samples leaving at each exit
    accuracy_leaving: torch.Tensor   # float64 [E]: top-1 (%) of the samples leaving at each exit (nan: none leave)
    top1: float                      # top-1 (%) over the split
    avg_macs: float                  # average cumulative MACs spent per sample
    full_macs: float                 # MACs of the last exit (every sample through every exit)

    @property
    def cost_ratio(self) -> float:
        """Average MACs over the full network's: the ideal wall-time ratio, not a measured one."""
        return self.avg_macs / self.full_macs


def outcome_of(predictions: ExitPredictions, exits: torch.Tensor, macs: list[float]) -> ExitOutcome:
    """Accuracy and cost when sample i leaves at exits[i]."""
    n_exits = predictions.confidence.shape[0]
    final = predictions.prediction[exits, torch.arange(len(exits))]
    correct = final == predictions.labels
    counts = torch.bincount(exits, minlength=n_exits)
    hits = torch.zeros(n_exits, dtype=torch.float64).index_add_(0, exits, correct.double())
    leaving = torch.where(counts > 0, 100 * hits / counts.clamp(min=1), torch.full_like(hits, math.nan))
    return ExitOutcome(exits, final, correct, counts, leaving, float(correct.double().mean() * 100),
                       average_macs(counts, macs), float(macs[-1]))


def outcome_at(predictions: ExitPredictions, thresholds, macs: list[float],
               score_range: tuple[float, float] | None = None) -> ExitOutcome:
    """Apply thresholds (one, or one per exit) to cached predictions: exits, accuracy and cost.

    score_range: of the criterion whose scores `predictions.confidence` holds (default: max-softmax's [0, 1]).
    """
    return outcome_of(predictions, assign_exits(predictions.confidence, thresholds, score_range or (0.0, 1.0)), macs)


def reach_per_exit(predictions: ExitPredictions, exits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The train/test mismatch of each head, float64 [E] each (percent):

    reach: share of samples that get to exit k (they leave at k or later); accuracy_all: top-1 of exit k on every
    sample, what joint training optimises; accuracy_reached: top-1 of exit k on the samples that reach it, what
    decides the early-exit accuracy (nan where none reach it).
    """
    n_exits = predictions.confidence.shape[0]
    correct = predictions.correct().double()                                  # [E, N]
    reached = exits[None, :] >= torch.arange(n_exits)[:, None]                # [E, N]
    n_reached = reached.sum(1)
    hits = (correct * reached).sum(1)
    return {"reach": 100 * n_reached.double() / exits.numel(),
            "accuracy_all": 100 * correct.mean(1),
            "accuracy_reached": torch.where(n_reached > 0, 100 * hits / n_reached.clamp(min=1),
                                            torch.full_like(hits, math.nan))}
