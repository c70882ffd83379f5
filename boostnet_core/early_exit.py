"""Real early exit: blocks run only for the samples that are still undecided.

After each exit the samples whose score under the exit criterion (criteria.py; default max softmax of F_k) reached
the threshold leave the batch, and the backbone state is cut down to the rest, so no work is spent on exited
samples. F_k comes from the model (`BoostNet.exit_step`, boosting.py); the criterion sees F_k and the top classes
of the earlier exits, which travel with each sample's state. The authors' code runs every exit for every sample
and simulates the exits from the outputs (arXiv 2211.16726, section 4, experiments; docs/method.md).

`predict_early` does this within one batch; `predict_early_stream` pools the samples that continue across a
stream of batches, so that every block runs on full batches. Both walk the network with models/stepwise.iter_exits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .criteria import Criterion, get_criterion, softmax_top
from .errors import ArgumentError
from .engines import InferenceEngine, engine_for, engine_name
from .models.stepwise import concat_samples, eval_mode, iter_exits, select_samples
from .thresholds import check_thresholds, reaches


@dataclass
class EarlyExit:
    exit_index: torch.Tensor        # int64 [B], 0-based
    logits: torch.Tensor            # [B, C]: F at the exit
    confidence: torch.Tensor        # [B]: max softmax of F at the exit
    # float64 [B]: cumulative MACs up to the exit taken, what early exit needs; where auto found the whole network
    # cheaper on this machine it computed more (`engine` then ends in "(whole network)", engines/auto.py ExitPlan)
    macs: torch.Tensor
    exit_confidences: torch.Tensor  # [N_exits, B]: confidence at every exit computed (nan beyond the exit)
    scores: torch.Tensor | None = None       # [B]: the criterion's score at the exit (max-softmax: = confidence)
    exit_scores: torch.Tensor | None = None  # [N_exits, B]: the criterion's score at every exit computed (nan beyond)
    criterion: str = "max_softmax"
    engine: str = "eager"           # what ran the blocks (engines/: e.g. "auto:onnxruntime"; "eager" for fast=False)


def exit_setting(model, thresholds, criterion=None) -> tuple[Criterion, list[float]]:
    """(criterion, per-exit thresholds as floats, +inf = no exit here) from what a caller passes: one threshold, one
    per exit (None = no exit here), or a Certificate (certificate.py), which brings its own criterion and is refused
    for weights other than its own."""
    from .certificate import Certificate
    if isinstance(thresholds, Certificate):
        thresholds.check_model(model)
        certified = thresholds.criterion_object()
        if criterion is not None and get_criterion(criterion).name != certified.name:
            raise ArgumentError(f"The certificate is for the {certified.name} criterion, not "
                                f"{get_criterion(criterion).name}; leave the criterion out to use the certificate's.")
        criterion, thresholds = certified, list(thresholds.thresholds)
    criterion = get_criterion(criterion)
    return criterion, check_thresholds(thresholds, model.num_exits, criterion.score_range).tolist()


def _decide(model, step, carried: dict | None, thresholds: list[float], criterion: Criterion):
    """Exit logits F_k, their confidence and score, who leaves at exit k (everyone at the last), and what the samples
    carry on: {"logits": F_k, "earlier": top classes of exits 0..k [B, k+1]}."""
    previous = None if carried is None else carried["logits"]
    if carried is None:
        earlier = step.head_logits.new_zeros((len(step.head_logits), 0), dtype=torch.long)
    else:
        earlier = carried["earlier"]
    exit_logits = model.exit_step(step.head_logits, previous)
    conf, top = softmax_top(exit_logits)
    score = criterion.score(exit_logits, earlier)
    if step.index == model.num_exits - 1:
        leave = torch.ones_like(conf, dtype=torch.bool)
    else:
        leave = reaches(score, thresholds[step.index])
    return exit_logits, conf, score, leave, {"logits": exit_logits, "earlier": torch.cat([earlier, top[:, None]], 1)}


@torch.inference_mode()
def predict_early(model, x: torch.Tensor, thresholds, fast: bool = True, *, criterion=None, engine=None) -> EarlyExit:
    """Exit each sample at the first exit whose score reaches its threshold (the last exit takes the rest).

    thresholds: one for every exit, one per exit (None: no exit here), or a Certificate (certificate.py; it brings
    its criterion and is refused for other weights). criterion: a name or a Criterion (criteria.py); None is
    max-softmax, the paper's. engine: an InferenceEngine, an engine name, or None for the model's default engine
    (engines/, prepared once per set of weights and reused by later calls); fast=False runs the eager model exactly
    as trained.
    """
    criterion, t = exit_setting(model, thresholds, criterion)
    n_exits = model.num_exits
    device, b = x.device, x.shape[0]
    backbone = engine_for(model, engine, fast)
    # An engine that runs max-softmax early exit as one graph (engines/onnx_graphs.py) runs it whole; the eager
    # backbone (fast=False) and the other criteria walk the blocks below.
    one_graph = isinstance(backbone, InferenceEngine) and criterion.one_graph and device.type == "cpu"
    fused = backbone.fused_early_exit(b) if one_graph else None
    if fused is not None:
        exit_index, logits, confidence, exit_conf = fused(x, t)
        macs = torch.tensor(model.macs, dtype=torch.float64)[exit_index]
        return EarlyExit(exit_index, logits, confidence, macs, exit_conf, confidence.clone(), exit_conf.clone(),
                         criterion.name, engine_name(backbone))
    exit_index = torch.full((b,), n_exits - 1, dtype=torch.long, device=device)
    logits = torch.zeros(b, model.num_classes, device=device)
    confidence, scores = torch.zeros(b, device=device), torch.zeros(b, device=device)
    exit_conf = torch.full((n_exits, b), float("nan"), device=device)
    exit_scores = torch.full((n_exits, b), float("nan"), device=device)
    active = torch.arange(b, device=device)       # original positions of the samples still running
    carried = None
    with eval_mode(model):
        for step in iter_exits(backbone, x):
            k = step.index
            exit_logits, conf, score, leave, carried = _decide(model, step, carried, t, criterion)
            exit_conf[k, active], exit_scores[k, active] = conf, score
            if leave.all():
                exit_index[active], logits[active], confidence[active], scores[active] = k, exit_logits, conf, score
                break
            if leave.any():
                gone, keep = active[leave], ~leave
                exit_index[gone], logits[gone] = k, exit_logits[leave]
                confidence[gone], scores[gone] = conf[leave], score[leave]
                active, carried = active[keep], select_samples(carried, keep)
                step.state = select_samples(step.state, keep)
    macs = torch.tensor(model.macs, dtype=torch.float64, device=device)[exit_index]
    return EarlyExit(exit_index, logits, confidence, macs, exit_conf, scores, exit_scores, criterion.name,
                     engine_name(backbone))


@torch.inference_mode()
def predict_early_stream(model, batches, thresholds, batch_size: int | None = None, fast: bool = True, *,
                         criterion=None, engine=None) -> EarlyExit:
    """Early exit over a stream of input batches, pooling the samples that continue across batches.

    Samples that do not exit at block k wait in a queue for block k+1 until `batch_size` of them (default: the
    size of the first batch) are there, so every block runs on full batches and the cost per sample follows the
    MACs actually needed. Results are per sample, in input order, identical to `predict_early`'s.
    fast, criterion, engine: as for `predict_early`.
    """
    criterion, t = exit_setting(model, thresholds, criterion)
    n_exits = model.num_exits
    queues: list[list] = [[] for _ in range(n_exits)]   # per block: [(sample ids, state before the block, carried)]
    done: dict[str, list] = {"ids": [], "exit": [], "logits": [], "conf": [], "score": []}
    conf_rows: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    next_id = 0

    def waiting(k):
        return sum(len(ids) for ids, _, _ in queues[k])

    def run(k, size):
        chunks, queues[k] = queues[k], []
        ids = torch.cat([c[0] for c in chunks])
        state = concat_samples([c[1] for c in chunks])
        carried = None if chunks[0][2] is None else concat_samples([c[2] for c in chunks])
        if len(ids) > size:  # run `size` now, put the rest back in front
            rest, head = torch.arange(size, len(ids)), torch.arange(size)
            queues[k].append((ids[size:], select_samples(state, rest), select_samples(carried, rest)))
            ids, state, carried = ids[:size], select_samples(state, head), select_samples(carried, head)
        for step in iter_exits(backbone, state, first=k, last=k):
            exit_logits, conf, score, leave, carried = _decide(model, step, carried, t, criterion)
            conf_rows.append((k, ids, conf, score))
            if leave.any():
                done["ids"].append(ids[leave]); done["exit"].append(torch.full((int(leave.sum()),), k))
                done["logits"].append(exit_logits[leave]); done["conf"].append(conf[leave])
                done["score"].append(score[leave])
            keep = ~leave
            if keep.any():
                step.state = select_samples(step.state, keep)
        if keep.any():  # the walk handed the kept samples' state on to block k+1
            queues[k + 1].append((ids[keep], step.state, select_samples(carried, keep)))

    backbone = engine_for(model, engine, fast)
    with eval_mode(model):
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
    exit_scores = torch.full((n_exits, next_id), float("nan"))
    for k, ids, conf, score in conf_rows:
        exit_conf[k, ids], exit_scores[k, ids] = conf.cpu(), score.cpu()
    macs = torch.tensor(model.macs, dtype=torch.float64)[exit_index]
    return EarlyExit(exit_index, torch.cat(done["logits"])[order], torch.cat(done["conf"])[order], macs, exit_conf,
                     torch.cat(done["score"])[order], exit_scores, criterion.name, engine_name(backbone))
