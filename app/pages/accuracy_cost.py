"""Accuracy against cost: anytime points per exit and budgeted-batch curves, with the paper's figures as reference."""
from __future__ import annotations

import io
import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from common import (ASSETS, EXIT_COLORS, available_checkpoints, data_group, label, load_or_error, plot_layout,
                    predictions, results)
from boostnet_core.thresholds import outcome_at

st.title("Accuracy vs cost")
options = available_checkpoints()
if not options:
    st.warning("No checkpoint found. Train one or load a folder on the Models page.")
    st.stop()
# By default, every model of the first model's data set (for example all shipped CIFAR-10 models).
same_data = [p for p in options if data_group(p) == data_group(options[0])]
chosen = st.multiselect("Models", options, default=same_data, format_func=label, key="curve_models")
show_reference = st.checkbox("Show the paper's published curves (CIFAR-100 and ImageNet, arXiv 2211.16726, section 4)", value=False)
threshold = st.session_state.get("threshold", 0.9)
st.caption(f"The marked operating point uses the global confidence threshold {threshold:.2f} "
           "(set on the Inspect or Data set page).")

rows = []
fig = go.Figure()
for i, path in enumerate(chosen):
    model = load_or_error(path)
    res = results(path)
    if model is None:
        continue
    if res is None:
        st.warning(f"{label(path)} has no evaluation yet: run `boostnet evaluate {path}`.")
        continue
    color = EXIT_COLORS[i % len(EXIT_COLORS)]
    macs = np.array(res["macs"]) / 1e6
    top1 = res["anytime"]["top1"]
    fig.add_scatter(x=macs, y=top1, mode="markers+lines", name=f"{label(path)}: anytime (exit k)", line=dict(color=color, dash="dot"),
                    marker=dict(size=9), text=[f"exit {k + 1}" for k in range(len(macs))],
                    hovertemplate="%{text}: %{x:.2f} M MACs, %{y:.2f}%<extra>" + label(path) + "</extra>")
    rows += [{"model": label(path), "kind": "anytime", "exit_or_q": k + 1, "macs": float(res["macs"][k]), "top1": float(top1[k])} for k in range(len(macs))]
    if res.get("budgeted"):
        b = res["budgeted"]
        fig.add_scatter(x=[p["avg_macs"] / 1e6 for p in b], y=[p["top1"] for p in b], mode="lines", name=f"{label(path)}: budgeted batch",
                        line=dict(color=color), customdata=[p["q"] for p in b],
                        hovertemplate="q=%{customdata:.2f}: %{x:.2f} M MACs, %{y:.2f}%<extra>" + label(path) + "</extra>")
        rows += [{"model": label(path), "kind": "budgeted", "exit_or_q": p["q"], "macs": p["avg_macs"], "top1": p["top1"]} for p in b]
    cache = predictions(path).get("test")
    if cache is not None:
        point = outcome_at(cache, threshold, res["macs"])
        fig.add_scatter(x=[point.avg_macs / 1e6], y=[point.top1], mode="markers", name=f"{label(path)}: threshold {threshold:.2f}",
                        marker=dict(symbol="star", size=16, color=color, line=dict(color="black", width=1)),
                        hovertemplate="operating point: %{x:.2f} M MACs, %{y:.2f}%<extra></extra>")

if show_reference:
    ref = json.loads((ASSETS / "published_curves.json").read_text())
    for j, (name, series) in enumerate(ref["curves"].items()):
        fig.add_scatter(x=series["macs_millions"], y=series["top1"], mode="markers+lines", name=f"paper: {name}",
                        line=dict(color="gray", dash="dash" if "BoostNet" in name else "dot", width=1),
                        marker=dict(symbol="x" if "BoostNet" in name else "circle-open", size=7),
                        hovertemplate=name + ": %{x:.1f} M MACs, %{y:.2f}%<extra>published</extra>")

if not fig.data:
    st.info("Nothing to plot yet: choose models that have an evaluation.")
    st.stop()
fig.update_xaxes(type="log")
st.plotly_chart(plot_layout(fig, "MACs per image (millions, log scale)", "top-1 accuracy (%)", 520), key="curves")

if rows:
    csv = "model,kind,exit_or_q,macs,top1\n" + "".join(f"{r['model']},{r['kind']},{r['exit_or_q']},{r['macs']:.0f},{r['top1']:.4f}\n" for r in rows)
    c1, c2 = st.columns(2)
    c1.download_button("Download the points as CSV", csv, "accuracy_vs_cost.csv", "text/csv")

    @st.cache_data(show_spinner=False)
    def png_of(csv_text: str) -> bytes:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig_m, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        lines = [l.split(",") for l in csv_text.strip().splitlines()[1:]]
        for key in dict.fromkeys((m, k) for m, k, *_ in lines):
            pts = [(float(x), float(y)) for m, k, _, x, y in lines if (m, k) == key]
            ax.plot([p[0] / 1e6 for p in pts], [p[1] for p in pts], "o:" if key[1] == "anytime" else "-", label=f"{key[0]} ({key[1]})")
        ax.set_xscale("log"); ax.set_xlabel("MACs per image (millions)"); ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3); ax.legend(fontsize=8)
        buf = io.BytesIO()
        fig_m.tight_layout(); fig_m.savefig(buf, format="png"); plt.close(fig_m)
        return buf.getvalue()

    c2.download_button("Download the plot as PNG", png_of(csv), "accuracy_vs_cost.png", "image/png")
