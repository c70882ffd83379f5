"""Inspect an image: which exit it takes, what each head added at every exit, and where the model looked."""
from __future__ import annotations

import hashlib

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from common import (EXIT_COLORS, LIGHT, UPLOAD_TYPES, contribution_panels, dataset_images, decode_upload, fmt_macs,
                    load_or_error, model, pick_model, plot_layout, predictions, thumbnail, to_display, weights_mtime)
from boostnet_core.data import DataError
from boostnet_core.explain import attribute
from boostnet_core.inference import at_threshold, preprocess_image, trace

METHOD_NAMES = {"grad_cam": "Grad-CAM", "integrated_gradients": "Integrated Gradients", "saliency": "Saliency"}

st.title("Inspect an image")
path = pick_model()
net = load_or_error(path) if path else None
if net is None:
    st.stop()

threshold = st.sidebar.slider("Confidence threshold", 0.0, 1.0, st.session_state.get("threshold", 0.9), 0.01,
                              key="inspect_threshold", help="A sample leaves at the first exit whose confidence (max softmax of F_k) reaches this.")
st.session_state["threshold"] = threshold
classes = net.classes
exit_names = [f"exit {k + 1}" for k in range(net.num_exits)]


# Everything about one image is computed once per image and version of the weights (`image_key`) and shared:
# the model's input, its trace (every head and exit; thresholds are applied afterwards), the contribution panels
# and each attribution chart. Moving the threshold rebuilds none of them.


@st.cache_resource(show_spinner=False, max_entries=256)
def image_input(model_path: str, image_key: str, _pixels: np.ndarray) -> torch.Tensor:
    return preprocess_image(Image.fromarray(_pixels), model(model_path).meta)


@st.cache_resource(show_spinner=False, max_entries=256)
def image_trace(model_path: str, image_key: str, _pixels: np.ndarray) -> dict:
    return trace(model(model_path), image_input(model_path, image_key, _pixels), threshold=1.0)


@st.cache_resource(show_spinner=False, max_entries=256)
def contribution_figure(model_path: str, image_key: str, _t: dict) -> go.Figure:
    return contribution_panels(_t, model(model_path))


@st.cache_resource(show_spinner=False, max_entries=256)
def attribution_chart(model_path: str, image_key: str, _pixels: np.ndarray, exit_index: int, head: int | None,
                      method: str) -> go.Figure:
    """The map of the class that exit `exit_index` predicts, over the picture as the model sees it."""
    m, x = model(model_path), image_input(model_path, image_key, _pixels)
    target = int(image_trace(model_path, image_key, _pixels)["exit_logits"][exit_index].argmax())
    heat = attribute(m, x, exit_index, target, method, head=head, steps=32)
    what = f"F_{exit_index + 1}" if head is None else f"head {head + 1}'s contribution to F_{exit_index + 1}"
    return attribution_figure(model_view(x, m.meta), heat, f"{METHOD_NAMES[method]} of {what} for class '{m.classes[target]}'")


def model_view(x: torch.Tensor, meta: dict) -> np.ndarray:
    """A model input [C, H, W] back to RGB uint8 (undoing the normalisation), for the attribution overlay."""
    mean = np.array(meta["mean"])[:, None, None]
    std = np.array(meta["std"])[:, None, None]
    img = np.clip((x.numpy() * std + mean) * 255, 0, 255).astype(np.uint8)
    return np.repeat(img, 3, 0).transpose(1, 2, 0) if img.shape[0] == 1 else img.transpose(1, 2, 0)


def attribution_figure(view: np.ndarray, heat: np.ndarray, title: str) -> go.Figure:
    """The model's view of the image with the map over it and a colour scale (1 = the 99th percentile)."""
    scale = float(np.percentile(heat, 99)) or 1.0
    fig = go.Figure(go.Image(z=view, hoverinfo="skip"))
    fig.add_heatmap(z=np.clip(heat / scale, 0, 1), colorscale="Inferno", opacity=0.55, zmin=0, zmax=1,
                    colorbar=dict(title="attribution", tickvals=[0, 0.5, 1], ticktext=["0", "0.5", "≥ p99"], len=0.9),
                    hovertemplate="%{z:.2f}<extra></extra>")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(title=dict(text=title, font=dict(size=12)), height=300, margin=dict(l=0, r=0, t=40, b=0),
                      paper_bgcolor="rgba(0,0,0,0)")
    return fig


uploads = st.file_uploader("Upload images (JPEG, PNG, WebP, BMP, GIF, TIFF)", type=UPLOAD_TYPES, accept_multiple_files=True)
items: list[tuple[str, np.ndarray]] = []
for f in uploads or []:
    try:
        items.append((f.name, decode_upload(f.getvalue(), f.name)))
    except DataError as e:
        st.error(str(e))

images, why_not = dataset_images(path)
if images is not None:
    with st.expander("Or pick test images from the model's data set", expanded=not items):
        picks = st.multiselect("Test image numbers", list(range(len(images))), default=[] if items else [0, 1, 2],
                               max_selections=8, key=f"samples_{path}")
        test_cache = predictions(path).get("test")
        true_labels = None if test_cache is None else test_cache.labels.numpy()
        items += [(f"test #{i}" + (f" (true: {classes[true_labels[i]]})" if true_labels is not None else ""), to_display(images[i]))
                  for i in picks]
elif not items:
    st.info(why_not + " Upload an image above.")

if not items:
    st.stop()

seen: dict[str, int] = {}
weights_version = weights_mtime(path)
for position, (name, pixels) in enumerate(items):
    digest = hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()
    image_key = f"{digest}@{weights_version}"  # caches below: per image and per version of the weights
    # Widget keys follow the image's content (two uploads may share a name; the same picture twice gets _2), so
    # adding an image leaves the others' elements in place for the browser.
    seen[digest] = seen.get(digest, 0) + 1
    ident = f"{digest[:12]}_{seen[digest]}"
    st.divider()
    t = at_threshold(image_trace(path, image_key, pixels), net, threshold)  # the model runs once per image
    k = t["exit_index"]
    left, right = st.columns([1, 3])
    with left:
        st.image(thumbnail(pixels), caption=f"{name} ({pixels.shape[1]}x{pixels.shape[0]})", width=160)
        st.metric("Exit taken", f"{k + 1} of {net.num_exits}", help="1-based; the last exit takes every sample that reaches it")
        st.metric("Prediction", t["label"])
        st.caption(f"confidence {float(t['confidence'][k]):.3f} at exit {k + 1}")
        st.metric("MACs spent", fmt_macs(t["macs"]))
        st.caption(f"{t['cost_ratio']:.0%} of the full network's MACs ({fmt_macs(t['full_macs'])})")
    with right:
        conf = t["confidence"].numpy()
        fig = go.Figure(go.Bar(x=exit_names, y=conf, marker_color=[EXIT_COLORS[1] if i == k else EXIT_COLORS[0] for i in range(len(conf))],
                               text=[f"{c:.2f}" for c in conf], textposition="outside", hovertemplate="%{x}: confidence %{y:.3f}<extra></extra>"))
        fig.add_hline(y=threshold, line_dash="dash", line_color="#E45756", annotation_text=f"threshold {threshold:.2f}")
        fig.update_yaxes(range=[0, 1.12])
        st.plotly_chart(plot_layout(fig, "exit", "confidence of F_k (max softmax)", 240), key=f"conf_{ident}", config=LIGHT)
        # A markdown table: far lighter for the browser than a data grid, redrawn on every threshold move.
        st.markdown("| rank | " + " | ".join(exit_names) + " |\n|---|" + "---|" * len(exit_names) + "\n" + "\n".join(
            f"| {rank} | " + " | ".join(f"{t['top_k'][i][r][0]} ({t['top_k'][i][r][1]:.2f})" for i in range(len(exit_names))) + " |"
            for r, rank in enumerate(["1st", "2nd", "3rd"][:len(t["top_k"][0])])))

    st.markdown("**What each head adds at every exit** (w = "
                f"{net.reweight:g}{': joint training, each exit is its own head' if net.reweight == 0 else ''})")
    st.plotly_chart(contribution_figure(path, image_key, t), key=f"contrib_{ident}")

    if not st.toggle("Where the model looked (attribution)", value=position == 0, key=f"show_attr_{ident}"):
        continue
    with st.container(border=True):
        c1, c2, c3 = st.columns(3)
        method = c1.radio("Method", list(METHOD_NAMES), format_func=METHOD_NAMES.get, horizontal=True, key=f"method_{ident}")
        chosen = c2.selectbox("Exit", range(net.num_exits), index=net.num_exits - 1, format_func=lambda i: exit_names[i],
                              key=f"exit_{ident}", help="Independent of the threshold, so moving it never recomputes a map.")
        head = c3.selectbox("Of", [None] + list(range(chosen + 1)), key=f"of_{ident}_{chosen}",
                            format_func=lambda h, c=chosen: f"F_{c + 1}, the exit's logit" if h is None
                            else f"head {h + 1}'s contribution to exit {c + 1}")
        if head is not None and head < chosen and net.reweight == 0:
            st.info(f"This is a joint model (w = 0): head {head + 1} adds nothing to exit {chosen + 1}, so there is "
                    "nothing to attribute. Choose the exit's own head or the exit logit.")
        else:
            with st.spinner("Computing the attribution (once per image, exit, head and method) ..."):
                figure = attribution_chart(path, image_key, pixels, chosen, head, method)
            st.plotly_chart(figure, key=f"attr_{ident}")
