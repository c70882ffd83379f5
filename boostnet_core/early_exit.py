"""Real early exit: blocks run only for the samples that are still undecided.

After each exit the samples whose confidence (max softmax of F_k) reached the threshold leave the batch, and the
backbone state is cut down to the rest, so no work is spent on exited samples. The authors' code runs every exit
for every sample and simulates the exits from the outputs (arXiv 2211.16726, section 4, experiments; docs/method.md).

`predict_early` does this within one batch; `predict_early_stream` pools the samples that continue across a
stream of batches, so that every block runs on full batches. Both walk the network with models/stepwise.iter_exits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .engines import engine_for, engine_name
from .models.stepwise import eval_mode, iter_exits
from .thresholds import check_thresholds


@dataclass
class EarlyExit:
    exit_index: torch.Tensor        # int64 [B], 0-based
    logits: torch.Tensor            # [B, C]: F at the exit
    confidence: torch.Tensor        # [B]: max softmax of F at the exit
    macs: torch.Tensor              # float64 [B]: cumulative MACs actually spent
    exit_confidences: torch.Tensor  # [N_exits, B]: confidence at every exit computed (nan beyond the exit)
    engine: str = "eager"           # what ran the blocks (engines/: e.g. "auto:onnxruntime"; "eager" for fast=False)


def select_samples(state, keep: torch.Tensor):
    """The backbone state restricted to the samples in `keep` (batch dimension first everywhere)."""
    if isinstance(state, torch.Tensor):
        return state[keep]
    if isinstance(state, (list, tuple)):
        return type(state)(select_samples(s, keep) for s in state)
    if isinstance(state, dict):
        return {k: select_samples(v, keep) for k, v in state.items()}
    return state  # counters (RANet's flow and block) are the same for every sample


def concat_samples(states: list):
    """Join backbone states of several groups of samples along the batch dimension."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(states)
    if isinstance(first, (list, tuple)):
        return type(first)(concat_samples([s[i] for s in states]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: concat_samples([s[k] for s in states]) for k in first}
    return first


def _decide(model, step, previous, thresholds: list[float]):
    """Exit logits F_k = f_k + w F_{k-1}, their confidence, and who leaves at exit k (everyone at the last)."""
    f = step.head_logits
    exit_logits = f if previous is None else f + model.reweight * previous
    conf = exit_logits.softmax(-1).max(-1).values
    if step.index == model.num_exits - 1:
        leave = torch.ones_like(conf, dtype=torch.bool)
    else:
        leave = conf.double() >= thresholds[step.index]
    return exit_logits, conf, leave


@torch.inference_mode()
def predict_early(model, x: torch.Tensor, thresholds, fast: bool = True, *, engine=None) -> EarlyExit:
    """Exit each sample at the first exit whose confidence reaches its threshold (the last exit takes the rest).

    engine: an InferenceEngine, an engine name, or None for the model's default engine (engines/, prepared once per
    set of weights and reused by later calls); fast=False runs the eager model exactly as trained.
    """
    n_exits = model.num_exits
    t = check_thresholds(thresholds, n_exits).tolist()
    device, b = x.device, x.shape[0]
    exit_index = torch.full((b,), n_exits - 1, dtype=torch.long, device=device)
    logits = torch.zeros(b, model.num_classes, device=device)
    confidence = torch.zeros(b, device=device)
    exit_conf = torch.full((n_exits, b), float("nan"), device=device)
    active = torch.arange(b, device=device)       # original positions of the samples still running
    previous = None
    backbone = engine_for(model, engine, fast)
    with eval_mode(model):
        for step in iter_exits(backbone, x):
            k = step.index
            exit_logits, conf, leave = _decide(model, step, previous, t)
            exit_conf[k, active] = conf
            if leave.all():
                exit_index[active], logits[active], confidence[active] = k, exit_logits, conf
                break
            previous = exit_logits
            if leave.any():
                gone, keep = active[leave], ~leave
                exit_index[gone], logits[gone], confidence[gone] = k, exit_logits[leave], conf[leave]
                active, previous, step.state = active[keep], exit_logits[keep], select_samples(step.state, keep)
    macs = torch.tensor(model.macs, dtype=torch.float64, device=device)[exit_index]
    return EarlyExit(exit_index, logits, confidence, macs, exit_conf, engine_name(backbone))


@torch.inference_mode()
def predict_early_stream(model, batches, thresholds, batch_size: int | None = None, fast: bool = True, *,
                         engine=None) -> EarlyExit:
    """Early exit over a stream of input batches, pooling the samples that continue across batches.

    Samples that do not exit at block k wait in a queue for block k+1 until `batch_size` of them (default: the
    size of the first batch) are there, so every block runs on full batches and the cost per sample follows the
    MACs actually needed. Results are per sample, in input order, identical to `predict_early`'s.
    fast, engine: as for `predict_early`.
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
        state = concat_samples([c[1] for c in chunks])
        previous = None if chunks[0][2] is None else torch.cat([c[2] for c in chunks])
        if len(ids) > size:  # run `size` now, put the rest back in front
            rest, head = torch.arange(size, len(ids)), torch.arange(size)
            queues[k].append((ids[size:], select_samples(state, rest), None if previous is None else previous[size:]))
            ids, state, previous = ids[:size], select_samples(state, head), None if previous is None else previous[:size]
        for step in iter_exits(backbone, state, first=k, last=k):
            exit_logits, conf, leave = _decide(model, step, previous, t)
            conf_rows.append((k, ids, conf))
            if leave.any():
                done["ids"].append(ids[leave]); done["exit"].append(torch.full((int(leave.sum()),), k))
                done["logits"].append(exit_logits[leave]); done["conf"].append(conf[leave])
            keep = ~leave
            if keep.any():
                step.state = select_samples(step.state, keep)
        if keep.any():  # the walk handed the kept samples' state on to block k+1
            queues[k + 1].append((ids[keep], step.state, exit_logits[keep]))

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
    for k, ids, conf in conf_rows:
        exit_conf[k, ids] = conf.cpu()
    macs = torch.tensor(model.macs, dtype=torch.float64)[exit_index]
    return EarlyExit(exit_index, torch.cat(done["logits"])[order], torch.cat(done["conf"])[order], macs, exit_conf,
                     engine_name(backbone))
