"""The "auto" engine: measures the engines that prepare on this machine and runs each use on the fastest.

A use is a batch size class (one image: 1-4, a batch: 5-128, a whole split: more; measured at 1, 64 and 256
images) and a mode: "whole" (every exit for every sample, one fused graph where the engine has one: anytime
evaluation, traces), "early" (max-softmax early exit, one graph where the engine has one) or "walk" (block by block,
as the other criteria and the stream run). The first call of a use prepares the candidates
(once per set of weights, shared with explicit requests) and times each on random inputs of that size (the best of
interleaved rounds; early exit with a mix of early and late exits); the pick is kept for the model's weights, logged,
and readable in `picked`, and kept on disk (disk_cache.py): a later process on the same machine and weights prepares
the engine picked for a use alone, without preparing and timing the others.

Max-softmax early exit then runs each call by the use's ExitPlan: the early pick's one graph, or the same engine's
whole network with the exits chosen afterwards (`exits_chosen_after`), whichever the exits seen so far at that
threshold setting make cheaper, from both plans' costs measured with the pick.

The picks are data: a table per use with the engine, every candidate's seconds per call, and when, on which
machine and under what load they were measured (`measurement_conditions`). `boostnet engines CKPT` prints it;
`boostnet engines CKPT --measure` (`AutoEngine.measure_all`) measures every use again now, for a machine that was
busy when the table was made.
"""
from __future__ import annotations

import logging
import os
import platform
import threading
import time
import weakref
from datetime import datetime, timezone

import numpy as np
import torch

from ..criteria import softmax_top
from ..models.stepwise import iter_exits, select_samples
from ..thresholds import assign_exits
from .base import InferenceEngine
from .registry import try_prepare

log = logging.getLogger("boostnet_core.engines")
CANDIDATES = ("openvino", "onnxruntime", "torch-fold")   # torch-jit (0.2-0.3 s to prepare) was never the fastest here
USES = (("image", 4, 1), ("batch", 128, 64), ("split", None, 256))   # name, largest batch, batch measured
MODES = ("whole", "early", "walk")


def measurement_conditions() -> dict:
    """When, where and under what load a timing is taken: a pick made on a busy machine can be told and re-measured."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average_1min": load}


def use_of(batch: int) -> tuple[str, int]:
    for name, largest, measured in USES:
        if largest is None or batch <= largest:
            return name, measured
    raise AssertionError


PAUSE = 0.05   # seconds of rest before a candidate's turn in _seconds (a runtime's threads spin after a run)


def _seconds(runs: dict, budget: float = 0.6, rounds: int = 5, calls: int = 1, together: tuple = ()) -> dict:
    """Seconds per call of each function in `runs` (name -> fn): the best of interleaved rounds, so that a moment of
    noise slows every candidate alike instead of deciding the pick. At least two rounds; more while under `budget`
    seconds. In each round a candidate's `calls` calls are timed together (a one-image call of 1-3 ms is too short to
    time alone on a shared machine), after a pause of PAUSE seconds and one untimed call: an ONNX Runtime session's
    threads keep spinning for tens of milliseconds after its last run, and on 2 cores another session's run right
    after one took 1.5-2.5x its time (after a 50 ms pause, its own time). Names in `together` follow each other
    without a pause (the same session, e.g. one graph at several thresholds)."""
    for fn in runs.values():
        fn()   # warm-up (first-call allocations, lazy compilation)
    best, spent, previous = dict.fromkeys(runs, float("inf")), 0.0, None
    for done in range(rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            if not (name in together and previous in together):
                time.sleep(PAUSE)
                fn()
            t_timed = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t_timed) / calls)
            spent += time.perf_counter() - t
            previous = name
        if done >= 1 and spent > budget:
            break
    return best


def _runner(engine: InferenceEngine, x: torch.Tensor, mode: str, thresholds: list[list[float]] | None = None):
    """What a use runs, for timing: the whole network, the block walk, or early exit with a mix of early and late
    exits (an engine's early-exit graph can be fast when everyone runs to the end and slow when samples leave:
    OpenVINO's, whose shapes then change inside the graph). Early exit runs the engine's one graph at each of
    `thresholds`; an engine without one walks its blocks, half of the samples leaving at each exit (one image: once
    leaving at the first exit, once running to the end)."""
    if mode == "whole":
        return lambda: engine.head_logits(x)
    run = engine.fused_early_exit(len(x)) if mode == "early" else None
    if run is not None:
        return lambda: [run(x, t) for t in thresholds]
    if mode == "early":
        return lambda: _walk(engine, x, leave_half=True) if len(x) > 1 else (_walk(engine, x, stop_after=1), _walk(engine, x))
    return lambda: _walk(engine, x)


def _walk(engine: InferenceEngine, x: torch.Tensor, leave_half: bool = False, stop_after: int | None = None) -> None:
    for step in iter_exits(engine, x):
        if stop_after is not None and step.index + 1 >= stop_after:
            return
        if leave_half and len(x) > 1:
            keep = torch.arange(len(x)) < (len(x) + 1) // 2
            x = x[keep]
            step.state = select_samples(step.state, keep)


def _mixed_exit_thresholds(model, engine: InferenceEngine, x: torch.Tensor) -> list[list[float]]:
    """Max-softmax thresholds for timing early exit: per exit, the median confidence of the samples that reach it
    (about half leave at each exit); one image instead runs twice, leaving at the first exit and at the last."""
    if len(x) == 1:
        return [[0.0] * model.num_exits, [1.0] * model.num_exits]
    previous, thresholds, running = None, [], torch.ones(len(x), dtype=torch.bool)
    for head in engine.head_logits(x)[:-1]:
        previous = model.exit_step(head, previous)
        confidence = softmax_top(previous)[0]
        t = float(confidence[running].median()) if running.any() else 1.0
        thresholds.append(t)
        running &= confidence < t
    return [thresholds + [1.0]]


def exits_chosen_after(engine: InferenceEngine, x: torch.Tensor, thresholds: list[float]):
    """Max-softmax early exit decided after the whole network ran for every sample on `engine`, an engine with a one
    graph (the ONNX engines): F_k and confidences from its whole graph (`exit_decisions`, by the operators of its
    one-graph early exit), the exits by `thresholds.assign_exits`. The exits and logits are every other path's
    (tests/test_exit_rule.py). Returns what an engine's one-graph early exit returns: (exit index [B], F at the exit
    [B, C], its confidence [B], confidence per exit [N, B], nan beyond the exit)."""
    exits, confidence = engine.exit_decisions(x)               # [N, B, C], [N, B]
    exit_index = assign_exits(confidence, thresholds)
    samples = torch.arange(exits.shape[1])
    beyond = torch.arange(len(exits))[:, None] > exit_index[None, :]
    exit_confidence = confidence.masked_fill(beyond, float("nan"))
    return exit_index, exits[exit_index, samples], confidence[exit_index, samples], exit_confidence


class ExitPlan:
    """Chooses, call by call, how max-softmax early exit runs on one engine: its one graph (samples leave the batch
    inside it) or its whole network, the exits chosen afterwards (`exits_chosen_after`). Both compute F_k and the
    confidences with the same operators of the same runtime, so they give the same exits and logits: which plan ran
    never shows in the results (on two engines they could differ at a threshold within ~1e-6 of a confidence).

    The one graph saves the MACs of the samples that leave but pays for its gathers and branches; when most samples
    run far, the whole network is cheaper. Measured once per use (`costs`): the one graph's seconds per call with
    every sample leaving at exit k, for each k, and the whole plan's seconds. Per threshold setting (the thresholds
    but the last, which decides nothing) it keeps the number of samples that left at each exit in the calls so far,
    the earlier calls' counts decaying (x DECAY per call) so that a changing stream is followed; a call runs the one
    graph when the expected cost, sum_k count_k x seconds_k / sum_k count_k, is below the whole plan's, else the whole
    network; the first call of a setting runs the whole network, which shows where its samples leave. The model is
    approximate (a batch whose samples leave at several exits runs its later blocks on smaller subsets, which cost
    more per sample than the measured batches), so it steers away from the plans that cost clearly more."""

    DECAY = 0.9          # weight of the earlier calls' exit counts at each call
    SETTINGS = 256       # threshold settings remembered (the most recent)

    def __init__(self, engine: InferenceEngine, batch: int, costs: dict):
        self.engine, self.costs = engine, costs
        self._one_graph = engine.fused_early_exit(batch)
        self._seen: dict[tuple, np.ndarray] = {}    # threshold setting -> decayed exit counts
        self._lock = threading.Lock()

    def choose(self, thresholds: list[float]) -> str:
        """ "one graph" or "whole" for a call at these thresholds."""
        with self._lock:
            seen = self._seen.get(tuple(thresholds[:-1]))
        if seen is None or not seen.sum() > 0:
            return "whole"
        expected = float(seen @ np.asarray(self.costs["one_graph_by_exit"]) / seen.sum())
        return "one graph" if expected < self.costs["whole_then_choose"] else "whole"

    def run(self, x: torch.Tensor, thresholds: list[float]):
        """(the plan that ran, what an engine's one graph returns) for one call."""
        plan = self.choose(thresholds)
        if plan == "one graph":
            result = self._one_graph(x, thresholds)
        else:
            result = exits_chosen_after(self.engine, x, thresholds)
        if len(x):
            self._remember(thresholds, result[0])
        return plan, result

    def _remember(self, thresholds: list[float], exit_index: torch.Tensor) -> None:
        counts = np.bincount(exit_index.numpy(), minlength=len(self.costs["one_graph_by_exit"])).astype(np.float64)
        key = tuple(thresholds[:-1])
        with self._lock:
            earlier = self._seen.pop(key, None)
            self._seen[key] = counts if earlier is None else self.DECAY * earlier + counts
            while len(self._seen) > self.SETTINGS:
                self._seen.pop(next(iter(self._seen)))


class AutoEngine(InferenceEngine):
    """Runs every call on the engine measured fastest for its use; a walk stays on the engine of its first block."""

    name = "auto"

    def __init__(self, model, precision: str, disk=None):
        super().__init__(model.backbone, precision)
        self._model_ref = weakref.ref(model)   # the registry keeps models weakly: a strong reference here kept them all
        self._disk = disk                 # disk_cache.EngineCache: picks measured by an earlier process, or None
        self._engines: list[InferenceEngine] | None = None
        self.picked: dict[tuple[str, str], str] = {}   # (use, mode) -> engine name
        # seconds per call, per candidate (for a pick kept on disk: as the process that measured it timed them)
        self.timings: dict[tuple[str, str], dict[str, float]] = {}
        self.conditions: dict[tuple[str, str], dict] = {}   # when, where, under what load each use was measured
        self._choice: dict[tuple[str, str], InferenceEngine] = {}
        self.exit_plans: dict[str, ExitPlan] = {}   # use -> how its early exit is run, call by call
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def _model(self):
        model = self._model_ref()
        if model is None:
            raise ReferenceError("The model this auto engine was prepared for no longer exists; prepare one for the "
                                 "model you run.")
        return model

    def candidates(self) -> list[InferenceEngine]:
        if self._engines is None:
            # A backbone without an ONNX form (RANet) is not offered to the ONNX engines: nothing to warn about.
            names = [n for n in CANDIDATES if self._model.backbone.has_onnx_form or n.startswith("torch")]
            found = [try_prepare(self._model, n, self.precision) for n in names]
            self._engines = [e for e in found if e is not None] or [try_prepare(self._model, "torch", self.precision)]
        return self._engines

    def pick(self, batch: int, mode: str) -> InferenceEngine:
        use, measured = use_of(batch)
        key = (use, mode)
        with self._lock:
            if key not in self._choice:
                self._choice[key] = self._measure(key, measured, mode)
        engine = self._choice[key]
        self._local.last = engine.name
        return engine

    def measure_all(self) -> dict[str, dict]:
        """Measure every use now, whatever was measured before (`boostnet engines CKPT --measure`), keep the picks
        (here and on disk), and return the table: "use/mode" -> {"engine", "seconds", "measured"}."""
        table = {}
        for use, _, batch in USES:
            for mode in MODES:
                with self._lock:
                    self._choice[(use, mode)] = self._measure((use, mode), batch, mode, fresh=True)
                table[f"{use}/{mode}"] = {"engine": self.picked[(use, mode)],
                                          "seconds": self.timings.get((use, mode), {}),
                                          "measured": self.conditions.get((use, mode), {})}
                if mode == "early" and use in self.exit_plans:
                    table[f"{use}/{mode}"]["exit_plan"] = self.exit_plans[use].costs
        return table

    def _measure(self, key, batch: int, mode: str, fresh: bool = False) -> InferenceEngine:
        remembered = None if fresh else self._remembered(key, batch)
        if remembered is not None:
            return remembered
        engines = self.candidates()
        if len(engines) == 1:
            best = engines[0]
        else:
            x = torch.randn(batch, *self._model.input_shape, generator=torch.Generator().manual_seed(0))
            self.conditions[key] = measurement_conditions()
            with torch.inference_mode():
                thresholds = _mixed_exit_thresholds(self._model, engines[0], x) if mode == "early" else None
                times = _seconds({e.name: _runner(e, x, mode, thresholds) for e in engines})
            self.timings[key] = times
            best = min(engines, key=lambda e: times[e.name])
        self.picked[key] = best.name
        log.info("auto engine: %s for %s (%s), measured %s", best.name, key[0], key[1], self.timings.get(key))
        costs = self._measure_exit_plan(key[0], best, batch) if mode == "early" else None
        if self._disk is not None and len(engines) > 1:
            self._disk.keep_pick(self.precision, key[0], key[1], best.name, self.timings.get(key),
                                 self.conditions.get(key), exit_plan=costs)
        return best

    def _measure_exit_plan(self, use: str, engine: InferenceEngine, batch: int) -> dict | None:
        """What ExitPlan weighs for this use, timed on random images in interleaved rounds: the engine's one graph with
        every sample leaving at exit k (seconds per call, for each k), and the whole network then the exits chosen, on
        the same engine. None for an engine without a one graph (it walks the blocks)."""
        one_graph = engine.fused_early_exit(batch)
        if one_graph is None:
            self.exit_plans.pop(use, None)
            return None
        model = self._model
        x = torch.randn(batch, *model.input_shape, generator=torch.Generator().manual_seed(0))
        n, inf = model.num_exits, float("inf")
        at = [[inf] * k + [0.0] * (n - k) for k in range(n)]   # nobody leaves before exit k, everyone at k
        runs = {f"exit{k + 1}": (lambda t=t: one_graph(x, t)) for k, t in enumerate(at)}
        runs["whole_then_choose"] = lambda: exits_chosen_after(engine, x, at[-1])
        with torch.inference_mode():
            seconds = _seconds(runs, calls=max(1, 16 // batch), together=tuple(runs)[:n])
        costs = {"engine": engine.name, "one_graph_by_exit": [seconds[f"exit{k + 1}"] for k in range(n)],
                 "whole_then_choose": seconds["whole_then_choose"]}
        self.exit_plans[use] = ExitPlan(engine, batch, costs)
        return costs

    def _remembered(self, key, batch: int) -> InferenceEngine | None:
        """The engine an earlier process measured fastest for this use on these weights (disk_cache.py), prepared
        alone, without the other candidates, with its early-exit plan's costs; None when there is none, it no longer
        prepares, or an early-exit pick lacks the costs its one graph needs (measured again)."""
        if self._disk is None:
            return None
        found = self._disk.picks(self.precision).get(f"{key[0]}/{key[1]}")
        if not isinstance(found, dict) or found.get("engine") not in CANDIDATES:
            return None
        engine = try_prepare(self._model, found["engine"], self.precision)
        if engine is None:
            return None
        if key[1] == "early" and engine.fused_early_exit(batch) is not None:
            costs = found.get("exit_plan")   # its form checked by disk_cache
            if costs is None or costs["engine"] != engine.name or len(costs["one_graph_by_exit"]) != self.num_exits:
                return None
            self.exit_plans[key[0]] = ExitPlan(engine, batch, costs)
        self.picked[key] = engine.name
        self.timings[key] = dict(found.get("seconds") or {})
        self.conditions[key] = dict(found.get("measured") or {})
        log.info("auto engine: %s for %s (%s), as measured earlier on this machine", engine.name, key[0], key[1])
        return engine

    @property
    def last(self) -> str | None:
        """The engine that ran this thread's last call."""
        return getattr(self._local, "last", None)

    def describe(self) -> str:
        return f"auto:{self.last}" if self.last else "auto"

    def run_block(self, i: int, state):
        walk = getattr(self._local, "walk", None)
        if i == 0 or walk is None:
            batch = (state if isinstance(state, torch.Tensor) else state[0]).shape[0]
            walk = self._local.walk = self.pick(batch, "walk")
        self._local.last = walk.name
        return walk.run_block(i, state)

    def run_head(self, i: int, state) -> torch.Tensor:
        return self._local.walk.run_head(i, state)

    def head_input(self, state) -> torch.Tensor:
        return self._local.walk.head_input(state)

    def head_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.pick(len(x), "whole").head_logits(x)

    def fused_early_exit(self, batch: int):
        """Max-softmax early exit in one call for this batch size, run as the use's ExitPlan chooses (the early pick's
        one graph, or the whole network then the exits chosen), or None where walking the blocks (mode "walk") was
        measured faster."""
        engine = self.pick(batch, "early")
        if engine.fused_early_exit(batch) is None:
            return None
        plan = self.exit_plans[use_of(batch)[0]]

        def run(x: torch.Tensor, thresholds: list[float]):
            chosen, result = plan.run(x, thresholds)
            self._local.last = engine.name if chosen == "one graph" else f"{engine.name} (whole network)"
            return result
        return run
