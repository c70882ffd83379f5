"""Threshold and exits over a data set: how the cached test split spreads over the exits under the exit setting."""
from __future__ import annotations

import json

import numpy as np
import streamlit as st
import plotly.graph_objects as go

from boostnet_core.thresholds import format_thresholds, outcome_at, reach_per_exit
import projector
from charts import EXIT_COLORS, LIGHT, fmt_macs_short, fmt_pct, plot_layout
from images import dataset_images, strip
from session import CRITERION_NAMES, RISKS, ExitMode, exit_setting_controls, pick_loaded_model, thresholds_for
from store import certified, no_cache_sentence, predictions, scored_or_error

FIGURE_WIDTH = 175   # px: the longest figure label ("Risk seen (test split)") with its help mark; four in 800 px

st.title("Threshold and exits over a data set")
path, model = pick_loaded_model()
cache = predictions(path)
if "test" not in cache:
    st.warning(no_cache_sentence(path))
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
                       ", ".join("no exit" if np.isinf(t) else f"{t:.3f}" for t in thresholds[:-1])
                       + ", the last exit takes the rest (\"no exit\": no image leaves at that exit).")

if setting.mode is ExitMode.CERTIFIED and "val" in cache:
    c = certified(path, setting.risk, setting.epsilon, setting.delta, setting.criterion)
    with st.container(border=True):
        st.markdown(f"**Certified thresholds** ({RISKS[setting.risk]}, {CRITERION_NAMES[setting.criterion]}): "
                    + ", ".join("no exit" if t is None else f"{t:.3f}" for t in c["thresholds"][:-1])
                    + ", the last exit takes the rest (\"no exit\": no image leaves at that exit; exact values below).")
        st.markdown(f"**The guarantee**: with probability at least {100 * (1 - setting.delta):g}% over the "
                    f"{c['calibration']['images']:,} validation images used to calibrate, the "
                    f"{RISKS[setting.risk]} on new images like them is at most {100 * setting.epsilon:g}% of them"
                    + (" (nothing cheaper could be certified: every image goes to the last exit)." if not c["nontrivial"]
                       else "."))
        # In percent, as epsilon is stated; short labels in a wrapping row (three columns cut them at 1024 px).
        with projector.chart_row():
            width = projector.figure_width(FIGURE_WIDTH)
            st.metric("Risk seen (test split)", f"{100 * c['test']['risk']:.2f}%", width=width,
                      help=f"Allowed: {100 * setting.epsilon:g}% of images.")
            st.metric("MACs saved", f"{100 * (1 - c['test']['cost_ratio']):.1f}%", width=width,
                      help="Share of the full network's multiply-adds not spent, on the test split.")
            st.metric("Top-1 (test split)", fmt_pct(c["test"]["top1"]), width=width,
                      help=f"the last exit alone: {fmt_pct(c['test']['last_exit_top1'])}")
        with st.expander("Use these thresholds outside the app (exact values, certificate file)"):
            st.caption("The certificate holds the exact thresholds, the guarantee and the SHA-256 of these weights; "
                       "`boostnet predict` and `boostnet export` take it and refuse it for any other weights.")
            st.code(f"boostnet predict {path} IMAGE.png --certificate cert.json\n"
                    f"boostnet predict {path} IMAGE.png --threshold {format_thresholds(c['thresholds'])}"
                    + ("" if setting.criterion == "max_softmax" else f" --criterion {setting.criterion}"),
                    language="bash")
            st.download_button("Download the certificate (cert.json)", json.dumps(c, indent=2, allow_nan=False),
                               "cert.json", "application/json")

outcome = outcome_at(test, thresholds, model.macs, criterion.score_range)
mismatch = {k: v.numpy() for k, v in reach_per_exit(test, outcome.exits).items()}
conf, pred, labels = test.confidence.numpy(), test.prediction.numpy(), test.labels.numpy()
exits = outcome.exits.numpy()

# Short values with the unit in the label (st.metric cuts a long value with an ellipsis: "12.12 M M..."), each
# figure at a width that holds its label, in a row that wraps at 1024 px instead of cutting the labels.
with projector.chart_row():
    st.metric("Accuracy (top-1)", fmt_pct(outcome.top1), width=projector.figure_width(FIGURE_WIDTH))
    with st.container(width=projector.figure_width(FIGURE_WIDTH), gap=None):
        st.metric("Average cost (MACs)", fmt_macs_short(outcome.avg_macs),
                  help="Multiply-adds per image, over the test split, at this setting.")
        st.caption(f"{100 * outcome.cost_ratio:.1f}% of the full network's MACs"
                   + (f" (budget {setting.budget_share}%, fitted on the validation split)" if setting.mode is ExitMode.BUDGET else ""))
    st.metric("Times fewer MACs", f"{1 / outcome.cost_ratio:.2f}x", width=projector.figure_width(FIGURE_WIDTH),
              help="The full network's multiply-adds divided by this setting's: a ratio of work, not of measured time.")
    st.metric("Last exit alone", fmt_pct(mismatch["accuracy_all"][-1]), width=projector.figure_width(FIGURE_WIDTH),
              help="every sample through the whole network")

counts = outcome.counts.numpy()
names = [f"exit {k + 1}" for k in range(n_exits)]
acc_leaving = [None if np.isnan(a) else float(a) for a in outcome.accuracy_leaving.numpy()]
reach, acc_all, acc_reach = mismatch["reach"], mismatch["accuracy_all"], mismatch["accuracy_reached"]
# Three figures, each with its own title and axes, in a row that wraps: at 1280 px or less they go two and one (or
# one per row) instead of shrinking until their titles run together, as panels of one figure did.
where = go.Figure(go.Bar(x=names, y=counts, marker_color=EXIT_COLORS[0], text=counts, textposition="outside",
                         cliponaxis=False, hovertemplate="%{x}: %{y} samples<extra></extra>"))
where.update_yaxes(range=[0, 1.15 * max(counts.max(), 1)])   # room for the labels above the bars
leaving = go.Figure(go.Bar(x=names, y=acc_leaving, marker_color=EXIT_COLORS[2], cliponaxis=False,
                           text=[f"{a:.1f}" if a is not None else "" for a in acc_leaving], textposition="outside",
                           hovertemplate="%{x}: %{y:.2f}%<extra></extra>"))
leaving.update_yaxes(range=[0, 112], tickvals=[0, 20, 40, 60, 80, 100])
mismatch_fig = go.Figure()
mismatch_fig.add_bar(name="all samples", x=names, y=acc_all, marker_color="#9D755D",
                     hovertemplate="%{x}: %{y:.2f}% of all samples<extra></extra>")
mismatch_fig.add_bar(name="samples that reach it", x=names, y=acc_reach, marker_color=EXIT_COLORS[3],
                     hovertemplate="%{x}: %{y:.2f}% of the samples reaching it<extra></extra>")
mismatch_fig.add_scatter(name="share reaching it", x=names, y=reach, mode="lines+markers",
                         line=dict(color="#777777", dash="dot"), hovertemplate="%{x}: %{y:.2f}% reach it<extra></extra>")
mismatch_fig.update_layout(barmode="group")
mismatch_fig.update_yaxes(range=[0, 105], tickvals=[0, 20, 40, 60, 80, 100])
st.markdown(f"**Where samples exit ({setting.describe()})**")
with projector.chart_row():
    for key, fig, title, y_title, legend in (
            ("hist", where, "Where samples exit", "test samples", False),
            ("leaving", leaving, "Accuracy of those leaving", "top-1 of those samples (%)", False),
            ("mismatch", mismatch_fig, "Train/test mismatch per head", "percent", 2)):
        plot_layout(fig, "exit", y_title, 360 if legend else 320, legend=legend, title=title)
        st.plotly_chart(fig, key=key, config=LIGHT, width=projector.chart_width(380))
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
    # One small figure per exit in a row that wraps (panels of one figure squeezed their titles together).
    with projector.chart_row():
        for d in diagrams:
            rel = go.Figure()
            mids = [(b["low"] + b["high"]) / 2 for b in d["bins"]]
            rel.add_bar(x=mids, y=[b["accuracy"] for b in d["bins"]], width=0.09, marker_color=EXIT_COLORS[0],
                        customdata=[b["count"] for b in d["bins"]], name="accuracy in the bin", showlegend=False,
                        hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} samples)<extra></extra>")
            rel.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#777777", dash="dot"), showlegend=False,
                            name="perfectly calibrated", hoverinfo="skip")
            rel.update_xaxes(range=[0, 1])
            rel.update_yaxes(range=[0, 1.02])
            plot_layout(rel, "confidence", "accuracy", 260, legend=False,
                        title=f"exit {d['exit'] + 1}: ECE {100 * d['ece']:.1f}%")
            st.plotly_chart(rel, key=f"reliability_{d['exit']}", config=LIGHT, width=projector.chart_width(230))
    st.caption("Test samples binned by their confidence (max softmax) at each exit: a bar at the dotted diagonal "
               "means the confidence is the accuracy; below it, the exit is over-confident. ECE (expected calibration "
               "error): the average gap between confidence and accuracy over the bins, weighted by their samples, in "
               "percentage points.")

def gallery_rows(order: np.ndarray, per_row: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The most and the least confident images of `order` (most confident first), never one image in both rows:
    with fewer than 2 x per_row images the first half goes to the first row and the rest to the second."""
    most = order[:min(per_row, -(-len(order) // 2))]
    return most, order[len(most):][::-1][:per_row]


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
    most, least = gallery_rows(order)
    for title, chosen in (("Most confident", most), ("Least confident", least)):
        if len(chosen) == 0:
            continue
        # One image per row (a strip of thumbnails) rather than eight: far less for the browser to redraw.
        st.markdown(f"**{title}** at exit {k + 1}")
        st.image(strip([images.image(i) for i in chosen]), width=8 * 80)
        st.caption(" · ".join(f"#{i} {classes[pred[k][i]]} {conf[k][i]:.2f} {'✓' if pred[k][i] == labels[i] else '✗'}"
                              for i in chosen))
