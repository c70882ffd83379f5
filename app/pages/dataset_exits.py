"""Threshold and exits over a data set: how the cached test split spreads over the exits at a threshold."""
from __future__ import annotations

import numpy as np
import streamlit as st
from plotly.subplots import make_subplots

from common import (EXIT_COLORS, LIGHT, budget_thresholds, dataset_images, fmt_macs, load_or_error, pick_model, plot_layout,
                    predictions, remember, remembered, strip, to_display)
from boostnet_core.thresholds import outcome_at, reach_per_exit

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
classes = model.classes

MODES = ["One global threshold", "Fitted to a cost budget"]
mode = st.sidebar.radio("Thresholds", MODES, index=MODES.index(remembered("threshold_mode", MODES[0])), key="threshold_mode")
remember("threshold_mode", mode)
if mode == "One global threshold":
    threshold = st.sidebar.slider("Confidence threshold", 0.0, 1.0, st.session_state.get("threshold", 0.9), 0.01, key="dataset_threshold")
    st.session_state["threshold"] = threshold
    thresholds = np.full(n_exits, threshold)
elif "val" not in cache:
    st.error("This model was trained without a validation split, so thresholds cannot be fitted to a budget; use one global threshold.")
    st.stop()
else:
    lowest = int(np.ceil(100 * macs[0] / macs[-1]))
    share = st.sidebar.slider("Budget: average MACs, % of the full network", lowest, 100,
                              max(lowest, remembered("budget_share", 60)), 1, key="budget_share")
    remember("budget_share", share)
    thresholds = budget_thresholds(path, share)
    st.sidebar.caption("Per-exit thresholds fitted on the validation split: " +
                       ", ".join("none" if np.isinf(t) else f"{t:.3f}" for t in thresholds[:-1]) + ", last takes the rest")

setting = f"threshold {threshold:.2f}" if mode == MODES[0] else f"budget {share}% of the full MACs"
outcome = outcome_at(test, thresholds, model.macs)
mismatch = {k: v.numpy() for k, v in reach_per_exit(test, outcome.exits).items()}
conf, pred, labels = test.confidence.numpy(), test.prediction.numpy(), test.labels.numpy()
exits = outcome.exits.numpy()

m1, m2, m3, m4 = st.columns(4)
m1.metric("Accuracy (top-1)", f"{outcome.top1:.2f}%")
m2.metric("Average cost", fmt_macs(outcome.avg_macs))
m3.metric("MACs saved vs full network", f"{1 / outcome.cost_ratio:.2f}x fewer",
          help="A ratio of multiply-adds, not of measured wall time.")
m4.metric("Last exit alone", f"{mismatch['accuracy_all'][-1]:.2f}%", help="every sample through the whole network")

counts = outcome.counts.numpy()
names = [f"exit {k + 1}" for k in range(n_exits)]
acc_leaving = [None if np.isnan(a) else float(a) for a in outcome.accuracy_leaving.numpy()]
reach, acc_all, acc_reach = mismatch["reach"], mismatch["accuracy_all"], mismatch["accuracy_reached"]
# One figure with three panels: each figure costs the browser a redraw on every threshold move.
fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.09,
                    subplot_titles=[f"Where samples exit ({setting})", "Accuracy of the samples leaving here",
                                    "Train/test mismatch per head"])
fig.add_bar(x=names, y=counts, marker_color=EXIT_COLORS[0], text=counts, textposition="outside", showlegend=False,
            hovertemplate="%{x}: %{y} samples<extra></extra>", row=1, col=1)
fig.add_bar(x=names, y=acc_leaving, marker_color=EXIT_COLORS[2], showlegend=False,
            text=[f"{a:.1f}" if a is not None else "" for a in acc_leaving], textposition="outside",
            hovertemplate="%{x}: %{y:.2f}%<extra></extra>", row=1, col=2)
fig.add_bar(name="accuracy on all samples", x=names, y=acc_all, marker_color=EXIT_COLORS[0], row=1, col=3)
fig.add_bar(name="accuracy on the samples that reach it", x=names, y=acc_reach, marker_color=EXIT_COLORS[3], row=1, col=3)
fig.add_scatter(name="share of samples reaching it", x=names, y=reach, mode="lines+markers",
                line=dict(color=EXIT_COLORS[5]), row=1, col=3)
fig.update_yaxes(range=[0, 1.15 * max(counts.max(), 1)], title_text="test samples", row=1, col=1)  # room for labels
fig.update_yaxes(range=[0, 112], title_text="top-1 (%)", row=1, col=2)
fig.update_yaxes(range=[0, 105], title_text="percent", row=1, col=3)
fig.update_layout(barmode="group")
st.plotly_chart(plot_layout(fig, "exit", "", 360), key="hist", config=LIGHT)
st.caption("Mismatch: in joint training every head learns from every sample; at test time head k only sees the "
           "samples that reach it, the harder ones. BoostNet trains head k on what the earlier heads leave unexplained.")
st.markdown("| | " + " | ".join(names) + " |\n|---|" + "---:|" * n_exits + "\n" + "\n".join(
    f"| {title} | " + " | ".join(fmt.format(v) if not np.isnan(v) else "–" for v in values) + " |"
    for title, values, fmt in (("reach %", reach, "{:.2f}"), ("accuracy, all samples %", acc_all, "{:.2f}"),
                               ("accuracy, samples reaching it %", acc_reach, "{:.2f}"),
                               ("samples leaving here", counts.astype(float), "{:.0f}"))))

st.subheader("Gallery: easiest and hardest samples per exit")
if not st.toggle("Show the gallery", value=True, key="show_gallery"):
    st.stop()
root = st.text_input("Data root for the images (if not found automatically)", key=f"root_{path}")
images, why_not = dataset_images(path, root or None)
if images is None:
    st.info(why_not)
else:
    k = st.selectbox("Exit", range(n_exits), format_func=lambda i: f"exit {i + 1} ({counts[i]} samples)", key="gallery_exit")
    members = np.flatnonzero(exits == k)
    if len(members) == 0:
        st.write("No test sample leaves at this exit at these thresholds.")
    else:
        order = members[np.argsort(-conf[k][members])]
        for title, chosen in (("Most confident", order[:8]), ("Least confident", order[::-1][:8])):
            # One image per row (a strip of thumbnails) rather than eight: far less for the browser to redraw.
            st.markdown(f"**{title}** at exit {k + 1}")
            st.image(strip([to_display(images[i]) for i in chosen]), width=8 * 80)
            st.caption(" · ".join(f"#{i} {classes[pred[k][i]]} {conf[k][i]:.2f} {'✓' if pred[k][i] == labels[i] else '✗'}"
                                  for i in chosen))
