"""Compare two models on the same cached test split and on the same images (for example BoostNet against joint)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from boostnet_core.errors import UserError
from boostnet_core.criteria import get_criterion
from boostnet_core.inference import at_threshold, preprocess_image, rescore, trace
from boostnet_core.thresholds import outcome_at, reach_per_exit
import projector
from charts import (contribution_panels, contribution_range, fmt_macs, fmt_macs_short, fmt_pct, model_color, plot_layout,
                    svg_block, threshold_line)
from images import dataset_images, decode_uploads, thumbnail
from session import ExitMode, bind, exit_setting_controls, remembered_uploads, set_remembered, thresholds_for
from store import (available_checkpoints, data_group, data_name, label, load_or_error, metadata, predictions,
                   scored_or_error, seed_siblings_of)

PER_PAGE = 12


@st.cache_data(show_spinner="Comparing the seeds ...")
def seed_comparison(a_folders: tuple, b_folders: tuple) -> dict:
    """A − B per exit over the seeds both have: the study report's t-intervals (its per-seed tests are left out)."""
    from boostnet_core.study.compare import compare
    from boostnet_core.study.runs import load_runs
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
first_joint = next((p for p in options if p != first and data_group(p) == data_group(first)
                    and metadata(p).get("method") == "joint"), options[1])
for key, default in (("compare_a", first), ("compare_b", first_joint)):
    if st.session_state.get(f"saved_{key}", default) not in options:
        set_remembered(key, default)
path_a = c1.selectbox("Model A", options, format_func=label, **bind("compare_a", first))
path_b = c2.selectbox("Model B", options, format_func=label, **bind("compare_b", first_joint))
paths = (path_a, path_b)
models = [load_or_error(p) for p in paths]
if any(m is None for m in models):
    st.stop()
setting = exit_setting_controls(lowest_share=max(int(np.ceil(100 * m.macs[0] / m.macs[-1])) for m in models),
                                budget_ok=all("val" in predictions(p) for p in paths),
                                n_exits=max(m.num_exits for m in models))
prepared = [scored_or_error(p, setting.criterion) if "test" in predictions(p) else (None, None) for p in paths]
if any(c is None and "test" in predictions(p) for (c, _), p in zip(prepared, paths)):
    st.stop()   # the criterion cannot score a model's cache: said above in one sentence
criteria = [c or get_criterion(setting.criterion if setting.criterion != "learned" else None) for c, _ in prepared]
thresholds = [thresholds_for(p, m.num_exits, setting) for p, m in zip(paths, models)]
st.caption(f"Both models at the exit setting the pages share ({setting.describe()}"
           + (", each model's thresholds fitted on its own validation split" if setting.mode is ExitMode.BUDGET else "")
           + "); change it in the sidebar here or on any other page.")
colors = [model_color(p) for p in paths]
if path_a == path_b:
    colors[1] = "#7F7F7F"
DASHES, SYMBOLS = ("solid", "dash"), ("circle", "diamond")   # B drawn dashed with other markers: never hidden under A


def same_images_section():
    st.subheader("The same images through both models")
    # Every file type is taken: a PDF gets the app's sentence rather than the uploader's red mark alone.
    uploads = remembered_uploads("compare_uploads", "Upload images to compare (JPEG, PNG, WebP, BMP, GIF, TIFF; up to 20 MB each)", None)
    items, errors, notes = decode_uploads(uploads, min(m.meta["input_size"] for m in models))
    for sentence in errors:
        st.error(sentence)
    for sentence in notes:
        st.info(sentence)
    for position, (name, pixels) in enumerate(items):
        try:
            traces = [at_threshold(rescore(trace(m, preprocess_image(Image.fromarray(pixels), m.meta), 1.0), c), m, t)
                      for m, t, c in zip(models, thresholds, criteria)]
        except UserError as e:
            st.error(f"{name}: {e}")
            continue
        left, right = st.columns([1, 3])
        left.image(thumbnail(pixels, 120), caption=name, width=120)
        for path, t in zip(paths, traces):
            left.metric(label(path), t["label"])
            left.caption(f"exit {t['exit_index'] + 1}, confidence {float(t['confidence'][t['exit_index']]):.3f}, "
                         f"{fmt_macs(t['macs'])}")
        fig = go.Figure()
        for j, (path, t, color) in enumerate(zip(paths, traces, colors)):
            conf = t["scores"].numpy()
            fig.add_scatter(x=[f"exit {k + 1}" for k in range(len(conf))], y=conf, mode="lines+markers", name=label(path),
                            line=dict(color=color, dash=DASHES[j]),
                            marker=dict(symbol=SYMBOLS[j], size=[16 if k == t["exit_index"] else 8 for k in range(len(conf))]))
        if setting.mode is ExitMode.THRESHOLD:
            threshold_line(fig, setting.threshold, f"threshold {setting.threshold:.2f}")
        if np.isfinite(criteria[0].score_range[1]):
            fig.update_yaxes(range=[0, 1.05])
        right.plotly_chart(plot_layout(fig, "exit (large marker: the exit taken)", f"score of F_k ({criteria[0].name})", 260),
                           key=f"cmp_conf_{position}")
        y_range = contribution_range(traces)   # both models on one scale
        for path, t, m in zip(paths, traces, models):
            right.markdown(f"**{label(path)}**: what each head adds at every exit (w = {m.reweight:g})")
            right.markdown(svg_block(contribution_panels(t, m, 240, y_range)), unsafe_allow_html=True)


if data_group(path_a) != data_group(path_b):
    st.info(f"{label(path_a)} was trained on {data_name(path_a)} and {label(path_b)} on {data_name(path_b)}: different "
            "data sets, so their test splits cannot be compared sample by sample. The images you upload below go "
            "through both models either way.")
    same_images_section()
    st.stop()
caches = [None if scored_splits is None else scored_splits["test"] for _, scored_splits in prepared]
if any(c is None for c in caches) or not np.array_equal(caches[0].labels.numpy(), caches[1].labels.numpy()):
    st.info("A sample-by-sample comparison needs both models evaluated on the same test split "
            "(`boostnet evaluate CHECKPOINT`); the images you upload below are compared either way.")
    same_images_section()
    st.stop()

labels = caches[0].labels.numpy()
outcomes = [outcome_at(c, t, m.macs, crit.score_range) for c, t, m, crit in zip(caches, thresholds, models, criteria)]
reaches = [{k: v.numpy() for k, v in reach_per_exit(c, o.exits).items()} for c, o in zip(caches, outcomes)]

st.markdown("**Anytime top-1 per exit** (every test sample to exit k; bars start at 0)")
fig = go.Figure()
for path, r, color in zip(paths, reaches, colors):
    acc = r["accuracy_all"]
    fig.add_bar(name=label(path), x=[f"exit {k + 1}" for k in range(len(acc))], y=acc, marker_color=color,
                text=[f"{a:.2f}" for a in acc], textposition="outside")
fig.update_layout(barmode="group")
fig.update_yaxes(range=[0, 110], tickvals=[0, 20, 40, 60, 80, 100])
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
        st.markdown(f"**{label(path_a)} − {label(path_b)}** over seeds {', '.join(map(str, result['seeds']))}: mean "
                    f"{m['difference']:+.2f} points [{m['low']:+.2f}, {m['high']:+.2f}], {m['verdict']}")
        st.plotly_chart(plot_layout(fig, "exit", "A − B, points (95% range)", 300, legend=False), key="cmp_seeds")
        st.caption("Each bar: where the true difference lies with 95% confidence, from the spread over the seeds "
                   "(a t-interval); a bar across 0 means the two are not distinguishable.")

st.markdown(f"**At the shared exit setting** (A: {label(path_a)}, B: {label(path_b)})")
# Short values with the unit in the label (st.metric cuts long ones), in a row that wraps on a narrow screen.
with projector.chart_row():
    for j, (path, o) in enumerate(zip(paths, outcomes)):
        which, width = "A" if j == 0 else "B", projector.figure_width(190)
        st.metric(f"{which}: accuracy (top-1)", fmt_pct(o.top1), help=label(path), width=width)
        st.metric(f"{which}: average cost (MACs)", fmt_macs_short(o.avg_macs), help=label(path), width=width)

fig = go.Figure()
for path, o, color in zip(paths, outcomes, colors):
    counts = o.counts.numpy()
    fig.add_bar(name=label(path), x=[f"exit {k + 1}" for k in range(len(counts))], y=counts, marker_color=color)
fig.update_layout(barmode="group")
exits_fig = plot_layout(fig, "exit taken", "test samples", 320, legend=2, title=f"Exits taken ({setting.describe()})")
fig = go.Figure()
for j, (path, r, color) in enumerate(zip(paths, reaches, colors)):
    names = [f"exit {k + 1}" for k in range(len(r["reach"]))]
    fig.add_scatter(x=names, y=r["accuracy_all"], name=f"{label(path)}: all samples", line=dict(color=color, dash="dot"),
                    marker=dict(symbol=SYMBOLS[j], size=8))
    fig.add_scatter(x=names, y=r["accuracy_reached"], name=f"{label(path)}: samples that reach it",
                    line=dict(color=color, dash="solid" if j == 0 else "dashdot"), marker=dict(symbol=SYMBOLS[j], size=8))
st.markdown("**Exits taken, and the train/test mismatch per head**: the accuracy of each head on all samples "
            "against the samples that reach it")
with projector.chart_row():   # side by side when there is room, else one per row
    st.plotly_chart(exits_fig, key="cmp_exits", width=projector.chart_width(440))
    st.plotly_chart(plot_layout(fig, "exit", "top-1 accuracy (%)", 320, legend=4, title="Train/test mismatch per head"),
                    key="cmp_mismatch", width=projector.chart_width(440))

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
images, why_not = dataset_images(path_a)
if images is not None and images.is_sample:
    members = members[images.has(members)]
    st.info(f"The full test split is not on this machine, so the gallery shows the disagreements among {images.note}.")
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
    if images is None:
        st.caption(why_not)
    cols = st.columns(6)
    for slot, i in enumerate(shown):
        col = cols[slot % 6]
        text = (f"#{i}, true **{classes[labels[i]]}**  \nA: {classes[a_pred[i]]} {'✓' if a_ok[i] else '✗'} at exit {a.exits[i] + 1}"
                f"  \nB: {classes[b_pred[i]]} {'✓' if b_ok[i] else '✗'} at exit {b.exits[i] + 1}")
        if images is not None:
            col.image(images.image(i), width=90, clamp=True)
        col.markdown(text)

same_images_section()
