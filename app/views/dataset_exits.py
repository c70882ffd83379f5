"""Threshold and exits over a data set: how the cached test split spreads over the exits under the exit setting."""
from __future__ import annotations

import numpy as np
import streamlit as st
from plotly.subplots import make_subplots

from boostnet_core.thresholds import outcome_at, reach_per_exit
from charts import EXIT_COLORS, LIGHT, fmt_macs, fmt_pct, plot_layout
from images import dataset_images, strip
from session import CRITERION_NAMES, RISKS, ExitMode, exit_setting_controls, pick_loaded_model, thresholds_for
from store import certified, predictions, scored_or_error

st.title("Threshold and exits over a data set")
path, model = pick_loaded_model()
cache = predictions(path)
if "test" not in cache:
    st.warning(f"{path} has no cached evaluation. Run `boostnet evaluate {path}` once; the app then reads its cache.")
    st.stop()
macs = np.array(model.macs)
n_exits = model.num_exits
classes = model.classes

setting = exit_setting_controls(lowest_share=int(np.ceil(100 * macs[0] / macs[-1])), budget_ok="val" in cache,
                                n_exits=n_exits)
criterion, scored_splits = scored_or_error(path, setting.criterion)
if criterion is None:
    st.stop()
test = scored_splits["test"]        # `confidence` holds the criterion's scores
thresholds = thresholds_for(path, n_exits, setting)
if setting.mode is not ExitMode.THRESHOLD and "val" in cache:
    st.sidebar.caption("Per-exit thresholds fitted on the validation split: " +
                       ", ".join("none" if np.isinf(t) else f"{t:.3f}" for t in thresholds[:-1]) + ", last takes the rest")

if setting.mode is ExitMode.CERTIFIED and "val" in cache:
    c = certified(path, setting.risk, setting.epsilon, setting.delta, setting.criterion)
    with st.container(border=True):
        st.markdown(f"**Certified thresholds** ({RISKS[setting.risk]}, {CRITERION_NAMES[setting.criterion]}): "
                    + ", ".join("none" if t is None else f"{t:.3f}" for t in c["thresholds"][:-1])
                    + ", the last exit takes the rest.")
        st.markdown(f"**The guarantee**: with probability at least {1 - setting.delta:g} over the "
                    f"{c['calibration']['images']:,} validation images used to calibrate, the "
                    f"{RISKS[setting.risk]} on new images like them is at most {setting.epsilon:g}"
                    + (" (nothing cheaper could be certified: every image goes to the last exit)." if not c["nontrivial"]
                       else "."))
        g1, g2, g3 = st.columns(3)
        g1.metric("Risk seen on the test split", f"{c['test']['risk']:.4f}", help=f"allowed: {setting.epsilon:g}")
        g2.metric("Cost saved against the full network", f"{100 * (1 - c['test']['cost_ratio']):.1f}%",
                  help="Share of the last exit's MACs not spent, on the test split.")
        g3.metric("Top-1 on the test split", fmt_pct(c["test"]["top1"]),
                  help=f"the last exit alone: {fmt_pct(c['test']['last_exit_top1'])}")

outcome = outcome_at(test, thresholds, model.macs, criterion.score_range)
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
fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.11,
                    subplot_titles=["Where samples exit", "Accuracy of those leaving", "Train/test mismatch per head"])
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
st.markdown(f"**Where samples exit ({setting.describe()})**")
st.plotly_chart(fig, key="hist", config=LIGHT)
st.caption("Mismatch: in joint training every head learns from every sample; at test time head k only sees the "
           "samples that reach it, the harder ones. BoostNet trains head k on what the earlier heads leave unexplained.")
st.markdown("| | " + " | ".join(names) + " |\n|---|" + "---:|" * n_exits + "\n" + "\n".join(
    f"| {title} | " + " | ".join(fmt.format(v) if not np.isnan(v) else "–" for v in values) + " |"
    for title, values, fmt in (("reach %", reach, "{:.2f}"), ("accuracy, all samples %", acc_all, "{:.2f}"),
                               ("accuracy, samples reaching it %", acc_reach, "{:.2f}"),
                               ("samples leaving here", counts.astype(float), "{:.0f}"))))

st.subheader("Is 0.9 confident really 90% right? Reliability per exit")
if st.toggle("Show the reliability diagrams", value=False, key="show_reliability"):
    from boostnet_core.calibration import reliability
    diagrams = reliability(cache["test"], bins=10)     # max-softmax confidence, as the cache stores it
    rel = make_subplots(rows=1, cols=n_exits, shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[f"exit {d['exit'] + 1}: ECE {d['ece']:.3f}" for d in diagrams])
    for d in diagrams:
        mids = [(b["low"] + b["high"]) / 2 for b in d["bins"]]
        rel.add_bar(x=mids, y=[b["accuracy"] for b in d["bins"]], width=0.09, marker_color=EXIT_COLORS[0],
                    customdata=[b["count"] for b in d["bins"]], showlegend=d["exit"] == 0, name="accuracy in the bin",
                    hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} samples)<extra></extra>",
                    row=1, col=d["exit"] + 1)
        rel.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#333333", dash="dot"), name="perfectly calibrated",
                        showlegend=d["exit"] == 0, hoverinfo="skip", row=1, col=d["exit"] + 1)
    rel.update_xaxes(range=[0, 1], title_text="confidence")
    rel.update_yaxes(range=[0, 1.02])
    st.plotly_chart(plot_layout(rel, "confidence", "accuracy", 300), key="reliability", config=LIGHT)
    st.caption("Test samples binned by their max-softmax confidence at each exit: a bar at the diagonal means the "
               "confidence is the accuracy; below it, the exit is over-confident. ECE: expected calibration error, "
               "the share-weighted gap between confidence and accuracy over the bins.")

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
