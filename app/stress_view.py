"""The Stress test page's pieces (views/stress_test.py): the shipped results, what a stress does to the split under
the exit thresholds, the certified risk's sentence, the exit histogram, and uploads as the network's input. Kept apart
from the page so that tests can run every condition through them without a browser session."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from boostnet_core.calibration import losses
from boostnet_core.inference import preprocess_image
from boostnet_core.stress import NAMES, load_outputs
from boostnet_core.thresholds import assign_exits, outcome_of
from charts import TAKEN_COLOR, plot_layout
from session import RISKS, ExitSetting
from store import ASSETS

STRESS = ASSETS / "stress"
CLEAN_COLOR, STRESSED_COLOR = "#4C78A8", "#F58518"
MAX_SHOWN = 6
PRETTY = {n: n.replace("_", " ") for n in NAMES}


@st.cache_resource(show_spinner=False, max_entries=8)
def shipped_results(model_name: str, mtime: float):
    """(per-condition outputs, other tensors) of a shipped model, or None when none were made for it."""
    path = STRESS / f"{model_name}.safetensors"
    return load_outputs(path) if path.is_file() else None


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def summary(p, thresholds, macs) -> dict:
    exits = assign_exits(p.confidence, thresholds, (-np.inf, np.inf))
    o = outcome_of(p, exits, macs)
    n = len(exits)
    early_wrong = float(((exits < len(macs) - 1) & ~o.correct).double().mean() * 100)
    return {"exits": exits, "top1": o.top1, "share": o.cost_ratio, "counts": o.counts.numpy(),
            "last": float(o.counts[-1]) / n * 100, "early_wrong": early_wrong, "n": n,
            "last_top1": float((p.prediction[-1] == p.labels).double().mean() * 100)}


def risk_sentence(clean_p, stressed_p, what: str, cert: dict, s: ExitSetting, assumed: bool) -> str:
    t = np.array([np.inf if v is None else float(v) for v in cert["thresholds"]])
    observed = []
    for p in (clean_p, stressed_p):
        exits = assign_exits(p.confidence, t, (-np.inf, np.inf))
        observed.append(float(losses(p, exits, s.risk).double().mean()))
    clean_risk, risk = observed
    eps = s.epsilon
    which = (f"The certificate at the sidebar's setting ({RISKS[s.risk]} ≤ {eps:g}, probability ≥ {1 - s.delta:g})"
             if not assumed else f"A certificate ({RISKS[s.risk]} ≤ {eps:g} with probability ≥ {1 - s.delta:g}; "
             "choose the certified exit rule in the sidebar to set another)")
    verdict = (f"**held**: {risk:.3f} ≤ {eps:g}" if risk <= eps else
               f"**broken** by {risk - eps:.3f} ({risk / eps:.1f} × ε): {risk:.3f} > {eps:g}")
    at_last = bool((assign_exits(stressed_p.confidence, t, (-np.inf, np.inf)) == len(t) - 1).all())
    why = (" Every image reaches the last exit, where early exit cannot disagree with it: the stress takes the "
           "savings, not the guarantee." if at_last and risk <= eps else "")
    return (f"{which} promises its risk on new images like its calibration images. Clean, it sees {clean_risk:.3f}; "
            f"under {what} it is {verdict}.{why}")


def histogram_figure(names: list[str], clean: np.ndarray, stressed: np.ndarray, what: str) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(name="clean", x=names, y=clean, marker_color=CLEAN_COLOR, text=clean, textposition="outside")
    fig.add_bar(name=what, x=names, y=stressed, marker_color=STRESSED_COLOR, text=stressed, textposition="outside")
    fig.update_layout(barmode="group", yaxis_range=[0, max(clean.max(), stressed.max()) * 1.2 + 1])
    return plot_layout(fig, "exit taken", "images", height=300)


def image_key(pixels: np.ndarray) -> int:
    """A corruption key for an upload (test images use their test number): from its content, so it is stable."""
    return 1_000_000 + zlib.crc32(pixels.tobytes()) % 1_000_000


def as_input_pixels(pixels: np.ndarray, meta: dict) -> np.ndarray:
    """An upload as the network's uint8 input [C, H, W]: the model's own preprocessing, normalisation undone."""
    from PIL import Image
    x = preprocess_image(Image.fromarray(pixels), meta).numpy()
    mean, std = np.array(meta["mean"])[:, None, None], np.array(meta["std"])[:, None, None]
    return np.uint8(np.clip(np.round((x * std + mean) * 255), 0, 255))


def exit_squares(n: int, taken: int) -> str:
    cells = "".join(f'<span style="display:inline-block;width:0.7rem;height:0.7rem;margin-right:2px;border-radius:2px;'
                    f'background:{TAKEN_COLOR if k == taken else "#4C78A8" if k < taken else "#C4C9D0"}"></span>'
                    for k in range(n))
    return f'{cells} {taken + 1} of {n}'


