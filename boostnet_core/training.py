"""The training loop: BoostNet or the joint baseline, one process or many (torchrun), CPU or GPU
(arXiv 2211.16726, section 3, method; docs/method.md).

Reads top to bottom: set up (devices, process group), data, model, optimizer, then epochs. Only rank 0 logs and
saves. Every random draw of an epoch (order and augmentation) comes from a generator seeded by (seed, epoch), so a
run resumed from its end-of-epoch state continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from .atomic import atomic_write_bytes
from .boosting import METHODS, BoostNet, boosting_loss
from .data import DataBundle, FileImages, ImageSet, augment_batch, load_dataset, normalize, split_validation
from .devices import DEVICES, pick_device
from .errors import ArgumentError, TrainingError, TrainingStopped
from .evaluation import anytime_accuracy
from .factory import create_model, default_grad_rescale
from .models.presets import DEFAULT_PRESET, DataSpec, get_preset


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "digits"               # digits | mnist5k | cifar10 | cifar100 | folder
    out: str = "runs/model"               # checkpoint folder (created; refused if it holds another run)
    preset: str | None = None             # model preset; None: the data set's default (presets.DEFAULT_PRESET)
    data_root: str | None = None          # where cifar10/cifar100/folder data lie
    method: str = "boostnet"              # boostnet | joint
    reweight: float = 0.5                 # w of F_n = f_n + w F_{n-1} (ignored by joint)
    grad_rescale: str = "auto"            # on | off | auto (on for BoostNet on MSDNet, off for joint: the paper's runs)
    epochs: int = 3
    batch_size: int = 64                  # per process
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"              # cosine (stepped every iteration) | multistep (x0.1 at milestones)
    milestones: tuple[float, ...] = (0.5, 0.75)  # multistep: fractions of the epochs (the paper's 150/225 of 300)
    val_size: float | None = None         # held-out count, fraction < 1, or 0; None: the data set's default
    split_seed: int = 0                   # seed of the validation split
    seed: int = 0                         # seed of the initialisation, data order and augmentation
    eval_test: bool = False               # also measure test top-1 per exit after every epoch (reference recipe)
    train_limit: int | None = None        # train on a stratified sample of this many training images (quick demos)
    device: str = "auto"                  # auto | cpu | cuda
    sync_bn: bool = False                 # SyncBatchNorm across processes (ImageNet recipe)
    workers: int = 4                      # DataLoader workers for streamed (large-image) data
    resume: bool = False                  # continue the run saved in `out`
    precision: str = "fp32"               # fp32 | bf16 (autocast of forward and loss; weights and SGD stay fp32)
    channels_last: bool = False           # channels-last feature maps (GPUs; slower for training on the 2-core CPU)
    compile: bool = False                 # torch.compile the forward pass (CUDA: with CUDA graphs); eager if it fails
    progress: bool = True                 # tqdm progress bar
    command: str = ""                     # the command line, recorded in model.json

    def __post_init__(self):
        if self.method not in METHODS:
            raise ArgumentError(f"Unknown method {self.method!r}; choose one of: {', '.join(METHODS)}.")
        if self.grad_rescale not in ("on", "off", "auto"):
            raise ArgumentError(f"--grad-rescale must be on, off or auto, got {self.grad_rescale!r}.")
        if self.schedule not in ("cosine", "multistep"):
            raise ArgumentError(f"--schedule must be cosine or multistep, got {self.schedule!r}.")
        if self.device not in DEVICES:
            raise ArgumentError(f"--device must be auto, cpu or cuda, got {self.device!r}.")
        if self.train_limit is not None and self.train_limit < 10:
            raise ArgumentError(f"--train-limit must be at least 10 images, got {self.train_limit}.")
        if self.precision not in PRECISIONS:
            raise ArgumentError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ArgumentError(f"--epochs and --batch-size must be >= 1 and --lr > 0, got {self.epochs}, {self.batch_size}, {self.lr}.")

    # The settings that define a run: a resume (and a study, study.py) must agree with them.
    def identity(self) -> dict:
        d = asdict(self)
        for k in ("out", "resume", "progress", "command", *EXECUTION_FIELDS):
            d.pop(k)
        if d["train_limit"] is None:  # runs saved before the field existed resume unchanged
            d.pop("train_limit")
        if d["precision"] == "fp32":  # likewise
            d.pop("precision")
        d["milestones"] = list(d["milestones"])
        return d


PRECISIONS = ("fp32", "bf16")
# Where and how a run executes, not what it is (memory layout and compilation change only the speed): a run may
# resume, and a study continue, with other values.
EXECUTION_FIELDS = ("workers", "device", "data_root", "channels_last", "compile")


_GLOBAL_RNG = threading.Lock()  # guards torch's global generator while a model is initialised


def learning_rate(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total))
    epoch = step // steps_per_epoch
    return cfg.lr * 0.1 ** sum(epoch >= round(m * cfg.epochs) for m in cfg.milestones)


def use_grad_rescale(cfg: TrainConfig, arch: str) -> bool:
    if cfg.grad_rescale == "auto":
        return default_grad_rescale(cfg.method, arch)
    return cfg.grad_rescale == "on"


def build_model_for(cfg: TrainConfig, bundle: DataBundle, in_channels: int | None = None) -> BoostNet:
    """The untrained model a run starts from (through the one factory)."""
    preset_name = cfg.preset or DEFAULT_PRESET[cfg.dataset]
    arch = get_preset(preset_name)["arch"]
    return create_model(preset_name, cfg.method, cfg.reweight, None, in_channels, use_grad_rescale(cfg, arch),
                        classes=bundle.classes, data=bundle.info)


def sync_batch_norm(model: BoostNet) -> BoostNet:
    """Batch-norm statistics computed across every process (the paper's ImageNet recipe); GPUs only, as in torch."""
    model.backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.backbone)
    return model


class HeadLogits(torch.nn.Module):
    """The module a training step runs (and DistributedDataParallel wraps): x -> the raw head logits f_1..f_N."""

    def __init__(self, model: BoostNet):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.head_logits(x)


class CompiledOrEager:
    """`torch.compile(module)`, falling back to the module itself (one warning) if compiling fails: a machine
    without a C++ compiler, or an op the compiler does not support, must not stop a run."""

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.module = module
        # On a GPU a small network is launch-bound: "reduce-overhead" replays the forward as a CUDA graph.
        self.compiled = torch.compile(module, mode="reduce-overhead" if device.type == "cuda" else None)

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as error:  # noqa: BLE001 -- any compiler failure: run eager instead
                warnings.warn(f"--compile failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                              "training continues without it.", RuntimeWarning, stacklevel=2)
                self.compiled = None
        return self.module(*args)


def speed_options(module: torch.nn.Module, device: torch.device, channels_last: bool = False, compile: bool = False,
                  precision: str = "fp32"):
    """x -> `module(x)` (the raw head logits) with a run's speed options; also what bench/train_speed.py measures.

    The model must already be channels-last if `channels_last` (its inputs are converted here). Under bf16 autocast
    the logits are returned in fp32, so the loss is computed in fp32.
    """
    run = CompiledOrEager(module, device) if compile else module
    autocast = precision == "bf16"

    def forward(x):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not autocast:
            return run(x)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = run(x)
        return [f.float() for f in logits]
    return forward


def training_forward(model: BoostNet, device: torch.device, channels_last: bool = False, compile: bool = False,
                     precision: str = "fp32"):
    """x -> the raw head logits of `model`, with a run's speed options (see `speed_options`)."""
    return speed_options(HeadLogits(model), device, channels_last, compile, precision)


def train_step(forward, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               reweight: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One optimisation step of the boosted loss (the joint loss for w = 0): forward, loss, backward, update.
    Returns the loss and the loss of every head. The trainer and bench/*train_speed.py run this same step."""
    loss, per_head = boosting_loss(forward(x), y, reweight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, per_head


def train(cfg: TrainConfig, on_epoch=None, stop=None) -> Path:
    """Train, saving a checkpoint into cfg.out after every epoch. Returns the folder.

    on_epoch(record) is called with each epoch's log record once its checkpoint is saved; stop() is asked between
    batches, and a true answer ends the run with TrainingStopped (for a live demo; single process only).
    """
    rank, world, local_rank = _init_distributed(cfg)
    try:
        return _train(cfg, rank, world, local_rank, on_epoch, stop)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _init_distributed(cfg: TrainConfig) -> tuple[int, int, int]:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def _check_out_folder(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    has_run = (out / ckpt.TRAIN_STATE).exists() or (out / ckpt.META).exists()
    if cfg.resume and not (out / ckpt.TRAIN_STATE).is_file():
        raise ckpt.CheckpointError(f"Nothing to resume in {str(out)!r}: it holds no {ckpt.TRAIN_STATE}; start without --resume.")
    if not cfg.resume and has_run:
        raise ckpt.CheckpointError(f"{str(out)!r} already holds a training run; pass --resume to continue it or choose another --out.")
    if out.exists() and not out.is_dir():
        raise ckpt.CheckpointError(f"--out {str(out)!r} is a file; choose a folder.")
    # One rule for every folder the project writes (export too): new, empty, or its own earlier output.
    if not has_run and out.is_dir() and any(out.iterdir()):
        raise ckpt.CheckpointError(f"--out {str(out)!r} is a folder that holds other files; choose a new or empty "
                                   "folder for the checkpoint.")
    return out


@dataclass
class _Run:
    """What the epochs of one run share once set up."""
    out: Path
    device: torch.device
    bundle: DataBundle
    data: DataSpec
    model: BoostNet
    optimizer: torch.optim.Optimizer
    counters: dict          # epoch, step, log, config, commands: saved in the training state
    macs: list[float]


def _train(cfg: TrainConfig, rank: int, world: int, local_rank: int, on_epoch=None, stop=None) -> Path:
    run = _set_up(cfg, world, local_rank)
    module = HeadLogits(run.model)
    if world > 1:
        device = run.device
        module = torch.nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    forward = speed_options(module, run.device, cfg.channels_last, cfg.compile, cfg.precision)
    if rank == 0:
        run.out.mkdir(parents=True, exist_ok=True)
    for epoch in range(run.counters["epoch"], cfg.epochs):
        record = _train_epoch(cfg, run, forward, epoch, rank, world, stop)
        record.update(_epoch_metrics(run.model, run.bundle, cfg, run.device))
        run.counters["epoch"] = epoch + 1
        run.counters["log"].append(record)
        if rank == 0:
            _save_epoch(run, cfg)
            if cfg.progress:
                print(json.dumps(record, allow_nan=False), file=sys.stderr, flush=True)
            if on_epoch is not None:
                on_epoch(record)
        if world > 1:
            dist.barrier()
    return run.out


def _set_up(cfg: TrainConfig, world: int, local_rank: int) -> _Run:
    """Folder checks, device, data, model and optimizer; the saved state when resuming."""
    out = _check_out_folder(cfg)
    device = pick_device(cfg.device, local_rank)
    data = get_preset(cfg.preset or DEFAULT_PRESET.get(cfg.dataset))["data"]
    bundle = load_dataset(cfg.dataset, cfg.data_root, data.input_size, data.in_channels, cfg.val_size, cfg.split_seed)
    if cfg.train_limit is not None and cfg.train_limit < len(bundle.train):
        bundle.train = split_validation(bundle.train, cfg.train_limit, cfg.split_seed)[1]  # a stratified sample
        bundle.info = dict(bundle.info, train_size=len(bundle.train), train_limit=cfg.train_limit)
    in_channels = int(bundle.train.images.shape[1]) if isinstance(bundle.train, ImageSet) else data.in_channels

    with _GLOBAL_RNG:  # threads training side by side (the app) must not interleave their initial draws
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model = build_model_for(cfg, bundle, in_channels)
    model.to(device)
    macs = model.macs  # measured once, before any DDP wrapping
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.sync_bn and world > 1:
        sync_batch_norm(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    counters = {"epoch": 0, "step": 0, "log": [], "config": cfg.identity()}
    if cfg.resume:
        counters = _resumed_counters(cfg, out, model, optimizer)
    counters.setdefault("commands", []).append(cfg.command)  # the original command, then each resume
    if isinstance(bundle.train, ImageSet):  # in-memory data lives on the training device once
        bundle.train = ImageSet(bundle.train.images.to(device), bundle.train.labels.to(device))
    return _Run(out, device, bundle, data, model, optimizer, counters, macs)


def _resumed_counters(cfg: TrainConfig, out: Path, model: BoostNet, optimizer) -> dict:
    counters = ckpt.load_training_state(out, model, optimizer)
    saved = counters.get("config") or {}
    if saved != cfg.identity():
        diff = sorted(k for k in set(saved) | set(cfg.identity()) if saved.get(k) != cfg.identity().get(k))
        raise TrainingError(f"--resume with settings that differ from the saved run ({', '.join(diff)}); "
                            "use the original command, or start a new --out.")
    if counters["epoch"] >= cfg.epochs:
        raise TrainingError(f"The run in {str(out)!r} already finished its {counters['epoch']} epochs; nothing to resume.")
    return counters


def _train_epoch(cfg: TrainConfig, run: _Run, forward, epoch: int, rank: int, world: int, stop=None) -> dict:
    """One pass over this rank's shard; returns the epoch's log record (mean loss per head, speed)."""
    model, optimizer, counters = run.model, run.optimizer, run.counters
    model.train()
    # Every random draw of the epoch (order, augmentation) comes from this generator: resuming is exact.
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    steps_per_epoch = math.ceil(math.ceil(len(run.bundle.train) / world) / cfg.batch_size)
    head_loss_sum = torch.zeros(model.num_exits, device=run.device)
    seen, t0 = 0, time.perf_counter()
    bar = _progress(cfg, rank, steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}")
    for x, y in _epoch_batches(run, cfg, generator, rank, world):
        if stop is not None and stop():
            kept = f"the checkpoint of epoch {epoch} is kept in {run.out}" if epoch > 0 else "no epoch had finished"
            raise TrainingStopped(f"Stopped during epoch {epoch + 1}; {kept}.")
        lr = learning_rate(cfg, counters["step"], steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        _, per_head = train_step(forward, optimizer, x, y, model.reweight)
        head_loss_sum += torch.stack(per_head) * len(y)
        seen += len(y)
        counters["step"] += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    images_per_s = seen / (time.perf_counter() - t0)
    if world > 1:
        dist.all_reduce(head_loss_sum)
        seen *= world
    head_losses = (head_loss_sum / seen).tolist()
    if not all(math.isfinite(v) for v in head_losses):
        kept = f"the checkpoint of epoch {epoch} is kept in {run.out}" if epoch > 0 else "nothing was saved"
        raise TrainingError(f"The training loss became non-finite in epoch {epoch + 1}; {kept}. Lower --lr and start again.")
    return {"epoch": epoch + 1, "lr": lr, "loss_per_head": [round(v, 5) for v in head_losses],
            "images_per_s": round(images_per_s * world, 1)}


def _epoch_batches(run: _Run, cfg: TrainConfig, generator: torch.Generator, rank: int, world: int):
    """(inputs, labels) on the training device for this rank's shard of the epoch's order.

    In-memory data is augmented in batches on the device; file data streams through a DataLoader with the
    ImageNet transforms. The shard is padded like DistributedSampler's.
    """
    train_set, data = run.bundle.train, run.data
    n = len(train_set)
    order = torch.randperm(n, generator=generator)
    per_rank = math.ceil(n / world)
    shard = torch.cat([order, order[: per_rank * world - n]])[rank::world]
    if isinstance(train_set, ImageSet):
        for idx in shard.split(cfg.batch_size):
            idx = idx.to(run.device)
            images = augment_batch(train_set.images[idx], data.augment, generator)
            yield normalize(images, data.mean, data.std), train_set.labels[idx]
        return
    dataset = FileImages(train_set, data.input_size, data.in_channels, data.mean, data.std, train=True)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=shard.tolist(), num_workers=cfg.workers,
        pin_memory=run.device.type == "cuda", drop_last=False,
        generator=torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator))))
    for x, y in loader:
        yield x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)


# The weights change every epoch, so any engine is prepared again for each validation: folding (about 0.1 s for the
# cifar10 preset, faster than eager from a few hundred images) pays back. Tracing (0.2-0.3 s since each block's trace
# stopped copying the whole backbone; 1.6-3 s when this was chosen) and an ONNX export (0.4-0.7 s) have not been
# measured against it since.
VALIDATION_ENGINE = "torch-fold"


def _epoch_metrics(model: BoostNet, bundle, cfg: TrainConfig, device) -> dict:
    metrics = {}
    if bundle.val is not None:
        top1 = anytime_accuracy(model, bundle.val, device=device, engine=VALIDATION_ENGINE)["top1"]
        metrics["val_top1"] = [round(v, 3) for v in top1]
    if cfg.eval_test:
        top1 = anytime_accuracy(model, bundle.test, device=device, engine=VALIDATION_ENGINE)["top1"]
        metrics["test_top1"] = [round(v, 3) for v in top1]
    return metrics


def _save_epoch(run: _Run, cfg: TrainConfig) -> None:
    counters = run.counters
    ckpt.save_training_state(run.out, run.model, run.optimizer, counters)
    last = counters["log"][-1]
    extra = {"train": dict(cfg.identity(), epochs_done=counters["epoch"]), "command": counters["commands"][0],
             "resumed_with": counters["commands"][1:],
             "metrics": {k: v for k, v in last.items() if k.endswith("top1")}}
    ckpt.save_model(run.model, run.out, extra)
    lines = "".join(json.dumps(r, allow_nan=False) + "\n" for r in counters["log"])
    atomic_write_bytes(run.out / ckpt.LOG, lines.encode())


def _progress(cfg: TrainConfig, rank: int, total: int, desc: str):
    if not cfg.progress or rank != 0:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0)
