"""Accuracy against cost: anytime points per exit and budgeted-batch curves, with the paper's figures beside them."""
from __future__ import annotations

import io
import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from common import (ASSETS, available_checkpoints, budget_thresholds, data_group, label, load_or_error, model_color,
                    plot_layout, predictions, remembered, results, seed_siblings_of)
from boostnet_core.study_report import seed_band
from boostnet_core.thresholds import outcome_at

st.title("Accuracy vs cost")
options = available_checkpoints()
if not options:
    st.warning("No checkpoint found. Train one or load a folder on the Models page.")
    st.stop()
# By default, every model of the first model's data set (for example all shipped CIFAR-10 models).
same_data = [p for p in options if data_group(p) == data_group(options[0])]
chosen = st.multiselect("Models", options, default=same_data, format_func=label, key="curve_models")
mode = remembered("threshold_mode", "One global threshold")
threshold, share = st.session_state.get("threshold", 0.9), remembered("budget_share", 60)
budget_mode = mode == "Fitted to a cost budget"
st.caption("The star marks each model's operating point: "
           + (f"thresholds fitted on its validation split to {share}% of its full cost" if budget_mode
              else f"one global confidence threshold, {threshold:.2f}")
           + " (set on the Inspect an image or Threshold and exits page).")

rows, stars = [], []
fig = go.Figure()
for path in chosen:
    model = load_or_error(path)
    res = results(path)
    if model is None:
        continue
    if res is None:
        st.warning(f"{label(path)} has no evaluation yet: run `boostnet evaluate {path}`.")
        continue
    color = model_color(path)
    macs = np.array(res["macs"]) / 1e6
    top1 = res["anytime"]["top1"]
    siblings = seed_siblings_of(path)
    if len(siblings) > 1:  # the same run with other seeds: mean ± sd band of the anytime accuracy
        band = seed_band(siblings)
        mean, sd = np.array(band["mean"]), np.array(band["sd"])
        fig.add_scatter(x=np.concatenate([macs, macs[::-1]]), y=np.concatenate([mean + sd, (mean - sd)[::-1]]),
                        fill="toself", fillcolor=color, opacity=0.18, line=dict(width=0), hoverinfo="skip",
                        name=f"{label(path)}: mean ± sd over {band['n']} seeds")
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
    cache = predictions(path)
    if "test" in cache and (not budget_mode or "val" in cache):
        thresholds = budget_thresholds(path, share) if budget_mode else threshold
        point = outcome_at(cache["test"], thresholds, model.macs)
        stars.append({"model": label(path), "color": color, "macs": point.avg_macs, "top1": point.top1})
        fig.add_scatter(x=[point.avg_macs / 1e6], y=[point.top1], mode="markers", name=f"{label(path)}: operating point",
                        marker=dict(symbol="star", size=16, color=color, line=dict(color="black", width=1)),
                        hovertemplate="operating point: %{x:.2f} M MACs, %{y:.2f}%<extra></extra>")

if not fig.data:
    st.info("Nothing to plot yet: choose models that have an evaluation.")
    st.stop()
fig.update_xaxes(type="log")
st.plotly_chart(plot_layout(fig, "MACs per image (millions, log scale)", "top-1 accuracy (%)", 520), key="curves")

if st.checkbox("Show the paper's published curves (CIFAR-100 and ImageNet, arXiv 2211.16726, section 4)", value=False):
    ref = json.loads((ASSETS / "published_curves.json").read_text())
    ref_fig = go.Figure()
    for name, series in ref["curves"].items():
        ref_fig.add_scatter(x=series["macs_millions"], y=series["top1"], mode="markers+lines", name=name,
                            line=dict(dash="solid" if "BoostNet" in name else "dot"),
                            marker=dict(symbol="x" if "BoostNet" in name else "circle-open", size=7),
                            hovertemplate=name + ": %{x:.1f} M MACs, %{y:.2f}%<extra>published</extra>")
    ref_fig.update_xaxes(type="log")
    st.caption("Published figures, read off the paper's plots (other data sets and networks: a separate chart).")
    st.plotly_chart(plot_layout(ref_fig, "MACs per image (millions, log scale)", "top-1 accuracy (%)", 420), key="reference")


@st.cache_data(show_spinner=False)
def png_of(rows_json: str, stars_json: str, colors_json: str) -> bytes:
    """The chart above in matplotlib: the same models, colours, line styles, log axis and operating points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    points, star_points, colors = json.loads(rows_json), json.loads(stars_json), json.loads(colors_json)
    fig_m, ax = plt.subplots(figsize=(8, 5), dpi=130)
    for key in dict.fromkeys((r["model"], r["kind"]) for r in points):
        pts = sorted((r["macs"] / 1e6, r["top1"]) for r in points if (r["model"], r["kind"]) == key)
        ax.plot(*zip(*pts), "o:" if key[1] == "anytime" else "-", color=colors[key[0]], label=f"{key[0]}: {key[1]}")
    for s in star_points:
        ax.plot(s["macs"] / 1e6, s["top1"], "*", ms=14, color=s["color"], markeredgecolor="black")
    ax.set_xscale("log"); ax.set_xlabel("MACs per image (millions, log scale)"); ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3); ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig_m.tight_layout(); fig_m.savefig(buf, format="png"); plt.close(fig_m)
    return buf.getvalue()


if rows:
    csv = "model,kind,exit_or_q,macs,top1\n" + "".join(f"{r['model']},{r['kind']},{r['exit_or_q']},{r['macs']:.0f},{r['top1']:.4f}\n" for r in rows)
    c1, c2 = st.columns(2)
    c1.download_button("Download the points as CSV", csv, "accuracy_vs_cost.csv", "text/csv")
    colors = {label(p): model_color(p) for p in chosen}
    c2.download_button("Download the plot as PNG", png_of(json.dumps(rows), json.dumps(stars), json.dumps(colors)),
                       "accuracy_vs_cost.png", "image/png")
