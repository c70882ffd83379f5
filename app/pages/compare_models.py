"""Compare two models on the same cached test split and on the same images (for example BoostNet against joint)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from common import (UPLOAD_TYPES, available_checkpoints, contribution_panels, data_group, dataset_images,
                    decode_upload, label, load_or_error, metadata, model_color, plot_layout, predictions, seed_siblings_of,
                    thumbnail, to_display)
from boostnet_core.data import DataError
from boostnet_core.inference import preprocess_image, trace
from boostnet_core.thresholds import outcome_at, reach_per_exit

PER_PAGE = 12


@st.cache_data(show_spinner="Comparing the seeds ...")
def seed_comparison(a_folders: tuple, b_folders: tuple) -> dict:
    """A − B per exit over the seeds both have: the study report's t-intervals (its per-seed tests are left out)."""
    from boostnet_core.study_report import compare, load_runs
    a = {r.seed: r for r in load_runs(list(a_folders))}
    b = {r.seed: r for r in load_runs(list(b_folders))}
    return compare(a, b, per_seed_tests=False)

st.title("Compare models")
options = available_checkpoints()
if len(options) < 2:
    st.warning("Two checkpoints are needed; load another on the Models page.")
    st.stop()
c1, c2 = st.columns(2)
# Default pair: the first BoostNet model against a joint model trained on the same data, when there is one.
first = options[0]
first_joint = next((i for i, p in enumerate(options) if p != first and data_group(p) == data_group(first)
                    and metadata(p).get("method") == "joint"), 1)
path_a = c1.selectbox("Model A", options, index=0, format_func=label, key="compare_a")
path_b = c2.selectbox("Model B", options, index=first_joint, format_func=label, key="compare_b")
threshold = st.slider("Confidence threshold (both models)", 0.0, 1.0, st.session_state.get("threshold", 0.9), 0.01, key="compare_threshold")
st.session_state["threshold"] = threshold
paths = (path_a, path_b)
models = [load_or_error(p) for p in paths]
if any(m is None for m in models):
    st.stop()
colors = [model_color(p) for p in paths]
if path_a == path_b:
    colors[1] = "#7F7F7F"


def same_images_section():
    st.subheader("The same images through both models")
    uploads = st.file_uploader("Upload images to compare", type=UPLOAD_TYPES, accept_multiple_files=True, key="compare_uploads")
    for position, f in enumerate(uploads or []):
        try:
            pixels = decode_upload(f.getvalue(), f.name)
            traces = [trace(m, preprocess_image(Image.fromarray(pixels), m.meta), threshold) for m in models]
        except (DataError, ValueError) as e:
            st.error(str(e))
            continue
        left, right = st.columns([1, 3])
        left.image(thumbnail(pixels, 120), caption=f.name, width=120)
        for path, t in zip(paths, traces):
            left.metric(label(path), t["label"])
            left.caption(f"exit {t['exit_index'] + 1}, confidence {float(t['confidence'][t['exit_index']]):.3f}, "
                         f"{t['macs'] / 1e6:.2f} M MACs")
        fig = go.Figure()
        for path, t, color in zip(paths, traces, colors):
            conf = t["confidence"].numpy()
            fig.add_scatter(x=[f"exit {k + 1}" for k in range(len(conf))], y=conf, mode="lines+markers", name=label(path),
                            line=dict(color=color), marker=dict(size=[16 if k == t["exit_index"] else 8 for k in range(len(conf))]))
        fig.add_hline(y=threshold, line_dash="dash", line_color="#E45756", annotation_text=f"threshold {threshold:.2f}")
        fig.update_yaxes(range=[0, 1.05])
        right.plotly_chart(plot_layout(fig, "exit (large marker: the exit taken)", "confidence of F_k", 260), key=f"cmp_conf_{position}")
        for path, t, m in zip(paths, traces, models):
            right.markdown(f"**{label(path)}**: what each head adds at every exit (w = {m.reweight:g})")
            right.plotly_chart(contribution_panels(t, m, 240), key=f"cmp_stack_{position}_{path}")


caches = [predictions(p).get("test") for p in paths]
if any(c is None for c in caches) or not np.array_equal(caches[0].labels.numpy(), caches[1].labels.numpy()):
    st.info("A sample-by-sample comparison needs both models evaluated on the same test split "
            "(`boostnet evaluate CHECKPOINT`); the images you upload below are compared either way.")
    same_images_section()
    st.stop()

labels = caches[0].labels.numpy()
outcomes = [outcome_at(c, threshold, m.macs) for c, m in zip(caches, models)]
reaches = [{k: v.numpy() for k, v in reach_per_exit(c, o.exits).items()} for c, o in zip(caches, outcomes)]

fig = go.Figure()
for path, r, color in zip(paths, reaches, colors):
    acc = r["accuracy_all"]
    fig.add_bar(name=label(path), x=[f"exit {k + 1}" for k in range(len(acc))], y=acc, marker_color=color,
                text=[f"{a:.1f}" for a in acc], textposition="outside")
fig.update_layout(barmode="group", title="Anytime top-1 per exit")
fig.update_yaxes(range=[max(0, min(float(r["accuracy_all"].min()) for r in reaches) - 5), 100])
st.plotly_chart(plot_layout(fig, "exit", "top-1 accuracy (%)", 340), key="cmp_acc")

siblings = [seed_siblings_of(p) for p in paths]
if min(len(s) for s in siblings) > 1 and path_a != path_b:
    result = seed_comparison(tuple(siblings[0]), tuple(siblings[1]))
    if len(result["seeds"]) > 1:
        d = np.array([e["difference"] for e in result["exits"]])
        lo, hi = np.array([e["low"] for e in result["exits"]]), np.array([e["high"] for e in result["exits"]])
        fig = go.Figure(go.Scatter(x=[f"exit {k + 1}" for k in range(len(d))], y=d, mode="markers",
                                   error_y=dict(type="data", symmetric=False, array=hi - d, arrayminus=d - lo),
                                   marker=dict(size=10, color=colors[0])))
        fig.add_hline(y=0, line_color="gray")
        m = result["mean_over_exits"]
        fig.update_layout(title=f"{label(path_a)} − {label(path_b)} over seeds {', '.join(map(str, result['seeds']))}: "
                                f"mean {m['difference']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}], {m['verdict']}")
        st.plotly_chart(plot_layout(fig, "exit", "difference, points (95% t-interval over seeds)", 300), key="cmp_seeds")

m = st.columns(4)
for j, (path, o) in enumerate(zip(paths, outcomes)):
    m[2 * j].metric(f"{label(path)}: accuracy", f"{o.top1:.2f}%")
    m[2 * j + 1].metric(f"{label(path)}: average cost", f"{o.avg_macs / 1e6:.2f} M MACs")

c1, c2 = st.columns(2)
fig = go.Figure()
for path, o, color in zip(paths, outcomes, colors):
    counts = o.counts.numpy()
    fig.add_bar(name=label(path), x=[f"exit {k + 1}" for k in range(len(counts))], y=counts, marker_color=color)
fig.update_layout(barmode="group", title=f"Exits taken at threshold {threshold:.2f}")
c1.plotly_chart(plot_layout(fig, "exit taken", "test samples", 320), key="cmp_exits")
fig = go.Figure()
for path, r, color in zip(paths, reaches, colors):
    names = [f"exit {k + 1}" for k in range(len(r["reach"]))]
    fig.add_scatter(x=names, y=r["accuracy_all"], name=f"{label(path)}: all samples", line=dict(color=color, dash="dot"))
    fig.add_scatter(x=names, y=r["accuracy_reached"], name=f"{label(path)}: samples that reach it", line=dict(color=color))
fig.update_layout(title="Train/test mismatch per head")
c2.plotly_chart(plot_layout(fig, "exit", "top-1 accuracy (%)", 320), key="cmp_mismatch")

st.subheader("Disagreements")
a, b = outcomes
a_ok, b_ok = a.correct.numpy(), b.correct.numpy()
a_pred, b_pred = a.final_prediction.numpy(), b.final_prediction.numpy()
differ = a_pred != b_pred
d1, d2, d3 = st.columns(3)
d1.metric("Different predictions", int(differ.sum()))
d2.metric(f"Only {label(path_a)} right", int((a_ok & ~b_ok).sum()))
d3.metric(f"Only {label(path_b)} right", int((~a_ok & b_ok).sum()))
classes = models[0].classes
kinds = {"All disagreements": differ, f"Only {label(path_a)} right": a_ok & ~b_ok,
         f"Only {label(path_b)} right": ~a_ok & b_ok, "Both wrong, differently": differ & ~a_ok & ~b_ok}
f1, f2 = st.columns(2)
kind = f1.radio("Show", list(kinds), horizontal=True, key="gallery_kind")
wanted = f2.multiselect("True class", classes, default=[], key="gallery_classes", placeholder="every class")
mask = kinds[kind] & (np.isin(labels, [classes.index(c) for c in wanted]) if wanted else True)
members = np.flatnonzero(mask)
# Interleave the classes (the split is sorted by class): each page shows a mix, not one class at a time.
rank_in_class = np.zeros(len(members), dtype=int)
for c in np.unique(labels[members]):
    rank_in_class[labels[members] == c] = np.arange((labels[members] == c).sum())
members = members[np.lexsort((labels[members], rank_in_class))]
pages = max(1, -(-len(members) // PER_PAGE))
page_no = st.number_input(f"Page (of {pages}; {len(members)} images)", 1, pages, 1, key="gallery_page") if pages > 1 else 1
shown = members[(page_no - 1) * PER_PAGE: page_no * PER_PAGE]
if len(shown) == 0:
    st.write("No test image matches.")
else:
    images, why_not = dataset_images(path_a)
    if images is None:
        st.caption(why_not)
    cols = st.columns(6)
    for slot, i in enumerate(shown):
        col = cols[slot % 6]
        text = (f"#{i}, true **{classes[labels[i]]}**  \nA: {classes[a_pred[i]]} {'✓' if a_ok[i] else '✗'} at exit {a.exits[i] + 1}"
                f"  \nB: {classes[b_pred[i]]} {'✓' if b_ok[i] else '✗'} at exit {b.exits[i] + 1}")
        if images is not None:
            col.image(to_display(images[i]), width=90, clamp=True)
        col.markdown(text)

same_images_section()
