"""Inspect an image: which exit it takes, what each head added, and where the model looked."""
from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from common import EXIT_COLORS, dataset_images, fmt_macs, load_or_error, pick_model, plot_layout, predictions, to_display
from boostnet_core.data import DataError, open_image
from boostnet_core.explain import attribute, overlay
from boostnet_core.inference import preprocess_image, trace

MAX_UPLOAD_BYTES = 20 * 1024 * 1024

st.title("Inspect an image")
path = pick_model()
model = load_or_error(path) if path else None
if model is None:
    st.stop()

threshold = st.sidebar.slider("Confidence threshold", 0.0, 1.0, st.session_state.get("threshold", 0.9), 0.01,
                              key="inspect_threshold", help="A sample leaves at the first exit whose confidence (max softmax of F_k) reaches this.")
st.session_state["threshold"] = threshold
classes = model.classes


@st.cache_data(show_spinner=False, max_entries=64)
def decode(data: bytes, name: str) -> np.ndarray:
    """Bytes -> RGB/L array (first frame, EXIF applied) or DataError."""
    if not data:
        raise DataError(f"{name} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DataError(f"{name} is over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit.")
    img = open_image(io.BytesIO(data))
    img = img.convert("RGBA" if img.mode in ("RGBA", "LA", "P", "PA") else ("L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"))
    return np.asarray(img)


def input_tensor(pixels: np.ndarray) -> torch.Tensor:
    return preprocess_image(Image.fromarray(pixels), model.meta)


uploads = st.file_uploader("Upload images (JPEG, PNG, WebP, BMP, GIF)", type=["jpg", "jpeg", "png", "webp", "bmp", "gif"],
                           accept_multiple_files=True)
items: list[tuple[str, np.ndarray]] = []
for f in uploads or []:
    try:
        items.append((f.name, decode(f.getvalue(), f.name)))
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

exit_names = [f"exit {k + 1}" for k in range(model.num_exits)]
for name, pixels in items:
    st.divider()
    x = input_tensor(pixels)
    t = trace(model, x, threshold=threshold)
    k = t["exit_index"]
    left, right = st.columns([1, 3])
    with left:
        st.image(pixels, caption=name, width=160, clamp=True)
        st.metric("Exit taken", f"{k + 1} of {model.num_exits}", help="1-based; the last exit takes every sample that reaches it")
        st.metric("Prediction", t["label"])
        st.caption(f"confidence {float(t['confidence'][k]):.3f} at exit {k + 1}")
        st.metric("MACs spent", fmt_macs(t["macs"]))
        st.caption(f"{t['cost_ratio']:.0%} of the full network's MACs ({fmt_macs(t['full_macs'])})")
    with right:
        conf = t["confidence"].numpy()
        fig = go.Figure(go.Bar(x=exit_names, y=conf, marker_color=[EXIT_COLORS[1] if i == k else EXIT_COLORS[0] for i in range(len(conf))],
                               text=[f"{c:.2f}" for c in conf], textposition="outside", hovertemplate="%{x}: confidence %{y:.3f}<extra></extra>"))
        fig.add_hline(y=threshold, line_dash="dash", line_color="#E45756", annotation_text=f"threshold {threshold:.2f}")
        fig.update_yaxes(range=[0, 1.1])
        st.plotly_chart(plot_layout(fig, "exit", "confidence of F_k (max softmax)", 260), key=f"conf_{name}")
        rows = {e: [f"{c} ({p:.2f})" for c, p in t["top_k"][i][:3]] for i, e in enumerate(exit_names)}
        st.dataframe({"rank": ["1st", "2nd", "3rd"], **rows}, hide_index=True)

    # Keyed by the exit taken: when the threshold moves the exit, the explanation follows it.
    chosen = st.selectbox(f"Exit to explain (taken: exit {k + 1})", range(model.num_exits), index=k,
                          format_func=lambda i: exit_names[i], key=f"exit_{name}_{k}")
    contrib = t["contributions"][chosen].numpy()            # [heads, C]
    exit_logits = t["exit_logits"][chosen].numpy()
    top = np.argsort(-exit_logits)[:3]
    c1, c2 = st.columns(2)
    with c1:
        fig = go.Figure()
        for i in range(contrib.shape[0]):
            weight = model.reweight ** (chosen - i)
            fig.add_bar(name=f"head {i + 1} (x{weight:g})", x=[classes[c] for c in top], y=contrib[i, top], marker_color=EXIT_COLORS[i % 10],
                        hovertemplate=f"head {i + 1}: " + "%{y:.3f}<extra></extra>")
        fig.add_scatter(name=f"F_{chosen + 1} (sum)", x=[classes[c] for c in top], y=exit_logits[top], mode="markers+text",
                        marker=dict(symbol="diamond", size=12, color="black", line=dict(color="white", width=1)),
                        text=[f"{v:.2f}" for v in exit_logits[top]], textposition="top center")
        fig.update_layout(barmode="relative", title=f"What each head adds to exit {chosen + 1}: w^(n-i) f_i, summing to F")
        st.plotly_chart(plot_layout(fig, "class (top 3 of the exit)", "logit contribution", 340), key=f"contrib_{name}")
    with c2:
        method = st.radio("Attribution", ["grad_cam", "integrated_gradients", "saliency"], horizontal=True,
                          format_func={"grad_cam": "Grad-CAM", "integrated_gradients": "Integrated Gradients", "saliency": "Saliency"}.get,
                          key=f"method_{name}")
        target_head = st.selectbox("Of", [None] + list(range(chosen + 1)), key=f"head_{name}",
                                   format_func=lambda h: f"exit {chosen + 1} logit F" if h is None else f"head {h + 1}'s contribution")
        target = int(top[0])
        with st.spinner("Computing attribution ..."):
            heat = attribute(model, x, chosen, target, method, head=target_head, steps=32)
        shown = pixels if pixels.ndim == 3 else np.stack([pixels] * 3, -1)
        if shown.shape[-1] == 4:
            shown = shown[..., :3]
        st.image(overlay(shown, heat), caption=f"{method.replace('_', ' ')} for class '{classes[target]}'", width=260)
