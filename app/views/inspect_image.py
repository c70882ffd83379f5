"""Inspect an image: which exit it takes, what each head added at every exit, and where the model looked."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

from boostnet_core.explain import attribute
from boostnet_core.inference import at_threshold, preprocess_image, rescore, trace
from charts import (attribution_svg, contribution_panels, fmt_macs, score_bars_svg, stat_block, svg_block,
                    top_classes_table)
from images import UPLOAD_TYPES, dataset_images, decode_uploads, picture_digest, thumbnail_png
from session import (CRITERION_NAMES, UPLOADS, ExitMode, bind, exit_setting_controls, pick_loaded_model, remembered_uploads,
                     set_remembered, thresholds_for)
from store import model, predictions, scored_or_error, weights_mtime

METHOD_NAMES = {"grad_cam": "Grad-CAM", "integrated_gradients": "Integrated Gradients", "saliency": "Saliency"}

st.title("Inspect an image")
path, net = pick_loaded_model()

cache = predictions(path)
setting = exit_setting_controls(lowest_share=int(np.ceil(100 * net.macs[0] / net.macs[-1])), budget_ok="val" in cache,
                                n_exits=net.num_exits)
criterion, _ = scored_or_error(path, setting.criterion)
if criterion is None:
    st.stop()
thresholds = thresholds_for(path, net.num_exits, setting)
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
def contribution_figure(model_path: str, image_key: str, _t: dict) -> str:
    return contribution_panels(_t, model(model_path))


@st.cache_resource(show_spinner=False, max_entries=256)
def attribution_chart(model_path: str, image_key: str, _pixels: np.ndarray, exit_index: int, head: int | None,
                      method: str) -> str:
    """The map of the class that exit `exit_index` predicts, over the picture as the model sees it (SVG)."""
    m, x = model(model_path), image_input(model_path, image_key, _pixels)
    target = int(image_trace(model_path, image_key, _pixels)["exit_logits"][exit_index].argmax())
    heat = attribute(m, x, exit_index, target, method, head=head, steps=32)
    what = f"F_{exit_index + 1}" if head is None else f"head {head + 1}'s contribution to F_{exit_index + 1}"
    return attribution_svg(model_view(x, m.meta), heat, f"{METHOD_NAMES[method]} of {what} for class '{m.classes[target]}'")


def model_view(x: torch.Tensor, meta: dict) -> np.ndarray:
    """A model input [C, H, W] back to RGB uint8 (undoing the normalisation), for the attribution overlay."""
    mean = np.array(meta["mean"])[:, None, None]
    std = np.array(meta["std"])[:, None, None]
    img = np.clip((x.numpy() * std + mean) * 255, 0, 255).astype(np.uint8)
    return np.repeat(img, 3, 0).transpose(1, 2, 0) if img.shape[0] == 1 else img.transpose(1, 2, 0)


def default_picks(indices: np.ndarray, labels: np.ndarray | None) -> list[int]:
    """Three test images of different classes (the split is sorted by class, so the first three are one class)."""
    if labels is None:
        return [int(i) for i in indices[:3]]
    present = np.unique(labels[indices])
    wanted = [present[j * len(present) // 3] for j in range(min(3, len(present)))]
    return [int(indices[labels[indices] == c][0]) for c in wanted]


def add_pick(key: str, index: int) -> None:
    """Add test image `index` to those shown, or say why not (already shown, or eight shown)."""
    picks = st.session_state.get(key, [])
    if index in picks:
        st.session_state["pick_note"] = f"Test image #{index} is already shown."
    elif len(picks) >= 8:
        st.session_state["pick_note"] = "Eight test images are shown at most; remove one to add another."
    else:
        set_remembered(key, picks + [index])


def add_from_thumbnails(key: str, pills_key: str) -> None:
    """The thumbnails' buttons' callback: add the image clicked; then clear the choice for the next click."""
    index = st.session_state.get(pills_key)
    st.session_state[pills_key] = None
    if index is not None:
        add_pick(key, int(index))


def add_by_number(key: str, number_key: str, images, last: int) -> None:
    """The number input's callback: add that test image if it is here, else say why not; then clear the input.
    (The range is checked here, not by the input's bounds, which would only mark the box red without a word.)"""
    number = st.session_state.get(number_key)
    st.session_state[number_key] = None
    if number is None:
        return
    if not 0 <= number <= last:
        st.session_state["pick_note"] = f"There is no test image #{int(number)}: the numbers run from 0 to {last}."
        return
    if not images.has(np.array([int(number)]))[0]:
        st.session_state["pick_note"] = (f"Test image #{int(number)} is not among the {len(images.indices)} shipped "
                                         "with the app; pick one from the thumbnails below.")
        return
    add_pick(key, int(number))


def show_images(items: list[tuple[str, np.ndarray]], section: str, open_first: bool) -> None:
    """Every image of `items` (name, pixels): the exit it takes, its scores, what each head adds and, behind a toggle
    (on for the first image when `open_first`), where the model looked. `section` keeps widget keys apart between
    the uploads and the test images."""
    seen: dict[str, int] = {}
    weights_version = weights_mtime(path)
    for position, (name, pixels) in enumerate(items):
        digest = picture_digest(pixels)
        image_key = f"{digest}@{weights_version}"  # caches below: per image and per version of the weights
        # Widget keys follow the image's content (two uploads may share a name; the same picture twice gets _2), so
        # adding an image leaves the others' elements in place for the browser.
        seen[digest] = seen.get(digest, 0) + 1
        ident = f"{section}{digest[:12]}_{seen[digest]}"
        st.divider()
        t = at_threshold(rescore(image_trace(path, image_key, pixels), criterion), net, thresholds)  # the model runs once per image
        k = t["exit_index"]
        left, right = st.columns([1, 3])
        with left:
            st.image(thumbnail_png(digest, pixels), caption=f"{name} ({pixels.shape[1]}x{pixels.shape[0]})",
                     width="content", output_format="PNG")   # 160 px, or the column's width when narrower
            # The figures as one HTML block rather than three st.metric and two captions: see charts.stat_block.
            st.markdown(stat_block([
                ("Exit taken", f"{k + 1} of {net.num_exits}",
                 f"score {float(t['scores'][k]):.3f} at exit {k + 1} ({CRITERION_NAMES[criterion.name].split(' (')[0]})"),
                ("Prediction", t["label"], ""),
                ("MACs spent", fmt_macs(t["macs"]),
                 f"{t['cost_ratio']:.0%} of the full network's MACs ({fmt_macs(t['full_macs'])}); measured: all exits took "
                 f"{1000 * t.get('seconds', 0):.1f} ms on {t.get('engine', 'eager')} (time is not MACs)")],
                helps={"Exit taken": "1-based; the last exit takes every sample that reaches it"}), unsafe_allow_html=True)
        with right:
            top = 1.0 if np.isfinite(criterion.score_range[1]) else float(max(net.num_exits - 1, 1))
            short = CRITERION_NAMES[criterion.name].split(" (")[0]
            scores = score_bars_svg(exit_names, t["scores"].numpy(), k, float(thresholds[0])
                                    if setting.mode is ExitMode.THRESHOLD else np.asarray(thresholds), top,
                                    f"score of F_k: {short}", label=f"{name}: the score of every exit ({short})")
            # The chart and the table of the top classes in one element (far lighter for the browser than a data
            # grid, redrawn on every threshold move).
            st.markdown(svg_block(scores) + top_classes_table(exit_names, t["top_k"]), unsafe_allow_html=True)

        st.markdown("**What each head adds at every exit** (w = "
                    f"{net.reweight:g}{': joint training, each exit is its own head' if net.reweight == 0 else ''})\n\n"
                    + svg_block(contribution_figure(path, image_key, t)), unsafe_allow_html=True)

        if not st.toggle("Where the model looked (attribution)", value=open_first and position == 0,
                         key=f"show_attr_{ident}"):
            continue
        with st.container(border=True):
            c1, c2, c3 = st.columns(3)
            method = c1.radio("Method", list(METHOD_NAMES), format_func=METHOD_NAMES.get, horizontal=True, key=f"method_{ident}")
            if f"exit_{ident}" not in st.session_state:  # first shown: the exit the image took; then left alone
                st.session_state[f"exit_{ident}"] = k
            chosen = c2.selectbox("Exit", list(range(net.num_exits)), format_func=lambda i: exit_names[i], key=f"exit_{ident}",
                                  help="First the exit taken; then independent of the threshold, so moving it never "
                                       "recomputes a map.")
            head = c3.selectbox("Of", [None] + list(range(chosen + 1)), key=f"of_{ident}_{chosen}",
                                format_func=lambda h, c=chosen: f"F_{c + 1}, the exit's logit" if h is None
                                else f"head {h + 1}'s contribution to exit {c + 1}")
            if head is not None and head < chosen and net.reweight == 0:
                st.info(f"This is a joint model (w = 0): head {head + 1} adds nothing to exit {chosen + 1}, so there is "
                        "nothing to attribute. Choose the exit's own head or the exit logit.")
            else:
                with st.spinner("Computing the attribution (once per image, exit, head and method) ..."):
                    chart = attribution_chart(path, image_key, pixels, chosen, head, method)
                st.markdown(svg_block(chart), unsafe_allow_html=True)


# Uploads first, in a fragment: an upload reruns only the uploader and the uploaded images, so the test images
# below are neither recomputed nor redrawn (bench/app_browser_latency.py: an upload until its exit is shown).
@st.fragment
def uploaded_images() -> None:
    uploads = remembered_uploads("inspect_uploads", "Upload images (JPEG, PNG, WebP, BMP, GIF, TIFF; up to 20 MB each)",
                                 UPLOAD_TYPES)
    items, errors, notes = decode_uploads(uploads, net.meta["input_size"])
    for sentence in errors:
        st.error(sentence)
    for sentence in notes:
        st.info(sentence)
    show_images(items, "u", open_first=True)


uploaded_images()
have_uploads = bool(st.session_state.get(UPLOADS))   # as of this full run (an upload alone reruns only the fragment)

images, why_not = dataset_images(path)
if images is not None:
    test_labels = cache["test"].labels.numpy() if "test" in cache else None
    where = f"from {images.note}" if images.is_sample else "from the model's test split"
    # Open on the session's first visit if it has no uploads, then the same for the whole session (also after the
    # uploads are cleared): an `expanded` that followed the uploads shut the picker at the next full rerun after an
    # upload, since an upload reruns only the fragment above. The user's own clicks still open and close it.
    picker_open = st.session_state.setdefault("picker_open", not have_uploads)
    with st.expander(f"Or pick test images {where}", expanded=picker_open):
        pick_key = f"samples_{path}"
        describe = (lambda i: f"#{i} {classes[test_labels[i]]}") if test_labels is not None else (lambda i: f"#{i}")
        if f"saved_{pick_key}" in st.session_state:   # kept from a visit when the whole split was here
            st.session_state[f"saved_{pick_key}"] = [i for i in st.session_state[f"saved_{pick_key}"] if images.has(np.array([i]))[0]]
        # The picker lists only the images picked (remove one with its x); images are added by number or from a
        # class's thumbnails. Listing all 10,000 test images made the page resend them at every rerun: a threshold
        # step took 0.5 s in the browser instead of 0.22 s (bench/app_browser_latency.py).
        kept = bind(pick_key, [] if have_uploads else default_picks(images.indices, test_labels))
        picks = st.multiselect("Test images shown (number in the test split, true class; remove one with its ×)",
                               list(st.session_state[pick_key]), format_func=describe, max_selections=8, **kept)
        number_key = f"number_{path}"
        last = len(test_labels) - 1 if test_labels is not None else int(images.indices[-1])
        st.number_input(f"Add a test image by its number (0 to {last}"
                        f"{f'; {len(images.indices)} are here' if images.is_sample else ''})", value=None, step=1,
                        key=number_key, on_change=add_by_number, args=(pick_key, number_key, images, last),
                        placeholder="e.g. 3200")
        if st.session_state.get("pick_note"):
            st.info(st.session_state.pop("pick_note"))
        if test_labels is not None:  # browse one class as thumbnails; a click adds the image to the picks
            browse_key = f"browse_{path}"
            chosen_class = st.selectbox("Browse a class", classes,
                                        **bind(browse_key, classes[int(test_labels[picks[0]])] if picks else classes[0]))
            members = images.indices[test_labels[images.indices] == classes.index(chosen_class)]
            start = 0
            if len(members) > 8:
                start = 8 * (st.number_input(f"Page (of {-(-len(members) // 8)})", 1, -(-len(members) // 8), 1,
                                             key=f"browse_page_{path}") - 1)
            # The page's eight thumbnails as one image element and their numbers as one row of buttons (two
            # elements, not sixteen in eight columns: every element is redrawn at every rerun).
            shown = [int(i) for i in members[start:start + 8]]
            thumbs = [images.image(i) for i in shown]
            st.image([thumbnail_png(picture_digest(p), p, 64) for p in thumbs], caption=[f"#{i}" for i in shown],
                     width=64, output_format="PNG")
            pills_key = f"add_{path}"
            st.pills("Add an image to those shown", shown, format_func=lambda i: f"#{i}", key=pills_key,
                     on_change=add_from_thumbnails, args=(pick_key, pills_key))
    show_images([(f"test #{i}" + (f" (true: {classes[test_labels[i]]})" if test_labels is not None else ""),
                  images.image(i)) for i in picks], "t", open_first=not have_uploads)
elif not have_uploads:
    st.info(why_not + " Upload an image above.")
