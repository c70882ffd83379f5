"""A study's grid of training runs (method x gradient rescaling x seeds, any recipe flags) trained side by side.

Each run is an ordinary checkpoint folder, `ROOT/<method>-rescale-<on|off>-seed<N>`, trained with `boostnet train`
and then evaluated with `boostnet evaluate` (so its evaluation.json and per-sample cache are there for the report,
report.py). The grid and its shared training flags are recorded in `ROOT/study.json`; running the same
command again skips finished runs and resumes interrupted ones exactly (`--resume`), so a study can span sessions.

Runs go to separate processes: on a CPU the cores are split between them (`--jobs` runs, cores // jobs threads
each); with GPUs, runs are spread over the devices round-robin, several per GPU if `--jobs` exceeds their number.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

from ..atomic import atomic_write_json
from ..checkpoint import LOG, META, RESULTS, TRAIN_STATE, WEIGHTS, CheckpointError, read_meta
from ..errors import ArgumentError
from ..training import EXECUTION_FIELDS, TrainConfig
from .variants import Variant

MANIFEST = "study.json"
# Flags a study sets itself for every run; giving them among the shared training flags is an error.
OWN_FLAGS = ("--method", "--grad-rescale", "--seed", "--out", "--resume", "--threads", "--quiet", "--evaluate")


@dataclass(frozen=True)
class RunSpec:
    variant: Variant
    seed: int
    folder: Path
    epochs: int

    @property
    def name(self) -> str:
        return self.folder.name


def run_folder_name(variant: Variant, seed: int) -> str:
    return f"{variant.method}-rescale-{variant.rescale}-seed{seed}"


def plan(root: str | os.PathLike, variants: list[Variant], seeds: list[int], train_args: list[str],
         epochs: int) -> list[RunSpec]:
    """The runs of a grid under `root`, after recording it in the study's manifest.

    `train_args` are `boostnet train` flags shared by every run (the CLI has checked them); `epochs` is theirs.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ArgumentError(f"{str(root)!r} is a file; a study needs a folder (one checkpoint folder per run inside).")
    if not variants or not seeds:
        raise ArgumentError("A study needs at least one variant and one seed.")
    for flag in train_args:
        if flag.split("=")[0] in OWN_FLAGS:
            raise ArgumentError(f"{flag} is set by the study for each run; leave it out of the training flags.")
    _record_manifest(root, variants, seeds, train_args)
    # Seed by seed, so that a study stopped part-way has complete pairs (every variant of a seed) to compare.
    return [RunSpec(v, s, root / run_folder_name(v, s), epochs) for s in seeds for v in variants]


def _record_manifest(root: Path, variants, seeds, train_args) -> None:
    """study.json holds the shared flags as first recorded; a later call may add variants or seeds but not change
    the flags that define the runs (where and how it executes may differ, and is not written back)."""
    path = root / MANIFEST
    if path.is_file():
        saved = json.loads(path.read_text())
        if _defining(saved.get("train_args", [])) != _defining(train_args):
            raise ArgumentError(f"{str(root)!r} holds a study with other training flags ({shlex.join(saved['train_args'])}); "
                             "use the same flags or another folder.")
        train_args = saved["train_args"]
        variants = list(dict.fromkeys([*map(Variant.parse, saved["variants"]), *variants]))
        seeds = sorted(set(saved["seeds"]) | set(seeds))
        if [str(v) for v in variants] == saved["variants"] and seeds == saved["seeds"]:
            return  # nothing new: the manifest (maybe committed) is left as it is
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"train_args": list(train_args), "variants": [str(v) for v in variants],
                             "seeds": list(seeds)})


# The `boostnet train` flags of the trainer's EXECUTION_FIELDS (where and how a run executes, not what it is), each
# with whether it is a switch (no value): a study may continue with other values, on a GPU or compiled.
_FIELD_TYPES = {f.name: f.type for f in fields(TrainConfig)}
EXECUTION_FLAGS = {"--" + name.replace("_", "-"): _FIELD_TYPES[name] in (bool, "bool") for name in EXECUTION_FIELDS}


def _defining(train_args: list[str]) -> list[str]:
    """The flags that define the runs (EXECUTION_FLAGS and their values left out)."""
    kept, skip = [], False
    for flag in train_args:
        name = flag.split("=")[0]
        if skip:
            skip = False
        elif name in EXECUTION_FLAGS:
            skip = not EXECUTION_FLAGS[name] and "=" not in flag
        else:
            kept.append(flag)
    return kept


def epochs_done(folder: Path) -> int:
    """Finished epochs of a run folder (0 when it has none)."""
    try:
        return int(read_meta(folder).get("train", {}).get("epochs_done", 0))
    except CheckpointError:
        return 0


def is_evaluated(folder: Path) -> bool:
    """An evaluation newer than the weights (a shipped run may keep its evaluation and drop its weights)."""
    results, weights = folder / RESULTS, folder / WEIGHTS
    if not results.is_file():
        return False
    return not weights.is_file() or results.stat().st_mtime >= weights.stat().st_mtime


def commands_for(run: RunSpec, train_args: list[str], threads: int) -> list[list[str]]:
    """The commands still needed for a run: train (or resume) and evaluate unless finished, else evaluate unless
    done, else none."""
    python = [sys.executable, "-m", "boostnet_core"]
    if epochs_done(run.folder) < run.epochs:
        resume = ["--resume"] if (run.folder / TRAIN_STATE).is_file() else []
        return [[*python, "train", *train_args, "--method", run.variant.method, "--grad-rescale",
                 run.variant.rescale, "--seed", str(run.seed), "--out", str(run.folder),
                 "--threads", str(threads), "--quiet", "--evaluate", *resume]]
    if not is_evaluated(run.folder):
        return [[*python, "evaluate", str(run.folder), "--quiet"]]
    return []


def run_study(runs: list[RunSpec], train_args: list[str], jobs: int = 1, progress_every: float = 30.0,
              stream=sys.stderr, threads: int | None = None) -> list[str]:
    """Train and evaluate every run not yet finished, `jobs` at a time, each on `threads` CPU threads (default: the
    machine's cores shared among the jobs). Returns the names of failed runs."""
    import torch
    if jobs < 1:
        raise ArgumentError(f"--jobs must be at least 1, got {jobs}.")
    if threads is not None and threads < 1:
        raise ArgumentError(f"threads must be at least 1, got {threads}.")
    gpus = torch.cuda.device_count()
    threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // jobs)
    todo = [r for r in runs if commands_for(r, train_args, threads)]
    print(f"study: {len(runs)} runs, {len(runs) - len(todo)} already finished, {len(todo)} to do, "
          f"{jobs} at a time ({f'{gpus} GPUs' if gpus else f'{threads} CPU threads each'})", file=stream, flush=True)
    failed: list[str] = []
    stop = threading.Event()

    def work(index_and_run):
        index, run = index_and_run
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        run.folder.parent.mkdir(parents=True, exist_ok=True)
        with open(run.folder.parent / f".{run.name}.log", "ab") as log:
            for command in commands_for(run, train_args, threads):
                log.write(f"$ {shlex.join(command)}\n".encode()); log.flush()
                if subprocess.run(command, env=env, stdout=log, stderr=log).returncode != 0:
                    failed.append(run.name)
                    print(f"study: {run.name} failed; see {run.folder.parent / f'.{run.name}.log'}", file=stream, flush=True)
                    return

    reporter = threading.Thread(target=_report_progress, args=(runs, stop, progress_every, stream), daemon=True)
    reporter.start()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(work, enumerate(todo)))
    finally:
        stop.set()
        reporter.join(timeout=1)
    _print_progress(runs, stream)
    return failed


def _report_progress(runs, stop: threading.Event, every: float, stream) -> None:
    while not stop.wait(every):
        _print_progress(runs, stream)


def _print_progress(runs: list[RunSpec], stream) -> None:
    done = sum(min(epochs_done(r.folder), r.epochs) for r in runs)
    total = sum(r.epochs for r in runs)
    finished = sum(epochs_done(r.folder) >= r.epochs and is_evaluated(r.folder) for r in runs)
    print(f"study: {done}/{total} epochs ({100 * done / max(total, 1):.0f}%), {finished}/{len(runs)} runs finished "
          f"and evaluated, {time.strftime('%H:%M:%S')}", file=stream, flush=True)


def run_folders(root: str | os.PathLike) -> list[Path]:
    """Every checkpoint folder under `root` (any depth, `root` itself included), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ArgumentError(f"{str(root)!r} is not a folder; give the folder of a study or of a run.")
    return sorted(p.parent for p in root.rglob(META) if (p.parent / LOG).is_file() or (p.parent / RESULTS).is_file())
