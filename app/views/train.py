"""Train small models live: BoostNet and then joint on the same data, with per-head curves, stoppable at any time.

The two runs train one after the other in a background thread of this session (the page stays responsive and polls
it twice a second);
each is saved as an ordinary checkpoint folder (under runs/app/) after every epoch, evaluated when it ends, and then
offered in every model picker of every session of the app.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
import torch

from charts import EXIT_COLORS, plot_layout
from images import resolve_data_root
from store import RUNS, label, shipped_checkpoints
from boostnet_core.errors import UserError
from boostnet_core.evaluation import evaluate_checkpoint
from boostnet_core.training import TrainConfig, TrainingStopped, train

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
            except (UserError, OSError) as e2:
                live.message += f" Its evaluation failed: {e2}"
    except (UserError, OSError) as e:
        live.status, live.message = "failed", str(e)
    except Exception as e:   # a bug in the core: the run is marked failed with what happened, and the thread's
        import traceback     # traceback goes to the server's log, so the page does not wait for it forever
        traceback.print_exc()
        live.status = "failed"
        live.message = (f"Training stopped on an unexpected error ({type(e).__name__}: {e}); this is a bug, and the "
                        "server's log has the details. The last finished epoch's checkpoint is kept.")


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


@st.cache_resource(show_spinner=False)
def jobs_on_this_server() -> list[TrainJob]:
    """Every job started on this server while it trains: a session that lost its own (a new tab, a reload when the
    tab's state was not kept) reconnects to the one going on instead of saying nothing was trained."""
    return []


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
    going = jobs_on_this_server()
    going[:] = [j for j in going if j.alive] + [job]
    return job


st.title("Train")
st.markdown("Train BoostNet and then the joint baseline on the same data, seed and recipe (one after the other, so "
            "each gets the whole CPU), and watch each head learn. Each run is saved after every epoch and, once "
            "finished, appears in every model picker, in every open tab of the app.")
job: TrainJob | None = st.session_state.get("train_job")
if job is None and (going := [j for j in jobs_on_this_server() if j.alive]):
    job = st.session_state["train_job"] = going[-1]
    st.info("A training run is going on on this server (started before this page was opened or reloaded); "
            "its curves are shown below.")
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
def curves(run_name: str, epochs_done: int, _records: list, loss_range: tuple, acc_range: tuple) -> tuple[go.Figure, go.Figure]:
    """Loss per head and validation accuracy per exit, on the ranges both runs share; the same figures until the next
    epoch ends, so the page's once-a-second poll sends nothing new for the browser to redraw."""
    epochs_x = [r["epoch"] for r in _records]
    loss, acc = go.Figure(), go.Figure()
    for h in range(len(_records[0]["loss_per_head"])):
        color = EXIT_COLORS[h % 10]
        loss.add_scatter(x=epochs_x, y=[r["loss_per_head"][h] for r in _records], name=f"head {h + 1}", line=dict(color=color))
        if "val_top1" in _records[0]:
            acc.add_scatter(x=epochs_x, y=[r["val_top1"][h] for r in _records], name=f"exit {h + 1}", line=dict(color=color))
    for fig, y_range in ((loss, loss_range), (acc, acc_range)):
        fig.update_xaxes(tickmode="linear", dtick=1, tick0=1, range=[0.8, max(epochs_x[-1], 2) + 0.2])  # whole epochs
        fig.update_yaxes(range=list(y_range))
    return (plot_layout(loss, "epoch", "training loss per head", 260),
            plot_layout(acc, "epoch", "validation top-1 per exit (%)", 260))


def shared_ranges(runs: list) -> tuple[tuple, tuple]:
    """One loss range and one accuracy range for both runs' charts, so they read side by side."""
    records = [r for live in runs for r in list(live.records)]
    losses = [v for r in records for v in r["loss_per_head"]] or [0.0, 1.0]
    accs = [v for r in records for v in r.get("val_top1", [])] or [0.0, 100.0]
    pad = 0.05 * (max(losses) - min(losses) or 1.0)
    return (max(0.0, min(losses) - pad), max(losses) + pad), (max(0.0, min(accs) - 2), min(100.0, max(accs) + 2))


def announce(job: TrainJob) -> None:
    """Once per finished job: every page of this session switches to the new models (the other sessions see them in
    their pickers, which list runs/app/)."""
    job.announced = True
    saved = [str(live.folder) for live in job.runs if (live.folder / "model.json").is_file()]
    if not saved:
        return
    st.session_state["model"] = saved[0]                  # Inspect and Threshold and exits
    st.session_state["saved_curve_models"] = saved        # Accuracy vs cost
    if len(saved) == 2:
        st.session_state["saved_compare_a"], st.session_state["saved_compare_b"] = saved   # Compare models


def live_view():
    job: TrainJob | None = st.session_state.get("train_job")
    if job is None:
        st.info("Nothing has been trained in this session yet.")
        return
    cols = st.columns(len(job.runs))
    loss_range, acc_range = shared_ranges(job.runs)
    for col, live in zip(cols, job.runs):
        records = list(live.records)
        with col:
            st.markdown(f"**{live.method}** · {live.status} · `{live.folder.name}`")
            st.progress(len(records) / live.epochs, text=f"{len(records)} of {live.epochs} epochs")
            if live.message:
                (st.error if live.status == "failed" else st.info)(live.message)
            if records:
                loss, acc = curves(live.folder.name, len(records), records, loss_range, acc_range)
                st.plotly_chart(loss, key=f"loss_{live.method}")
                if acc.data:
                    st.plotly_chart(acc, key=f"acc_{live.method}")
    if not job.alive and not job.announced:
        announce(job)
        st.rerun()  # the whole app: the new checkpoints appear in the pickers, polling stops
    if not job.alive:
        saved = [label(str(r.folder)) for r in job.runs if (r.folder / "model.json").is_file()]
        if saved:
            st.success("Saved and added to the model pickers: " + ", ".join(saved) + ". Inspect an image and "
                       "Threshold and exits now show the BoostNet one, Accuracy vs cost both, Compare models one "
                       "against the other.")


# Poll once a second while a job trains, and not at all otherwise.
st.fragment(live_view, run_every=1.0 if busy else None)()
