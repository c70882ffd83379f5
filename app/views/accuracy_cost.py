"""Accuracy against cost: anytime points per exit and budgeted-batch curves, one chart per data set, with the
paper's figures on a chart of their own."""
from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from boostnet_core.study.runs import seed_band
from boostnet_core.thresholds import outcome_at
import projector
from charts import curves_png, plot_layout, model_color
from session import bind, exit_setting_controls, thresholds_for
from store import (ASSETS, available_checkpoints, data_group, data_name, label, load_or_error, predictions, results,
                   scored_or_error, seed_siblings_of)

st.title("Accuracy vs cost")
options = available_checkpoints()
if not options:
    st.warning("No checkpoint found. Train one or load a folder on the Models page.")
    st.stop()
# By default, every model of the first model's data set (for example all shipped CIFAR-10 models).
default = [p for p in options if data_group(p) == data_group(options[0])]
st.session_state["saved_curve_models"] = [p for p in st.session_state.get("saved_curve_models", default) if p in options]
chosen = st.multiselect("Models", options, format_func=label, **bind("curve_models", default))
models = {p: m for p in chosen if (m := load_or_error(p)) is not None}
lowest = max([int(np.ceil(100 * m.macs[0] / m.macs[-1])) for m in models.values()], default=1)
setting = exit_setting_controls(lowest_share=lowest, budget_ok=all("val" in predictions(p) for p in models),
                                n_exits=max([m.num_exits for m in models.values()], default=2))
st.caption("Dotted line and circles: anytime (every sample to exit k). Solid line: budgeted batch (per-exit thresholds "
           "fitted on the validation split). Shaded: mean ± sd over seeds, when a model has runs with other seeds. "
           f"Star: the operating point at the exit setting ({setting.describe()}), which every page shares.")


def curves_of(path: str, net) -> dict | None:
    """Everything drawn for one model (also what the CSV and PNG are made of)."""
    res = results(path)
    if res is None:
        st.warning(f"{label(path)} has no evaluation yet: run `boostnet evaluate {path}`.")
        return None
    out = {"name": label(path), "color": model_color(path), "macs": res["macs"], "top1": res["anytime"]["top1"],
           "budgeted": res.get("budgeted") or [], "band": None, "star": None}
    siblings = seed_siblings_of(path)
    if len(siblings) > 1:   # the same run with other seeds: mean ± sd band of the anytime accuracy
        out["band"] = seed_band(siblings)
    criterion, scored_splits = scored_or_error(path, setting.criterion) if "test" in predictions(path) else (None, None)
    if criterion is not None:
        point = outcome_at(scored_splits["test"], thresholds_for(path, net.num_exits, setting), net.macs,
                           criterion.score_range)
        out["star"] = {"macs": point.avg_macs, "top1": point.top1}
    return out


def figure(drawn: list[dict], y_from_zero: bool = False) -> go.Figure:
    fig = go.Figure()
    for d in drawn:
        macs = np.array(d["macs"]) / 1e6
        group = dict(legendgroup=d["name"], line=dict(color=d["color"]))
        if d["band"]:
            mean, sd = np.array(d["band"]["mean"]), np.array(d["band"]["sd"])
            fig.add_scatter(x=np.concatenate([macs, macs[::-1]]), y=np.concatenate([mean + sd, (mean - sd)[::-1]]),
                            fill="toself", fillcolor=d["color"], opacity=0.18, line=dict(width=0), hoverinfo="skip",
                            legendgroup=d["name"], showlegend=False,
                            name=f"{d['name']}: mean ± sd over {d['band']['n']} seeds")
        fig.add_scatter(x=macs, y=d["top1"], mode="markers+lines", name=d["name"], marker=dict(size=8),
                        text=[f"exit {k + 1}" for k in range(len(macs))], line_dash="dot", legendgroup=d["name"],
                        line_color=d["color"],
                        hovertemplate="%{text}: %{x:.2f} M MACs, %{y:.2f}%<extra>" + d["name"] + "</extra>")
        if d["budgeted"]:
            b = d["budgeted"]
            fig.add_scatter(x=[p["avg_macs"] / 1e6 for p in b], y=[p["top1"] for p in b], mode="lines", showlegend=False,
                            customdata=[p["q"] for p in b], **group,
                            hovertemplate="budgeted, q=%{customdata:.2f}: %{x:.2f} M MACs, %{y:.2f}%<extra>" + d["name"] + "</extra>")
        if d["star"]:
            fig.add_scatter(x=[d["star"]["macs"] / 1e6], y=[d["star"]["top1"]], mode="markers", showlegend=False,
                            legendgroup=d["name"],
                            marker=dict(symbol="star", size=16, color=d["color"], line=dict(color="black", width=1)),
                            hovertemplate="operating point: %{x:.2f} M MACs, %{y:.2f}%<extra>" + d["name"] + "</extra>")
    if y_from_zero:
        fig.update_yaxes(range=[0, 100])
    return plot_layout(fig, "MACs per image (millions)", "top-1 accuracy (%)", 460)


by_data: dict[str, list[dict]] = {}
for path, net in models.items():
    drawn = curves_of(path, net)
    if drawn is not None:
        by_data.setdefault(data_name(path), []).append(drawn)
if not by_data:
    st.info("Nothing to plot yet: choose models that have an evaluation.")
    st.stop()
if len(by_data) > 1:
    st.caption("The chosen models were trained on different data sets, so each data set has a chart of its own.")
# Zoomed to the data, a difference of a few tenths of a point fills the chart and noise looks like an effect.
y_from_zero = st.toggle("Accuracy axis from 0% to 100%", **bind("curves_y_from_zero", False),
                        help="Off: the axis zooms to the points, so small differences look large.")
for data, drawn in by_data.items():
    st.markdown(f"**{data}**")
    st.plotly_chart(figure(drawn, y_from_zero), key=f"curves_{data}")

if st.checkbox("Show the paper's published curves (CIFAR-100 and ImageNet, arXiv 2211.16726, section 4)", value=False):
    ref = json.loads((ASSETS / "published_curves.json").read_text())
    # One chart per data set: on one linear axis, CIFAR-100's 15-120 M MACs were a sliver beside ImageNet's 3,300 M.
    by_set: dict[str, dict] = {}
    for name, series in ref["curves"].items():
        by_set.setdefault(name.split(" ")[0], {})[name.split(" ", 1)[1]] = series
    st.caption("Published figures, read off the paper's plots: one chart per data set (their costs differ 30-fold).")
    with projector.chart_row():
        for data_set, curves in by_set.items():
            ref_fig = go.Figure()
            for name, series in curves.items():
                ref_fig.add_scatter(x=series["macs_millions"], y=series["top1"], mode="markers+lines", name=name,
                                    line=dict(dash="solid" if "BoostNet" in name else "dot"),
                                    marker=dict(symbol="x" if "BoostNet" in name else "circle-open", size=7),
                                    hovertemplate=name + ": %{x:.1f} M MACs, %{y:.2f}%<extra>published</extra>")
            if y_from_zero:
                ref_fig.update_yaxes(range=[0, 100])
            st.plotly_chart(plot_layout(ref_fig, "MACs per image (millions)", "top-1 accuracy (%)", 380,
                                        legend=len(curves), title=f"{data_set} (published)"),
                            key=f"reference_{data_set}", width=projector.chart_width(380))


def csv_of(groups: dict[str, list[dict]]) -> str:
    lines = ["model,data,kind,exit,q,macs,top1"]
    for data, drawn in groups.items():
        for d in drawn:
            lines += [f"{d['name']},{data},anytime,{k + 1},,{m:.0f},{a:.4f}" for k, (m, a) in enumerate(zip(d["macs"], d["top1"]))]
            lines += [f"{d['name']},{data},budgeted,,{p['q']:.4f},{p['avg_macs']:.0f},{p['top1']:.4f}" for p in d["budgeted"]]
            if d["star"]:
                lines.append(f"{d['name']},{data},operating point,,,{d['star']['macs']:.0f},{d['star']['top1']:.4f}")
    return "\n".join(lines) + "\n"


c1, c2 = st.columns(2)
c1.download_button("Download the points as CSV", csv_of(by_data), "accuracy_vs_cost.csv", "text/csv")
c1.caption("Columns: kind is anytime (every test sample to `exit`), budgeted (the paper's budgeted batch at "
           "parameter `q`: exit k takes a share of the samples proportional to q^k, thresholds fitted on the "
           "validation split) or the operating point; macs is the average per image; top1 in %.")
# Drawn only when asked for (matplotlib takes about a second): Streamlit calls the function at the click, and the
# page is not run again for it.
c2.download_button("Download the plot as PNG", lambda: curves_png(by_data), "accuracy_vs_cost.png", "image/png",
                   on_click="ignore")
