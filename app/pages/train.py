"""Train small models live: BoostNet and joint side by side, with per-head curves, stoppable at any time.

The two runs train one after the other in a background thread of this session (the page stays responsive and polls
it twice a second);
each is saved as an ordinary checkpoint folder after every epoch, evaluated when it ends, and then offered in every
model picker of the app.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
import torch

from common import EXIT_COLORS, REPO, label, plot_layout, resolve_data_root, shipped_checkpoints
from boostnet_core.data import DataError
from boostnet_core.evaluation import evaluate_checkpoint
from boostnet_core.training import TrainConfig, TrainingError, TrainingStopped, train

RUNS = Path(os.environ.get("BOOSTNET_RUNS", REPO / "runs" / "app"))
DATASETS = {"digits (8x8, seconds)": ("digits", None, None),
            "mnist5k (28x28, about a minute)": ("mnist5k", None, None),
            "CIFAR-10 subset (32x32, needs the images)": ("folder", "cifar10", 2000)}


@dataclass
class LiveRun:
    """One method's run, filled in by its thread and read by the page."""
    method: str
    folder: Path
    epochs: int
    records: list = field(default_factory=list)
    status: str = "waiting"      # waiting | training | evaluating | done | stopped | failed
    message: str = ""


@dataclass
class TrainJob:
    runs: list[LiveRun]
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    announced: bool = False

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def run_in_background(cfg: TrainConfig, live: LiveRun, stop: threading.Event) -> None:
    """The thread's work: train (records arrive per epoch), then evaluate; never raises."""
    live.status = "training"
    try:
        train(cfg, on_epoch=live.records.append, stop=stop.is_set)
        live.status = "evaluating"
        evaluate_checkpoint(cfg.out)
        live.status = "done"
    except TrainingStopped as e:
        live.status, live.message = "stopped", str(e)
        if live.records:  # the finished epochs are a usable model: evaluate them too
            try:
                evaluate_checkpoint(cfg.out)
            except (DataError, ValueError, OSError, TrainingError) as e2:
                live.message += f" Its evaluation failed: {e2}"
    except (DataError, ValueError, OSError, TrainingError) as e:
        live.status, live.message = "failed", str(e)


def run_all(configs: list[TrainConfig], runs: list[LiveRun], stop: threading.Event) -> None:
    # One intra-op thread while training: outside the main thread, torch's OpenMP teams cost more than they give
    # (digits trains 2.3x faster in a worker thread with one than with two). The setting is process-wide, so the
    # app's own count comes back when the job ends.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cfg, live in zip(configs, runs):
            if stop.is_set():
                live.status, live.message = "stopped", "Not started: the Stop button was pressed."
                continue
            run_in_background(cfg, live, stop)
    finally:
        torch.set_num_threads(previous)


def start(dataset_label: str, epochs: int, data_root: str | None) -> TrainJob:
    dataset, preset, limit = DATASETS[dataset_label]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = []
    for method in ("boostnet", "joint"):
        folder = RUNS / f"{preset or dataset}-{method}-{stamp}"
        runs.append(LiveRun(method, folder, epochs))
    job = TrainJob(runs)
    configs = [TrainConfig(dataset=dataset, preset=preset, data_root=data_root, method=live.method, epochs=epochs,
                           out=str(live.folder), train_limit=limit, val_size=500 if limit else None, progress=False,
                           command=f"app Train page: {dataset_label}, {epochs} epochs, {live.method}")
               for live in runs]
    # One after the other in one thread: two Python threads training at once contend for the interpreter and the
    # cores, and both end later than they would in turn.
    job.thread = threading.Thread(target=run_all, args=(configs, runs, job.stop), daemon=True)
    job.thread.start()
    return job


st.title("Train")
st.markdown("Train BoostNet and the joint baseline side by side on the same data, seed and recipe, and watch each "
            "head learn. Each run is saved after every epoch and, once finished, appears in every model picker.")
job: TrainJob | None = st.session_state.get("train_job")
busy = job is not None and job.alive

c1, c2, c3 = st.columns([2, 1, 2])
dataset_label = c1.selectbox("Data", list(DATASETS), disabled=busy, key="train_dataset")
epochs = c2.number_input("Epochs", 1, 50, 5, disabled=busy, key="train_epochs")
data_root = None
if DATASETS[dataset_label][0] == "folder":
    guess = next((resolve_data_root(p) for p in shipped_checkpoints() if resolve_data_root(p)), "")
    typed = c3.text_input("CIFAR-10 image folder (DIR/train/<class>/*, DIR/test/<class>/*)", value=guess or "",
                          disabled=busy, key="train_root")
    if not typed or not Path(typed).is_dir():
        st.warning(f"The folder {typed!r} does not exist on this machine; name the folder that holds the CIFAR-10 "
                   "images, or train on digits or mnist5k." if typed else
                   "Name the folder that holds the CIFAR-10 images, or train on digits or mnist5k.")
    else:
        data_root = typed
can_start = not busy and (DATASETS[dataset_label][0] != "folder" or data_root is not None)
b1, b2 = st.columns(2)
if b1.button("Train BoostNet and joint", type="primary", disabled=not can_start, key="train_start"):
    job = st.session_state["train_job"] = start(dataset_label, int(epochs), data_root)
    st.rerun()
if b2.button("Stop", disabled=not busy, key="train_stop"):
    job.stop.set()


@st.cache_resource(show_spinner=False, max_entries=64)
def curves(run_name: str, epochs_done: int, _records: list) -> tuple[go.Figure, go.Figure]:
    """Loss per head and validation accuracy per exit; the same figures until the next epoch ends, so the page's
    once-a-second poll sends nothing new for the browser to redraw."""
    epochs_x = [r["epoch"] for r in _records]
    loss, acc = go.Figure(), go.Figure()
    for h in range(len(_records[0]["loss_per_head"])):
        color = EXIT_COLORS[h % 10]
        loss.add_scatter(x=epochs_x, y=[r["loss_per_head"][h] for r in _records], name=f"head {h + 1}", line=dict(color=color))
        if "val_top1" in _records[0]:
            acc.add_scatter(x=epochs_x, y=[r["val_top1"][h] for r in _records], name=f"exit {h + 1}", line=dict(color=color))
    return (plot_layout(loss, "epoch", "training loss per head", 260),
            plot_layout(acc, "epoch", "validation top-1 per exit (%)", 260))


@st.fragment(run_every=1.0)
def live_view():
    job: TrainJob | None = st.session_state.get("train_job")
    if job is None:
        st.info("Nothing has been trained in this session yet.")
        return
    cols = st.columns(len(job.runs))
    for col, live in zip(cols, job.runs):
        records = list(live.records)
        with col:
            st.markdown(f"**{live.method}** · {live.status} · `{live.folder.name}`")
            st.progress(len(records) / live.epochs, text=f"{len(records)} of {live.epochs} epochs")
            if live.message:
                (st.error if live.status == "failed" else st.info)(live.message)
            if records:
                loss, acc = curves(live.folder.name, len(records), records)
                st.plotly_chart(loss, key=f"loss_{live.method}")
                if acc.data:
                    st.plotly_chart(acc, key=f"acc_{live.method}")
    if not job.alive and not job.announced:
        job.announced = True
        extra = st.session_state.setdefault("extra_checkpoints", [])
        for live in job.runs:
            if (live.folder / "model.json").is_file() and str(live.folder) not in extra:
                extra.append(str(live.folder))
        if (job.runs[0].folder / "model.json").is_file():
            st.session_state["model"] = str(job.runs[0].folder)  # the other pages open on the new BoostNet model
        st.rerun()  # the whole app: the new checkpoints appear in the pickers
    if not job.alive:
        saved = [label(str(r.folder)) for r in job.runs if (r.folder / "model.json").is_file()]
        if saved:
            st.success("Saved and added to the model pickers: " + ", ".join(saved) + " (the other pages now show "
                       "the BoostNet one).")


live_view()
