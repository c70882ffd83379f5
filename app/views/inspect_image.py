"""Inspect an image: which exit it takes, what each head added at every exit, and where the model looked.

The page's first screen is the lesson: the threshold's step and play buttons, the network picture (the blocks the
chosen image ran, the exit it took) and one line per image (exit taken, prediction, MACs), so that a class watches
every image change exit as the threshold moves. Each image's detail follows, folded."""
from __future__ import annotations

from html import escape

import numpy as np
import streamlit as st
import torch
from PIL import Image

from boostnet_core.explain import attribute, has_evidence
from boostnet_core.inference import at_threshold, preprocess_image, rescore, trace
from charts import (TAKEN_COLOR, attribution_svg, contribution_panels, fmt_macs, fmt_macs_short, png_uri,
                    score_bars_svg, stat_block, svg_block, top_classes_table)
from images import dataset_images, decode_uploads, picture_digest, thumbnail_png
from network_svg import network_svg, picture_of
import player
from session import (CRITERION_NAMES, UPLOADS, ExitMode, bind, exit_setting, exit_setting_controls, pick_loaded_model,
                     remembered_uploads, set_remembered, thresholds_for)
from store import cache_problem, model, predictions, scored_or_error, weights_mtime

METHOD_NAMES = {"grad_cam": "Grad-CAM", "integrated_gradients": "Integrated Gradients", "saliency": "Saliency"}

st.title("Inspect an image")
path, net = pick_loaded_model()

cache = predictions(path)
if cache_problem(path):   # uploads still work; the test images and budgets need the cache
    st.warning(cache_problem(path))
setting = exit_setting_controls(lowest_share=int(np.ceil(100 * net.macs[0] / net.macs[-1])), budget_ok="val" in cache,
                                n_exits=net.num_exits)
criterion, _ = scored_or_error(path, setting.criterion)
if criterion is None:
    st.stop()
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
                      method: str) -> tuple[str | None, str | None]:
    """(SVG of the map of the class that exit `exit_index` predicts, over the picture as the model sees it, None), or
    (None, a sentence) when the map is all zero: Grad-CAM keeps positive evidence only, and a blank square with a
    0-to-0 scale would say nothing."""
    m, x = model(model_path), image_input(model_path, image_key, _pixels)
    target = int(image_trace(model_path, image_key, _pixels)["exit_logits"][exit_index].argmax())
    heat = attribute(m, x, exit_index, target, method, head=head, steps=32)
    what = f"F_{exit_index + 1}" if head is None else f"head {head + 1}'s contribution to F_{exit_index + 1}"
    if not has_evidence(heat):
        return None, (f"No positive evidence for class '{m.classes[target]}' in {what}: {METHOD_NAMES[method]} finds "
                      "nothing in the picture that raises it" + (" (Grad-CAM keeps positive evidence only; Integrated "
                      "Gradients shows both signs)." if method == "grad_cam" else "."))
    return attribution_svg(model_view(x, m.meta), heat,
                           f"{METHOD_NAMES[method]} of {what} for class '{m.classes[target]}'"), None


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


@st.cache_resource(show_spinner=False, max_entries=512)
def small_png(image_key: str, _pixels: np.ndarray, box: int) -> str:
    """A picture as a data URI of box x box pixels (scaled to fit, small ones in big pixels), for the strip's HTML."""
    from images import thumbnail
    return png_uri(thumbnail(_pixels, box))


def unusual(pixels: np.ndarray, x: torch.Tensor, meta: dict) -> str:
    """One sentence when a picture is far from the model's training data, else "". Two checks: how much it was shrunk
    (more than 8 times: the model sees 1/64 of the detail or less), and its brightness per channel at the input size
    against the training set's mean and standard deviation that the checkpoint records (meta mean/std): more than 1.5
    standard deviations away on average (a white page for MNIST's light-on-black digits, a night photo for CIFAR)."""
    size = meta["input_size"]
    h, w = pixels.shape[:2]
    if max(h, w) >= 8 * size:
        return (f"Far from the training data: a {w}x{h} picture shrunk to {size}x{size}, {max(h, w) // size} times "
                "smaller; the training images were taken at that size.")
    shift = float(x.mean(dim=(1, 2)).abs().mean())   # per-channel mean in training standard deviations
    if shift > 1.5:
        brighter = float(x.mean()) > 0
        return (f"Far from the training data: {'much brighter' if brighter else 'much darker'} than the training "
                f"images ({shift:.1f} standard deviations of their pixels"
                + ("; MNIST digits are light strokes on a black background)." if len(meta["mean"]) == 1 else ")."))
    return ""


def classes_sentence(rows_above: bool) -> str:
    grey = len(net.meta["mean"]) == 1
    size = net.meta["input_size"]
    return (f"This model knows {len(classes)} classes: {', '.join(classes)}. It sees every image at {size}x{size} "
            f"pixels{', in grey' if grey else ''}{', as in the middle picture of each row above' if rows_above else ''}, "
            "and names one of these classes whatever the picture shows.")


# Said beside an image that reached the last exit below the threshold (it left there all the same).
LAST_TAKES_THE_REST = '<br><span style="font-size:0.75rem;opacity:0.7">below the threshold: the last exit takes the rest</span>'


def exit_glyph(n: int, taken: int) -> str:
    """The exits as small squares: those run in the computed colour, the one taken in TAKEN_COLOR, the rest grey."""
    cells = "".join(f'<span style="display:inline-block;width:0.8rem;height:0.8rem;margin-right:2px;border-radius:2px;'
                    f'background:{TAKEN_COLOR if k == taken else "#4C78A8" if k < taken else "#C4C9D0"}"></span>'
                    for k in range(n))
    return f'<span title="exits 1 to {n}: run (blue), taken (purple), skipped (grey)">{cells}</span>'


def strip_html(rows: list[dict]) -> str:
    """One line per shown image: its name (U1.. uploads, T1.. test images), the picture and what the network sees, the exit taken (as squares and
    in words), the prediction with its score and the MACs spent. One HTML element, so a play step redraws little."""
    out = ['<table class="exit-strip" style="width:100%;font-size:0.9rem;border-collapse:collapse">'
           '<tr style="text-align:left"><th></th><th>picture, as seen</th><th>image</th><th>exit taken'
           '</th><th>prediction (score)</th><th>MACs spent (share)</th></tr>']
    for r in rows:
        note = (f'<div style="font-size:0.75rem;color:#B5651D">{escape(r["note"])}</div>' if r["note"] else "")
        out.append(
            f'<tr style="border-top:1px solid rgba(128,128,128,0.3)"><td style="font-weight:bold">{r["letter"]}</td>'
            f'<td style="white-space:nowrap;min-width:92px"><img src="{r["thumb"]}" width="40" height="40"> '
            f'<img src="{r["view"]}" width="40" height="40" style="image-rendering:pixelated"></td>'
            f'<td style="max-width:16rem;overflow-wrap:anywhere">{escape(r["name"])}{note}</td>'
            f'<td style="white-space:nowrap">{exit_glyph(r["n"], r["k"])} {r["k"] + 1} of {r["n"]}'
            f'{LAST_TAKES_THE_REST if r["last_below"] else ""}</td>'
            f'<td>{escape(r["label"])} ({r["score"]:.2f})</td><td style="white-space:nowrap">{r["macs"]}</td></tr>')
    return "".join(out) + "</table>"


def plain_seconds(t: dict) -> str:
    return f"running every exit took {1000 * t.get('seconds', 0):.1f} ms on this computer (time is not MACs)"


def detail(item: dict, section: str, first: bool) -> None:
    """Everything about one image, folded: the picture beside what the network sees, its figures and scores, what
    each head adds and, behind a toggle, where the model looked."""
    name, pixels, t, k, ident = item["name"], item["pixels"], item["t"], item["t"]["exit_index"], item["ident"]
    with st.expander(f"{item['letter']}: {name}, exit {k + 1} of {net.num_exits}, {t['label']}",
                     expanded=first):
        left, right = st.columns([1, 3])
        with left:
            size = net.meta["input_size"]
            st.image([thumbnail_png(item["digest"], pixels, 96), thumbnail_png(item["view_digest"], item["view"], 96)],
                     caption=[f"{name} ({pixels.shape[1]}x{pixels.shape[0]})", f"what the network sees ({size}x{size})"],
                     width=96, output_format="PNG")
            if item["note"]:
                st.caption(item["note"])
            last_below = k == net.num_exits - 1 and item["last_below"]
            # The figures as one HTML block rather than three st.metric and two captions: see charts.stat_block.
            st.markdown(stat_block([
                ("Exit taken", f"{k + 1} of {net.num_exits}",
                 f"score {float(t['scores'][k]):.3f} at exit {k + 1} ({CRITERION_NAMES[criterion.name].split(' (')[0]})"
                 + ("; below the threshold, but the last exit takes every image that reaches it" if last_below else "")),
                ("Prediction", t["label"], ""),
                ("MACs spent", fmt_macs_short(t["macs"]),
                 f"{t['cost_ratio']:.0%} of the full network's MACs ({fmt_macs(t['full_macs'])}); {plain_seconds(t)}")],
                helps={"Exit taken": "Exits are counted from 1, the first head. An image leaves at the first exit whose "
                                     "score reaches the threshold; the last exit takes every image that reaches it."}),
                unsafe_allow_html=True)
        with right:
            top = 1.0 if np.isfinite(criterion.score_range[1]) else float(max(net.num_exits - 1, 1))
            short = CRITERION_NAMES[criterion.name].split(" (")[0]
            scores = score_bars_svg(exit_names, t["scores"].numpy(), k, float(item["thresholds"][0])
                                    if exit_setting().mode is ExitMode.THRESHOLD else np.asarray(item["thresholds"]), top,
                                    f"score of F_k: {short}", label=f"{name}: the score of every exit ({short})")
            st.markdown(svg_block(scores), unsafe_allow_html=True)
        # The top classes under both columns (beside the picture, at 1024 px, the table scrolled its last exits away),
        # in one element with the contribution panels: every element is redrawn at every threshold step.
        st.markdown(top_classes_table(exit_names, t["top_k"]) + "\n\n**What each head adds at every exit** (w = "
                    f"{net.reweight:g}{': joint training, each exit is its own head' if net.reweight == 0 else ''})\n\n"
                    + svg_block(contribution_figure(path, item["image_key"], t)), unsafe_allow_html=True)

        if not st.toggle("Where the model looked (attribution)", value=first, key=f"show_attr_{ident}"):
            return
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
                    chart, no_evidence = attribution_chart(path, item["image_key"], pixels, chosen, head, method)
                if no_evidence:
                    st.info(no_evidence)
                else:
                    st.markdown(svg_block(chart), unsafe_allow_html=True)


def prepared(items: list[tuple[str, np.ndarray]], section: str, thresholds_now: np.ndarray) -> list[dict]:
    """Each image (name, pixels) with its trace at the thresholds, its short name ("U2": the second upload, "T1": the
    first test image; an upload never renames a test image), its view at the input size and its keys."""
    seen: dict[str, int] = {}
    weights_version = weights_mtime(path)
    out = []
    for position, (name, pixels) in enumerate(items):
        digest = picture_digest(pixels)
        image_key = f"{digest}@{weights_version}"  # caches below: per image and per version of the weights
        # Widget keys follow the image's content (two uploads may share a name; the same picture twice gets _2), so
        # adding an image leaves the others' elements in place for the browser.
        seen[digest] = seen.get(digest, 0) + 1
        t = at_threshold(rescore(image_trace(path, image_key, pixels), criterion), net, thresholds_now)  # the model runs once per image
        x = image_input(path, image_key, pixels)
        k = t["exit_index"]
        view = model_view(x, net.meta)
        out.append({"name": name, "pixels": pixels, "digest": digest, "image_key": image_key, "t": t,
                    "ident": f"{section}{digest[:12]}_{seen[digest]}", "letter": f"{section.upper()}{position + 1}",
                    "view": view, "view_digest": picture_digest(view), "note": unusual(pixels, x, net.meta), "thresholds": thresholds_now,
                    "last_below": bool(k == net.num_exits - 1 and float(t["scores"][k]) < float(thresholds_now[k]))})
    return out


def overview(items: list[dict], setting_now) -> None:
    """The first screen's lesson: the network picture for one chosen image (the others' names at their exits) and
    one line per image."""
    picture = picture_of(path, weights_mtime(path))
    letters = [it["letter"] for it in items]
    chosen = 0
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"**Every image shown, at {setting_now.describe()}**" + (" ▶ playing" if player.playing() else "")
                    + (". The network picture for image:" if len(items) > 1 else ""), width="content")
        if len(items) > 1:
            pick = st.radio("The network picture shows the blocks run by image", letters, horizontal=True,
                            key="picture_image", index=0, label_visibility="collapsed", width="content")
            chosen = letters.index(pick) if pick in letters else 0
    marks: dict[int, list[str]] = {}
    for it in items:
        marks.setdefault(it["t"]["exit_index"], []).append(it["letter"])
    focus = items[chosen]
    # The picture and the strip as one element (fewer elements: a lighter redraw at each threshold step).
    st.markdown(svg_block(network_svg(picture, focus["t"]["exit_index"], marks={k: ", ".join(v) for k, v in marks.items()},
                                      title=f"{focus['letter']}: {focus['name']} leaves at exit "
                                            f"{focus['t']['exit_index'] + 1}; grey blocks and heads were skipped"))
                + strip_html([{"letter": it["letter"], "name": it["name"], "note": it["note"],
                             "thumb": small_png(it["digest"], it["pixels"], 40), "view": small_png(it["view_digest"], it["view"], 40),
                             "n": net.num_exits, "k": it["t"]["exit_index"], "last_below": it["last_below"],
                             "label": it["t"]["label"], "score": float(it["t"]["scores"][it["t"]["exit_index"]]),
                             "macs": f"{fmt_macs_short(it['t']['macs'])} ({it['t']['cost_ratio']:.0%})"} for it in items]),
                unsafe_allow_html=True)


PICKS = f"samples_{path}"


def picked_now(have_uploads: bool) -> list[tuple[str, np.ndarray]]:
    """(name, pixels) of the test images picked: what the picker below holds, read before it is drawn (the strip
    above it shows them). Picks kept from a visit when the whole split was here are kept only if still here."""
    images, _ = dataset_images(path)
    if images is None:
        return []
    test_labels = cache["test"].labels.numpy() if "test" in cache else None
    if f"saved_{PICKS}" in st.session_state:
        st.session_state[f"saved_{PICKS}"] = [i for i in st.session_state[f"saved_{PICKS}"] if images.has(np.array([i]))[0]]
    picks = st.session_state.get(f"saved_{PICKS}", [] if have_uploads else default_picks(images.indices, test_labels))
    return [(f"test #{i}" + (f" (true: {classes[test_labels[i]]})" if test_labels is not None else ""), images.image(i))
            for i in picks]


def test_image_picker(have_uploads: bool) -> None:
    """The test-image picker (open on a session's first visit without uploads); a change runs the whole page."""
    images, why_not = dataset_images(path)
    if images is None:
        if not have_uploads:
            st.info(why_not + " Upload an image above.")
        return
    test_labels = cache["test"].labels.numpy() if "test" in cache else None
    where = f"from {images.note}" if images.is_sample else "from the model's test split"
    # Open on the session's first visit if it has no uploads, then the same for the whole session (also after the
    # uploads are cleared). The user's own clicks still open and close it.
    picker_open = st.session_state.setdefault("picker_open", not have_uploads)
    with st.expander(f"Pick test images {where}", expanded=picker_open):
        pick_key = PICKS
        describe_pick = (lambda i: f"#{i} {classes[test_labels[i]]}") if test_labels is not None else (lambda i: f"#{i}")
        # The picker lists only the images picked (remove one with its x); images are added by number or from a
        # class's thumbnails. Listing all 10,000 test images made the page resend them at every rerun.
        kept = bind(pick_key, [] if have_uploads else default_picks(images.indices, test_labels))
        picks = st.multiselect("Test images shown (number in the test split, true class; remove one with its ×)",
                               list(st.session_state[pick_key]), format_func=describe_pick, max_selections=8, **kept)
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
            # The page's eight thumbnails as one image element and their numbers as one row of buttons.
            shown = [int(i) for i in members[start:start + 8]]
            thumbs = [images.image(i) for i in shown]
            st.image([thumbnail_png(picture_digest(p), p, 64) for p in thumbs], caption=[f"#{i}" for i in shown],
                     width=64, output_format="PNG")
            pills_key = f"add_{path}"
            st.pills("Add an image to those shown", shown, format_func=lambda i: f"#{i}", key=pills_key,
                     on_change=add_from_thumbnails, args=(pick_key, pills_key))


LOWEST_SHARE = int(np.ceil(100 * net.macs[0] / net.macs[-1]))
player.controls(net.num_exits, LOWEST_SHARE)


# Playing: a fragment that wakes every PLAY_SECONDS, moves the setting one step and runs the whole page again, so
# that the sidebar, the strip and every image's detail show the same value.
def play_ticker() -> None:
    if player.advance(net.num_exits, LOWEST_SHARE):
        st.rerun(scope="app")


st.fragment(play_ticker, run_every=player.PLAY_SECONDS if player.playing() else None)()

# The strip, the uploader and the uploads' details are one fragment: an upload reruns only it, not the sidebar, the
# picker and the test images' details below. Test images are named T1, T2, ... and uploads U1, U2, ..., so that an
# upload never renames a test image whose detail it does not redraw. The uploads' details are folded when there are
# several, so that the picker stays a few lines below the uploader.
TESTS = "_inspect_tests"


@st.fragment
def shown_images() -> None:
    setting_now = exit_setting()
    thresholds_now = thresholds_for(path, net.num_exits, setting_now)
    lesson = st.container()   # filled last, drawn first: the picture and the strip above the uploader and the picker
    # Every file type is taken: a PDF gets the app's sentence rather than the uploader's red mark alone.
    uploads = remembered_uploads("inspect_uploads", "Upload images (JPEG, PNG, WebP, BMP, GIF, TIFF; up to 20 MB each)",
                                 None)
    decoded, errors, notes = decode_uploads(uploads, net.meta["input_size"])
    for sentence in errors:
        st.error(sentence)
    for sentence in notes:
        st.info(sentence)
    uploaded = prepared(decoded, "u", thresholds_now)
    tests = prepared(picked_now(bool(st.session_state.get(UPLOADS))), "t", thresholds_now)
    st.session_state[TESTS] = tests
    with lesson:
        if uploaded or tests:
            overview(uploaded + tests, setting_now)
        # Below the strip, whose rows it explains: at 1024x768 the three rows then fit the first screen.
        st.caption(classes_sentence(bool(uploaded or tests)))
    for item in uploaded:   # unfolded, with its attribution, when it is the only upload
        detail(item, "u", first=len(uploaded) == 1)


shown_images()
have_uploads = bool(st.session_state.get(UPLOADS))   # as of this full run (an upload alone reruns only the fragment)
test_image_picker(have_uploads)
for position, item in enumerate(st.session_state.get(TESTS, [])):
    detail(item, "t", first=position == 0 and not have_uploads)
