"""Threshold and exits over a data set: how the cached test split spreads over the exits at a threshold."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from common import (EXIT_COLORS, dataset_images, fmt_macs, load_or_error, pick_model, plot_layout, predictions,
                    to_display)
from boostnet_core.evaluation import ExitPredictions, assign_exits, fit_to_budget

st.title("Threshold and exits over a data set")
path = pick_model()
model = load_or_error(path) if path else None
if model is None:
    st.stop()
cache = predictions(path)
if "test" not in cache:
    st.warning(f"{path} has no cached evaluation. Run `boostnet evaluate {path}` once; the app then reads its cache.")
    st.stop()
test = cache["test"]
macs = np.array(model.macs)
n_exits = model.num_exits
classes = model.meta.get("classes") or [str(i) for i in range(model.backbone.cfg.num_classes)]

mode = st.sidebar.radio("Thresholds", ["One global threshold", "Fitted to a cost budget"], key="threshold_mode")
if mode == "One global threshold":
    threshold = st.sidebar.slider("Confidence threshold", 0.0, 1.0, st.session_state.get("threshold", 0.9), 0.01, key="dataset_threshold")
    st.session_state["threshold"] = threshold
    thresholds = np.full(n_exits, threshold)
elif "val" not in cache:
    st.error("This model was trained without a validation split, so thresholds cannot be fitted to a budget; use one global threshold.")
    st.stop()
else:
    share = st.sidebar.slider("Budget: average MACs, % of the full network", int(np.ceil(100 * macs[0] / macs[-1])), 100, 60, 1, key="budget_share")
    val = cache["val"]
    fitted = fit_to_budget(ExitPredictions(torch.from_numpy(val["confidence"]), torch.from_numpy(val["prediction"]),
                                           torch.from_numpy(val["top5"]), torch.from_numpy(val["labels"])),
                           list(macs), share / 100 * macs[-1])
    thresholds = fitted.numpy()
    st.sidebar.caption("Per-exit thresholds fitted on the validation split: " +
                       ", ".join("none" if np.isinf(t) else f"{t:.3f}" for t in thresholds[:-1]) + ", last takes the rest")

conf, pred, labels = test["confidence"], test["prediction"], test["labels"]
exits = assign_exits(torch.from_numpy(conf), torch.from_numpy(thresholds)).numpy()
n = len(labels)
idx = np.arange(n)
correct_at_exit = pred[exits, idx] == labels
avg_macs = macs[exits].mean()

m1, m2, m3, m4 = st.columns(4)
m1.metric("Accuracy (top-1)", f"{100 * correct_at_exit.mean():.2f}%")
m2.metric("Average cost", fmt_macs(avg_macs))
m3.metric("Speed-up vs full network", f"{macs[-1] / avg_macs:.2f}x")
m4.metric("Last exit alone", f"{100 * (pred[-1] == labels).mean():.2f}%", help="every sample through the whole network")

counts = np.bincount(exits, minlength=n_exits)
names = [f"exit {k + 1}" for k in range(n_exits)]
acc_leaving = [100 * correct_at_exit[exits == k].mean() if counts[k] else None for k in range(n_exits)]
c1, c2 = st.columns(2)
with c1:
    fig = go.Figure(go.Bar(x=names, y=counts, marker_color=EXIT_COLORS[0], text=counts, textposition="outside",
                           hovertemplate="%{x}: %{y} samples<extra></extra>"))
    fig.update_yaxes(range=[0, 1.15 * max(counts.max(), 1)])  # room for the labels above the bars
    st.plotly_chart(plot_layout(fig, "exit taken", "test samples", 300).update_layout(title="Where samples exit"), key="hist")
with c2:
    fig = go.Figure(go.Bar(x=names, y=acc_leaving, marker_color=EXIT_COLORS[2],
                           text=[f"{a:.1f}" if a is not None else "" for a in acc_leaving], textposition="outside",
                           hovertemplate="%{x}: %{y:.2f}%<extra></extra>"))
    fig.update_yaxes(range=[0, 112])
    st.plotly_chart(plot_layout(fig, "exit taken", "accuracy of samples leaving here (%)", 300).update_layout(title="Accuracy of the samples leaving at each exit"), key="acc_leaving")

st.subheader("Train/test mismatch per head")
st.caption("In joint training every head learns from every sample; at test time head k only sees the samples that "
           "reach it, the harder ones. BoostNet trains head k on what the earlier heads leave unexplained.")
reach = np.array([(exits >= k).mean() for k in range(n_exits)])
acc_all = np.array([(pred[k] == labels).mean() for k in range(n_exits)])
acc_reach = np.array([(pred[k][exits >= k] == labels[exits >= k]).mean() if (exits >= k).any() else np.nan for k in range(n_exits)])
fig = go.Figure()
fig.add_bar(name="accuracy on all samples", x=names, y=100 * acc_all, marker_color=EXIT_COLORS[0])
fig.add_bar(name="accuracy on the samples that reach it", x=names, y=100 * acc_reach, marker_color=EXIT_COLORS[3])
fig.add_scatter(name="share of samples reaching it", x=names, y=100 * reach, mode="lines+markers", line=dict(color=EXIT_COLORS[5]))
fig.update_layout(barmode="group")
st.plotly_chart(plot_layout(fig, "exit", "percent", 340), key="mismatch")
st.dataframe({"exit": names, "reach %": np.round(100 * reach, 2), "acc. all %": np.round(100 * acc_all, 2),
              "acc. reaching %": np.round(100 * acc_reach, 2), "leave here": counts}, hide_index=True)

st.subheader("Gallery: easiest and hardest samples per exit")
root = st.text_input("Data root for the images (if not found automatically)", key=f"root_{path}")
images, why_not = dataset_images(path, root or None)
if images is None:
    st.info(why_not)
else:
    k = st.selectbox("Exit", range(n_exits), format_func=lambda i: f"exit {i + 1} ({counts[i]} samples)", key="gallery_exit")
    members = idx[exits == k]
    if len(members) == 0:
        st.write("No test sample leaves at this exit at these thresholds.")
    else:
        order = members[np.argsort(-conf[k][members])]
        for title, chosen in (("Most confident", order[:8]), ("Least confident", order[::-1][:8])):
            st.markdown(f"**{title}**")
            cols = st.columns(8)
            for col, i in zip(cols, chosen):
                ok = "right" if pred[k][i] == labels[i] else "wrong"
                col.image(to_display(images[i]), caption=f"#{i} {classes[pred[k][i]]} {conf[k][i]:.2f} ({ok})", width=72, clamp=True)
