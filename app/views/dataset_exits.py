"""Threshold and exits over a data set: how the cached test split spreads over the exits under the exit setting."""
from __future__ import annotations

import numpy as np
import streamlit as st
from plotly.subplots import make_subplots

from boostnet_core.thresholds import outcome_at, reach_per_exit
from charts import EXIT_COLORS, LIGHT, fmt_macs, fmt_pct, plot_layout
from images import dataset_images, strip
from session import ExitMode, exit_setting_controls, pick_model, thresholds_for
from store import load_or_error, predictions

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

setting = exit_setting_controls(lowest_share=int(np.ceil(100 * macs[0] / macs[-1])), budget_ok="val" in cache)
thresholds = thresholds_for(path, n_exits, setting)
if setting.mode is ExitMode.BUDGET and "val" in cache:
    st.sidebar.caption("Per-exit thresholds fitted on the validation split: " +
                       ", ".join("none" if np.isinf(t) else f"{t:.3f}" for t in thresholds[:-1]) + ", last takes the rest")

outcome = outcome_at(test, thresholds, model.macs)
mismatch = {k: v.numpy() for k, v in reach_per_exit(test, outcome.exits).items()}
conf, pred, labels = test.confidence.numpy(), test.prediction.numpy(), test.labels.numpy()
exits = outcome.exits.numpy()

m1, m2, m3, m4 = st.columns(4)
m1.metric("Accuracy (top-1)", fmt_pct(outcome.top1))
m2.metric("Average cost", fmt_macs(outcome.avg_macs), help="Over the test split, at this setting.")
m2.caption(f"{100 * outcome.cost_ratio:.1f}% of the full network's MACs"
           + (f" (budget {setting.budget_share}%, fitted on the validation split)" if setting.mode is ExitMode.BUDGET else ""))
m3.metric("MACs saved vs full network", f"{1 / outcome.cost_ratio:.2f}x fewer",
          help="A ratio of multiply-adds, not of measured wall time.")
m4.metric("Last exit alone", fmt_pct(mismatch["accuracy_all"][-1]), help="every sample through the whole network")

counts = outcome.counts.numpy()
names = [f"exit {k + 1}" for k in range(n_exits)]
acc_leaving = [None if np.isnan(a) else float(a) for a in outcome.accuracy_leaving.numpy()]
reach, acc_all, acc_reach = mismatch["reach"], mismatch["accuracy_all"], mismatch["accuracy_reached"]
# One figure with three panels: each figure costs the browser a redraw on every threshold move. Only the third
# panel has a legend, drawn inside it, in colours the other panels do not use.
fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                    subplot_titles=[f"Where samples exit ({setting.describe()})", "Accuracy of the samples leaving here",
                                    "Train/test mismatch per head"])
fig.add_bar(x=names, y=counts, marker_color=EXIT_COLORS[0], text=counts, textposition="outside", showlegend=False,
            hovertemplate="%{x}: %{y} samples<extra></extra>", row=1, col=1)
fig.add_bar(x=names, y=acc_leaving, marker_color=EXIT_COLORS[2], showlegend=False,
            text=[f"{a:.1f}" if a is not None else "" for a in acc_leaving], textposition="outside",
            hovertemplate="%{x}: %{y:.2f}%<extra></extra>", row=1, col=2)
fig.add_bar(name="accuracy, all samples", x=names, y=acc_all, marker_color="#9D755D", row=1, col=3,
            hovertemplate="%{x}: %{y:.2f}% of all samples<extra></extra>")
fig.add_bar(name="accuracy, samples that reach it", x=names, y=acc_reach, marker_color=EXIT_COLORS[3], row=1, col=3,
            hovertemplate="%{x}: %{y:.2f}% of the samples reaching it<extra></extra>")
fig.add_scatter(name="share reaching it", x=names, y=reach, mode="lines+markers", line=dict(color="#333333", dash="dot"),
                row=1, col=3, hovertemplate="%{x}: %{y:.2f}% reach it<extra></extra>")
fig.update_yaxes(range=[0, 1.15 * max(counts.max(), 1)], title_text="test samples", row=1, col=1)  # room for labels
fig.update_yaxes(range=[0, 112], title_text="top-1 of those samples (%)", row=1, col=2)
fig.update_yaxes(range=[0, 130], title_text="percent", tickvals=[0, 20, 40, 60, 80, 100], row=1, col=3)
fig.update_xaxes(title_text="exit")
fig.update_layout(barmode="group")
plot_layout(fig, "exit", "", 380)
fig.update_layout(legend=dict(orientation="h", x=0.70, y=1.0, xanchor="left", yanchor="top", font=dict(size=10),
                              bgcolor="rgba(255,255,255,0.7)"), margin=dict(t=40))
st.plotly_chart(fig, key="hist", config=LIGHT)
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
    st.stop()
if images.is_sample:
    st.info(f"The full test split is not on this machine, so the gallery shows {images.note}: the most and least "
            "confident of those that leave at each exit. Give the data root above to see every test image.")
counts_here = np.bincount(exits[images.indices], minlength=n_exits)
k = st.selectbox("Exit", range(n_exits), key="gallery_exit",
                 format_func=lambda i: f"exit {i + 1} ({counts_here[i]} sample{'s' if counts_here[i] != 1 else ''}"
                                       + (" of the shipped sample)" if images.is_sample else ")"))
members = images.indices[exits[images.indices] == k]
if len(members) == 0:
    st.write("No test image shown here leaves at this exit at this setting.")
else:
    order = members[np.argsort(-conf[k][members])]
    for title, chosen in (("Most confident", order[:8]), ("Least confident", order[::-1][:8])):
        # One image per row (a strip of thumbnails) rather than eight: far less for the browser to redraw.
        st.markdown(f"**{title}** at exit {k + 1}")
        st.image(strip([images.image(i) for i in chosen]), width=8 * 80)
        st.caption(" · ".join(f"#{i} {classes[pred[k][i]]} {conf[k][i]:.2f} {'✓' if pred[k][i] == labels[i] else '✗'}"
                              for i in chosen))
