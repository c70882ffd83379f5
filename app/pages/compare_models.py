"""Compare two models on the same cached test split (for example BoostNet against its joint baseline)."""
from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from common import (EXIT_COLORS, available_checkpoints, data_group, dataset_images, label, load_or_error, plot_layout,
                    predictions, to_display)
from boostnet_core.data import DataError, open_image
from boostnet_core.inference import preprocess_image, trace
from boostnet_core.thresholds import outcome_at, reach_per_exit

st.title("Compare models")
options = available_checkpoints()
if len(options) < 2:
    st.warning("Two checkpoints are needed; load another on the Models page.")
    st.stop()
c1, c2 = st.columns(2)
# Default pair: the first BoostNet model against a joint model of the same data set, when there is one.
first_joint = next((i for i, p in enumerate(options) if load_or_error(p) is not None and load_or_error(p).method == "joint"
                    and data_group(p) == data_group(options[0])), 1)
path_a = c1.selectbox("Model A", options, index=0, format_func=label, key="compare_a")
path_b = c2.selectbox("Model B", options, index=first_joint if first_joint != 0 else 1, format_func=label, key="compare_b")
threshold = st.slider("Confidence threshold (both models)", 0.0, 1.0, st.session_state.get("threshold", 0.9), 0.01, key="compare_threshold")
st.session_state["threshold"] = threshold
models = [load_or_error(p) for p in (path_a, path_b)]
if any(m is None for m in models):
    st.stop()
caches = [predictions(p).get("test") for p in (path_a, path_b)]
if any(c is None for c in caches):
    st.warning("Both models need a cached evaluation: run `boostnet evaluate CHECKPOINT` for the one that lacks it.")
    st.stop()
if not np.array_equal(caches[0].labels.numpy(), caches[1].labels.numpy()):
    st.error("These two models were evaluated on different test splits, so they cannot be compared sample by sample.")
    st.stop()
labels = caches[0].labels.numpy()
idx = np.arange(len(labels))

fig = go.Figure()
outcomes, lowest = [], 100.0
for j, (path, m, cache) in enumerate(zip((path_a, path_b), models, caches)):
    point = outcome_at(cache, threshold, m.macs)
    acc = reach_per_exit(cache, point.exits)["accuracy_all"].numpy()
    lowest = min(lowest, float(acc.min()))
    fig.add_bar(name=label(path), x=[f"exit {k + 1}" for k in range(len(acc))], y=acc, marker_color=EXIT_COLORS[j],
                text=[f"{a:.1f}" for a in acc], textposition="outside")
    outcomes.append({"exits": point.exits.numpy(), "final": point.final_prediction.numpy(), "macs": point.avg_macs,
                     "top1": point.top1, "counts": point.counts.numpy()})
fig.update_layout(barmode="group", title="Anytime top-1 per exit")
fig.update_yaxes(range=[max(0, lowest - 5), 100])
st.plotly_chart(plot_layout(fig, "exit", "top-1 accuracy (%)", 340), key="cmp_acc")

m = st.columns(4)
for j, (path, o) in enumerate(zip((path_a, path_b), outcomes)):
    m[2 * j].metric(f"{label(path)}: accuracy", f"{o['top1']:.2f}%")
    m[2 * j + 1].metric(f"{label(path)}: average cost", f"{o['macs'] / 1e6:.2f} M MACs")

fig = go.Figure()
for j, (path, o) in enumerate(zip((path_a, path_b), outcomes)):
    counts = o["counts"]
    fig.add_bar(name=label(path), x=[f"exit {k + 1}" for k in range(len(counts))], y=counts, marker_color=EXIT_COLORS[j])
fig.update_layout(barmode="group", title=f"Exits taken at threshold {threshold:.2f}")
st.plotly_chart(plot_layout(fig, "exit taken", "test samples", 300), key="cmp_exits")

a, b = outcomes
a_ok, b_ok = a["final"] == labels, b["final"] == labels
st.subheader("Disagreements")
d1, d2, d3 = st.columns(3)
d1.metric("Different predictions", int((a["final"] != b["final"]).sum()))
d2.metric(f"Only {label(path_a)} right", int((a_ok & ~b_ok).sum()))
d3.metric(f"Only {label(path_b)} right", int((~a_ok & b_ok).sum()))
classes = models[0].classes
differ = idx[a["final"] != b["final"]][:12]
if len(differ):
    images, why_not = dataset_images(path_a)
    if images is None:
        st.caption(why_not)
    cols = st.columns(6)
    for col, i in zip(cols * 2, differ):
        text = (f"#{i} true {classes[labels[i]]}\nA: {classes[a['final'][i]]} @exit {a['exits'][i] + 1}\n"
                f"B: {classes[b['final'][i]]} @exit {b['exits'][i] + 1}")
        if images is not None:
            col.image(to_display(images[i]), caption=text, width=90, clamp=True)
        else:
            col.text(text)

st.subheader("The same images through both models")
uploads = st.file_uploader("Upload images to compare (JPEG, PNG, WebP, BMP, GIF)", type=["jpg", "jpeg", "png", "webp", "bmp", "gif"],
                           accept_multiple_files=True, key="compare_uploads")
for f in uploads or []:
    try:
        img = open_image(io.BytesIO(f.getvalue()))
        traces = [trace(m, preprocess_image(img, m.meta), threshold) for m in models]
    except (DataError, ValueError) as e:
        st.error(f"{f.name}: {e}")
        continue
    cols = st.columns([1, 2, 2])
    cols[0].image(np.asarray(img.convert("RGB")), caption=f.name, width=110)
    for col, path, t in zip(cols[1:], (path_a, path_b), traces):
        col.metric(label(path), t["label"])
        col.caption(f"exit {t['exit_index'] + 1}, confidence {float(t['confidence'][t['exit_index']]):.3f}, "
                    f"{t['macs'] / 1e6:.2f} M MACs")
