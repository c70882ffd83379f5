"""Certified thresholds (Learn-then-Test) and reliability diagrams: what an exit's score promises.

Certified thresholds. Per-exit thresholds with a finite-sample guarantee, computed from a checkpoint's cached
validation outputs (docs/method.md, "Thresholds with a guarantee"). For a risk R of early exit measured against the
last exit, a level epsilon and an error rate delta, `certify` returns thresholds such that, with probability at
least 1 - delta over the draw of the calibration images, R <= epsilon on new images from the same distribution
(the calibration and test images must be exchangeable). Risks (`RISKS`), each the mean of a 0/1 loss per image:
- "disagreement": early exit predicts another class than the last exit would (CALM's consistency);
- "accuracy-drop": the last exit is right and early exit is wrong. Its mean is at least the accuracy lost against
  the last exit (images early exit gets right and the last exit wrong only count in early exit's favour there), so
  certifying it certifies the accuracy drop.
The procedure (Learn-then-Test, Angelopoulos et al. 2021, with fixed-sequence testing):
1. the validation split is cut in two fixed random halves (`calibration_parts`): a family part and a calibration part;
2. on the family part, the paper's thresholds for exit fractions ~ q^k, q from 2^8 down to 2^-8 (`threshold_family`),
   each moved to the midpoint below it between two scores of the family part (the same family-part samples leave,
   and no image's exit depends on float rounding: printed thresholds reproduce the certified exits on any engine),
   ordered by their cost on the family part, safest first; member 0 sends everyone to the last exit (risk 0). The
   family depends on the family part only, so it is fixed before the calibration part is looked at;
3. on the calibration part, for members 1, 2, ... in that order: the exact binomial p-value of "R > epsilon",
   P(Binomial(n, epsilon) <= losses) (`binomial_p_value`); while it is <= delta the member is certified and the next
   one is tested; the first failure stops. Testing in a fixed order needs no multiplicity correction: the chance of
   certifying any member whose risk exceeds epsilon is at most delta;
4. the last certified member is returned (the cheapest); if none is, member 0.
`uncertified_fit` is the tempting shortcut (the cheapest member whose calibration risk is <= epsilon, no test); it
has no guarantee, and `validity` shows it (bench/calibration.py; tests).

Reliability. `reliability(predictions)`: per exit, the images binned by their max-softmax confidence, each bin's
mean confidence and accuracy, and the expected calibration error (ECE), for "is 0.9 confident 90% right?".

For the app and the CLI: `calibrate_checkpoint(folder, risk, epsilon, delta, criterion)` returns everything
`boostnet calibrate --json` prints: thresholds, the certified level, the calibration set used, and the risk, accuracy
and MACs those thresholds give on the test split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .certificate import RISKS
from .errors import ArgumentError
from .thresholds import ANY_SCORE, ExitPredictions, assign_exits, exit_fractions, fit_thresholds, reaches

FAMILY_Q = tuple(2.0 ** (e / 4) for e in range(32, -33, -1))   # q from 2^8 (safe) down to 2^-8 (cheap)


def check_risk(risk: str, epsilon: float, delta: float) -> None:
    if risk not in RISKS:
        raise ArgumentError(f"Unknown risk {risk!r}; choose one of: {', '.join(RISKS)}.")
    if not 0 < epsilon < 1:
        raise ArgumentError(f"epsilon (the risk level) must lie in (0, 1), got {epsilon!r}.")
    if not 0 < delta < 1:
        raise ArgumentError(f"delta (the chance the guarantee fails) must lie in (0, 1), got {delta!r}.")


def losses(predictions: ExitPredictions, exits: torch.Tensor, risk: str) -> torch.Tensor:
    """bool [..., N]: the risk's 0/1 loss of each image when it leaves at `exits` [..., N] (any leading shape)."""
    index = torch.arange(exits.shape[-1])
    taken = predictions.prediction[exits, index]
    last = predictions.prediction[-1]
    if risk == "disagreement":
        return taken != last
    return (last == predictions.labels) & (taken != predictions.labels)


def binomial_p_value(n_losses: int, n: int, epsilon: float) -> float:
    """Valid p-value of "the risk exceeds epsilon" after n_losses losses in n images:
    P(Binomial(n, epsilon) <= n_losses)."""
    from scipy.stats import binom
    return float(binom.cdf(n_losses, n, epsilon))


def calibration_parts(n: int, seed: int = 0, share: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of n calibration images: (the family part, the testing part)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(round(n * share))
    return order[:cut], order[cut:]


def between_scores(thresholds: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Each finite threshold but the last moved down to the midpoint between it and the next lower score at its exit
    (`scores` [E, N]). The paper's fit puts a threshold exactly on a sample's score, where another engine's float
    rounding (1e-7) decides whether that sample leaves; between two scores it leaves the same samples of `scores` and
    no rounding decides an exit."""
    out = thresholds.clone()
    for k in range(len(out) - 1):
        if math.isfinite(out[k]):
            below = scores[k].double()[scores[k].double() < out[k]]
            if below.numel():
                out[k] = (out[k] + below.max()) / 2
    return out


def threshold_family(scores: torch.Tensor, macs: list[float]) -> torch.Tensor:
    """[J, E] per-exit thresholds, safest first: row 0 sends everyone to the last exit; rows 1.. the paper's fits for
    q in FAMILY_Q on `scores` [E, N] (the family part), each placed between two scores (`between_scores`), ordered
    by their average cost there, repeats dropped."""
    n_exits = scores.shape[0]
    safest = torch.full((n_exits,), math.inf, dtype=torch.float64)
    safest[-1] = 0.0
    fits = [safest] + [between_scores(fit_thresholds(scores, exit_fractions(q, n_exits)), scores) for q in FAMILY_Q]
    family = torch.unique_consecutive(torch.stack(fits), dim=0)
    cost = torch.tensor(macs, dtype=torch.float64)[family_exits(scores, family)].mean(1)
    cost[0] = math.inf   # everyone to the last exit stays first
    return family[torch.sort(-cost, stable=True).indices]


def family_exits(scores: torch.Tensor, family: torch.Tensor) -> torch.Tensor:
    """int64 [J, N]: the exit of every image under every member of the family."""
    exits = torch.full((len(family), scores.shape[1]), scores.shape[0] - 1, dtype=torch.int64)
    for k in range(scores.shape[0] - 2, -1, -1):   # from the back, so the first exit passed wins
        exits[reaches(scores[k][None], family[:, k, None])] = k
    return exits


def fixed_sequence(family_loss_counts: torch.Tensor, n: int, epsilon: float, delta: float) -> tuple[int, list[float]]:
    """(index of the last certified member, 0 if none; the p-values computed, member 1 first) for loss counts [J]."""
    from scipy.stats import binom
    all_p = binom.cdf(family_loss_counts[1:].numpy(), n, epsilon)   # the same values as binomial_p_value, at once
    chosen, p_values = 0, []
    for j, p in enumerate(all_p.tolist(), start=1):
        p_values.append(p)
        if p > delta:
            break
        chosen = j
    return chosen, p_values


@dataclass
class CertifiedChoice:
    """Certified thresholds and how they were found (the file that carries them: certificate.py)."""
    thresholds: torch.Tensor     # float64 [E]
    member: int                  # index in the family (0: everyone to the last exit)
    family_size: int
    p_value: float | None        # of the chosen member (None: member 0, certified without a test)
    calibration_images: int      # images the test used
    family_images: int           # images the family was fitted on
    calibration_risk: float      # the chosen member's risk on the calibration images


def _family_on(val: ExitPredictions, macs: list[float], seed: int, share: float):
    """The family fitted on one part of `val`, the other part, and the exit of its images under every member."""
    family_part, test_part = calibration_parts(val.labels.numel(), seed, share)
    family = threshold_family(val.confidence[:, family_part], macs)
    test = _subset(val, test_part)
    return family, test, family_exits(test.confidence, family), len(family_part)


def certify(val: ExitPredictions, macs: list[float], risk: str, epsilon: float, delta: float, seed: int = 0,
            share: float = 0.5, _fitted=None) -> CertifiedChoice:
    """Learn-then-Test on a validation split (scores in `val.confidence`): family on one part, the test on the other."""
    check_risk(risk, epsilon, delta)
    family, test, exits, family_images = _fitted or _family_on(val, macs, seed, share)
    counts = losses(test, exits, risk).sum(1)
    n = test.labels.numel()
    chosen, p_values = fixed_sequence(counts, n, epsilon, delta)
    return CertifiedChoice(family[chosen], chosen, len(family), p_values[chosen - 1] if chosen else None, n,
                       family_images, float(counts[chosen]) / n)


def uncertified_fit(val: ExitPredictions, macs: list[float], risk: str, epsilon: float, seed: int = 0,
                    share: float = 0.5, _fitted=None) -> torch.Tensor:
    """The shortcut without a guarantee: the cheapest member whose risk on the calibration part is <= epsilon."""
    family, test, exits, _ = _fitted or _family_on(val, macs, seed, share)
    risks = losses(test, exits, risk).double().mean(1)
    return family[int(torch.nonzero(risks <= epsilon)[-1])]


def _subset(p: ExitPredictions, index: torch.Tensor) -> ExitPredictions:
    return ExitPredictions(p.confidence[:, index], p.prediction[:, index], p.top5[:, index], p.labels[index],
                           criterion=p.criterion)


def risk_and_cost(predictions: ExitPredictions, thresholds, macs: list[float], risk: str) -> dict:
    """Risk, top-1 (%), average MACs and exit fractions of thresholds on a split."""
    exits = assign_exits(predictions.confidence, thresholds, ANY_SCORE)
    cost = torch.tensor(macs, dtype=torch.float64)[exits]
    counts = torch.bincount(exits, minlength=len(macs))
    final = predictions.prediction[exits, torch.arange(len(exits))]
    return {"risk": float(losses(predictions, exits, risk).double().mean()),
            "top1": float((final == predictions.labels).double().mean() * 100),
            "last_exit_top1": float((predictions.prediction[-1] == predictions.labels).double().mean() * 100),
            "avg_macs": float(cost.mean()), "cost_ratio": float(cost.mean()) / macs[-1],
            "exit_fractions": (counts.double() / len(exits)).tolist()}


def calibrate_checkpoint(folder, risk: str, epsilon: float, delta: float, criterion=None) -> dict:
    """`boostnet calibrate`: certified thresholds of a checkpoint's cache under a criterion, and their test results.

    The result is the certificate record (certificate.py: `write_certificate` writes it, `read_certificate` reads
    it back): thresholds exact (null: no exit here), the criterion's fitted parameters, and the SHA-256 of the
    weights and of the cache it was computed from. Scores are computed from the cache's float32 exit logits, what
    early exit scores at run time (max-softmax: the cached confidence itself).
    """
    from pathlib import Path
    from .certificate import certificate_record
    from .checkpoint import CACHE, load_model, read_meta, sha256_of
    from .criteria import prepare
    from .evaluation import load_cache
    from .thresholds import thresholds_to_json
    check_risk(risk, epsilon, delta)
    meta = read_meta(folder)   # a folder that is not a checkpoint gets its own sentence
    if (meta.get("data") or {}).get("val_size", 1) == 0:
        raise ArgumentError(f"{folder} was trained without a validation split (--val-size 0), and certified "
                            "thresholds are computed on one; train with --val-size > 0.")
    cache = load_cache(folder)
    if "val" not in cache:
        raise ArgumentError(f"{folder} has no cached validation split to calibrate on; run "
                            f"'boostnet evaluate {folder} --write' first.")
    crit, scored = prepare(cache, criterion, folder)
    macs = load_model(folder).macs
    cert = certify(scored["val"], macs, risk, epsilon, delta)
    data = meta.get("data") or {}
    result = {"checkpoint": str(folder), "criterion": crit.name, "risk": risk, "epsilon": epsilon, "delta": delta,
              "guarantee": f"with probability >= {1 - delta:g} over the calibration images, {risk} <= {epsilon:g} "
                           "on new images like them",
              "thresholds": thresholds_to_json(cert.thresholds),
              "certified_level": epsilon, "nontrivial": cert.member > 0, "p_value": cert.p_value,
              "family": {"members": cert.family_size, "chosen": cert.member},
              "calibration": {"split": "val", "images": cert.calibration_images, "family_images": cert.family_images,
                              "learned_fit_images": cache["val"].labels.numel() - scored["val"].labels.numel(),
                              "risk": cert.calibration_risk, "seed": 0, "dataset": data.get("dataset"),
                              "val_size": data.get("val_size"), "split_seed": data.get("split_seed")},
              "test": risk_and_cost(scored["test"], cert.thresholds, macs, risk), "full_macs": macs[-1]}
    return certificate_record(result, meta["weights_sha256"], sha256_of(Path(folder) / CACHE),
                              crit.params)


# ---------------------------------------------------------------- does the guarantee hold? (re-drawing the data)


def validity(pool: ExitPredictions, macs: list[float], settings: list[tuple[str, float, float]], splits: int = 500,
             calibration_size: int | None = None, procedures=("certified", "uncertified"), seed: int = 0) -> list[dict]:
    """Draw `splits` random calibration/evaluation splits of `pool` (scores in its confidence); on each, run every
    procedure ("certified": `certify`; "uncertified": `uncertified_fit`) for every (risk, epsilon, delta) of
    `settings` on the calibration images, and measure the risk the thresholds give on the evaluation images.

    One dict per setting and procedure: the share of splits whose evaluation risk exceeds epsilon, the allowed share
    (delta plus a one-sided 99% binomial margin over the draws), whether the check holds, mean risk and cost ratio.
    """
    from scipy.stats import binom
    for risk, epsilon, delta in settings:
        check_risk(risk, epsilon, delta)
    n = pool.labels.numel()
    size = calibration_size or n // 3
    g = torch.Generator().manual_seed(seed)
    tally = {(setting, p): {"violations": 0, "cost": 0.0, "risk": 0.0} for setting in settings for p in procedures}
    for s in range(splits):
        order = torch.randperm(n, generator=g)
        cal, ev = _subset(pool, order[:size]), _subset(pool, order[size:])
        fitted = _family_on(cal, macs, s, 0.5)   # one family per draw, shared by every setting
        for setting in settings:
            risk, epsilon, delta = setting
            for p in procedures:
                if p == "certified":
                    t = certify(cal, macs, risk, epsilon, delta, _fitted=fitted).thresholds
                elif p == "uncertified":
                    t = uncertified_fit(cal, macs, risk, epsilon, _fitted=fitted)
                else:
                    raise ArgumentError(f"Unknown procedure {p!r}; choose certified or uncertified.")
                result, row = risk_and_cost(ev, t, macs, risk), tally[(setting, p)]
                row["violations"] += result["risk"] > epsilon
                row["cost"] += result["cost_ratio"]
                row["risk"] += result["risk"]
    out = []
    for ((risk, epsilon, delta), p), row in tally.items():
        allowed = float(binom.ppf(0.99, splits, delta)) / splits
        out.append({"procedure": p, "risk": risk, "epsilon": epsilon, "delta": delta, "splits": splits,
                    "calibration_images": size, "evaluation_images": n - size,
                    "violation_rate": row["violations"] / splits, "allowed_rate": allowed,
                    "holds": row["violations"] / splits <= allowed, "mean_cost_ratio": row["cost"] / splits,
                    "mean_evaluation_risk": row["risk"] / splits})
    return out


# ---------------------------------------------------------------- reliability diagrams


def reliability(predictions: ExitPredictions, bins: int = 10) -> list[dict]:
    """Per exit: equal-width confidence bins over [0, 1] ({"low", "high", "count", "confidence", "accuracy"}, the
    last two nan where empty) and the expected calibration error, sum over bins of share * |accuracy - confidence|.
    Uses the max-softmax confidence of `predictions` (the cache as stored)."""
    if predictions.criterion != "max_softmax":
        raise ArgumentError("Reliability diagrams read max-softmax confidences; pass the cache as stored.")
    correct = predictions.correct().double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    out = []
    for k in range(predictions.confidence.shape[0]):
        conf = predictions.confidence[k].double()
        which = torch.bucketize(conf, edges[1:-1], right=True)   # bin i holds [edges[i], edges[i+1]); 1.0 in the last
        count = torch.bincount(which, minlength=bins).double()
        conf_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, conf)
        hit_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, correct[k])
        mean_conf = torch.where(count > 0, conf_sum / count.clamp(min=1), math.nan)
        accuracy = torch.where(count > 0, hit_sum / count.clamp(min=1), math.nan)
        ece = float(((count / conf.numel()) * (hit_sum - conf_sum).abs() / count.clamp(min=1)).sum())
        out.append({"exit": k, "ece": ece, "bins": [
            {"low": float(edges[i]), "high": float(edges[i + 1]), "count": int(count[i]),
             "confidence": float(mean_conf[i]), "accuracy": float(accuracy[i])} for i in range(bins)]})
    return out
