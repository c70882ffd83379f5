"""Stress test: early exit on corrupted and attacked images, against the same images clean.

Two views of one stress. Over 1,000 test images, from results shipped in assets/stress/ (scripts/stress_results.py;
the shipped CIFAR-10 models), so a severity change answers at once: accuracy, the exits taken, the MACs, and whether
the certified risk still holds. On the images shown (test images and uploads), live: each image clean beside
stressed, as the network sees it, and its exit moving. The slowdown attack runs live on the shown images with a
progress bar; the universal perturbation is the shipped one.
"""
from __future__ import annotations

from dataclasses import replace
from html import escape
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from boostnet_core.criteria import subset
from boostnet_core.errors import UserError
from boostnet_core.stress import CORRUPTIONS, NAMES, SEVERITIES, corrupt, slowdown_attack
from boostnet_core.stress.run import exit_outputs
from boostnet_core.thresholds import assign_exits
from charts import LIGHT, fmt_pct
from images import dataset_images, decode_uploads, picture_digest, thumbnail_png
from session import (ExitMode, ExitSetting, bind, exit_setting_controls, pick_loaded_model, remembered_uploads,
                     thresholds_for)
from store import certified, predictions
from stress_view import (PRETTY, STRESS, MAX_SHOWN, as_input_pixels, exit_squares, histogram_figure, image_key, mtime,
                         risk_sentence, shipped_results, summary)

# ---------------------------------------------------------------- the page

st.title("Stress test")
path, net = pick_loaded_model()
name = Path(path).name
macs = list(net.macs)
n_exits = net.num_exits
cache = predictions(path)
setting = exit_setting_controls(lowest_share=int(np.ceil(100 * macs[0] / macs[-1])), budget_ok="val" in cache,
                                n_exits=n_exits)
if setting.criterion != "max_softmax":
    st.sidebar.info("The stress test reads the max-softmax score; the other criteria are not used on this page.")
    # a patience count is no max-softmax threshold: the default threshold then
    setting = replace(setting, criterion="max_softmax",
                      threshold=setting.threshold if setting.criterion != "patience" else ExitSetting().threshold)
thresholds = np.asarray(thresholds_for(path, n_exits, setting), dtype=np.float64)
st.caption("Early exit trusts an exit's confidence, and confidence is what breaks outside the training data. Pick a "
           "common corruption (CIFAR-10-C's 15, 5 severities) or the slowdown attack (Hong et al., ICLR 2021: a "
           "perturbation of at most 8/255 per pixel that makes every early exit unsure). Exit rule: "
           f"{setting.describe()} (sidebar).")

c1, c2, c3 = st.columns([2, 3, 3])
kind = c1.radio("Stress", ["corruption", "attack"], format_func=lambda k: {"corruption": "corruption",
                                                                          "attack": "slowdown attack"}[k],
                **bind("stress_kind", "corruption"))
if kind == "corruption":
    corruption_name = c2.selectbox("Corruption", NAMES, format_func=lambda n: f"{PRETTY[n]} ({CORRUPTIONS[n].family})",
                                   **bind("stress_corruption", "gaussian_noise"))
    severity = c3.select_slider("Severity", SEVERITIES, **bind("stress_severity", 3))
    key, what = f"{corruption_name}/{severity}", f"{PRETTY[corruption_name]} at severity {severity}"
else:
    attack_name = c2.radio("Attack", ["slowdown", "universal"],
                           format_func=lambda a: {"slowdown": "per image (PGD, 30 steps, run here)",
                                                  "universal": "universal (one perturbation for every image)"}[a],
                           **bind("stress_attack", "slowdown"))
    c3.caption("ε = 8/255 in pixel units; loss: the cross-entropy of every early exit's softmax with the uniform "
               "distribution, on F_k, the quantity the exit rule reads.")
    key, what = f"attack/{attack_name}", f"the {attack_name} attack"

# ---------------------------------------------------------------- the split, from shipped results

shipped = shipped_results(name, mtime(STRESS / f"{name}.safetensors"))
st.subheader("Over the test images")
if shipped is None:
    st.info(f"No results are shipped for {name} (only for the CIFAR-10 pair); make them with "
            "`python scripts/stress_results.py run`. The images below are stressed live.")
else:
    outputs, extra = shipped
    clean_p, stressed_p = outputs["clean"], outputs[key]
    if key == "attack/slowdown":   # attacked on a subset: compare with the same images clean
        clean_p = subset(clean_p, torch.from_numpy(np.searchsorted(extra["test_index"].numpy(),
                                                                   extra["attack/slowdown.test_index"].numpy())))
    clean = summary(clean_p, thresholds, macs)
    stressed = summary(stressed_p, thresholds, macs)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Top-1", fmt_pct(stressed["top1"]), f"{stressed['top1'] - clean['top1']:+.2f} points",
              help=f"Top-1 of early exit, each image at the exit it took. Clean: {fmt_pct(clean['top1'])}; the last "
                   f"exit alone: {fmt_pct(stressed['last_top1'])} (clean {fmt_pct(clean['last_top1'])})")
    m2.metric("MACs, % of full", f"{100 * stressed['share']:.1f}%",
              f"{100 * (stressed['share'] - clean['share']):+.1f} points", delta_color="inverse",
              help=f"Average multiply-adds spent, as a share of the full network's (not measured time). Clean: "
                   f"{100 * clean['share']:.1f}%.")
    m3.metric("At the last exit", f"{stressed['last']:.1f}%", f"{stressed['last'] - clean['last']:+.1f} points",
              delta_color="inverse", help=f"Images that reach the last exit. Clean: {clean['last']:.1f}%")
    m4.metric("Early & wrong", f"{stressed['early_wrong']:.1f}%",
              f"{stressed['early_wrong'] - clean['early_wrong']:+.1f} points", delta_color="inverse",
              help="Images that exit before the last exit with a wrong class ('underthinking').")
    names = [f"exit {k + 1}" for k in range(n_exits)]
    st.plotly_chart(histogram_figure(names, clean["counts"], stressed["counts"], what), config=LIGHT,
                    key="stress_histogram")
    if "val" in cache:
        assumed = setting.mode is not ExitMode.CERTIFIED
        s = ExitSetting() if assumed else setting
        cert = certified(path, s.risk, s.epsilon, s.delta, "max_softmax")
        st.markdown(risk_sentence(clean_p, stressed_p, what, cert, s, assumed))
    drawn = outputs["clean"].labels.numel()
    st.caption(f"{drawn:,} test images drawn at random (seed 0), the same clean and stressed"
               + (f"; the per-image attack ran on {stressed['n']} of them, compared here with the same images clean"
                  if key == "attack/slowdown" else "")
               + "; shipped in assets/stress (scripts/stress_results.py). Exits from half-precision scores.")

# ---------------------------------------------------------------- the shown images, live

st.subheader("The images shown")
images, why = dataset_images(path)
options = [] if images is None else [int(i) for i in (images.indices if images.is_sample else
                                                      images.indices[:: max(1, len(images.indices) // 50)])]
labels_all = cache["test"].labels.numpy() if "test" in cache else None


def describe_test(i: int) -> str:
    return f"#{i}" + (f" ({net.classes[int(labels_all[i])]})" if labels_all is not None and i < len(labels_all) else "")


if images is None:
    st.caption(why)
defaults = []
if options and labels_all is not None:
    seen = set()
    for i in options:
        c = int(labels_all[i]) if i < len(labels_all) else i
        if c not in seen:
            seen.add(c)
            defaults.append(i)
    defaults = defaults[:: max(1, len(defaults) // 3)][:3]
picked = st.multiselect("Test images", options, format_func=describe_test, max_selections=MAX_SHOWN,
                        **bind("stress_picks", defaults or options[:3])) if options else []
# Every file type is taken (as on Inspect): a PDF gets the app's sentence rather than the uploader's red mark alone.
uploads = remembered_uploads("stress_uploads", "Or upload images (JPEG, PNG, WebP, BMP, GIF, TIFF; up to 20 MB each)",
                             None)
items, errors, notes = decode_uploads(uploads[:MAX_SHOWN], net.meta["input_size"])
for e in errors:
    st.error(e)
for note in notes:
    st.caption(note)

shown = []   # (name, uint8 input [C, H, W], key, label or -1)
for i in picked:
    shown.append((describe_test(i), images.images[int(np.searchsorted(images.indices, i))], i,
                  int(labels_all[i]) if labels_all is not None else -1))
for shown_name, pixels in items:
    try:
        x = as_input_pixels(pixels, net.meta)
    except (UserError, OSError, ValueError) as e:
        st.error(f"{shown_name}: {e}")
        continue
    shown.append((shown_name, x, image_key(x), -1))
shown = shown[:MAX_SHOWN]

if not shown:
    st.info("Pick test images or upload some to see each one clean and stressed.")
    st.stop()

clean_u8 = np.stack([s[1] for s in shown])
keys = [s[2] for s in shown]
labels = torch.tensor([max(s[3], 0) for s in shown])
state_key = ("stress_attacked", path, tuple(keys))
stressed_u8 = None
stressed_pixels = None
if kind == "corruption":
    stressed_u8 = corrupt(clean_u8, corruption_name, severity, seed=0, keys=keys)
    stressed_pixels = torch.from_numpy(stressed_u8).float() / 255
elif attack_name == "universal":
    if shipped is None or "attack/universal.perturbation" not in shipped[1]:
        st.info("No universal perturbation is shipped for this model.")
        st.stop()
    delta = shipped[1]["attack/universal.perturbation"].float()
    stressed_pixels = (torch.from_numpy(clean_u8).float() / 255 + delta).clamp(0, 1)
else:
    done = st.session_state.get("stress_attack_results", {})
    if state_key in done:
        stressed_pixels = done[state_key]
    if st.button(f"Run the slowdown attack on the {len(shown)} image{'s' * (len(shown) > 1)} shown",
                 type="primary" if state_key not in done else "secondary"):
        bar = st.progress(0.0, text="Attacking ...")
        adv, _ = slowdown_attack(net, torch.from_numpy(clean_u8).float() / 255,
                                 progress=lambda d, t: bar.progress(d / t, text=f"PGD step {d} of {t}"))
        bar.empty()
        stressed_pixels = adv
        st.session_state["stress_attack_results"] = {state_key: adv}   # one set kept: the last attacked
    if stressed_pixels is None:
        st.caption("Press the button: 30 signed-gradient steps on these images (a few seconds).")

clean_pixels = torch.from_numpy(clean_u8).float() / 255
versions = [clean_pixels] + ([stressed_pixels] if stressed_pixels is not None else [])
# a few images: the model as trained (eager) answers at once, with no engine to prepare first
outs = [exit_outputs(net, p, labels, fast=False)[0] for p in versions]
exits = [assign_exits(o.confidence, thresholds, (-np.inf, np.inf)) for o in outs]


def view(pixels_chw: np.ndarray) -> np.ndarray:
    return pixels_chw[0] if pixels_chw.shape[0] == 1 else pixels_chw.transpose(1, 2, 0)


WIDTHS = [2, 1.3, 1.3, 3, 3]
head = st.columns(WIDTHS)
for col, text in zip(head, ["image", "clean", "stressed", "exit clean → stressed", "prediction (confidence), MACs"]):
    col.markdown(f"**{escape(text)}**")
for j, (shown_name, x, _, label) in enumerate(shown):
    row = st.columns(WIDTHS)
    row[0].markdown(escape(shown_name))
    clean_view = view(x)
    row[1].image(thumbnail_png(picture_digest(clean_view), clean_view, 72), width=72, output_format="PNG")
    if stressed_pixels is None:
        row[3].markdown(exit_squares(n_exits, int(exits[0][j])), unsafe_allow_html=True)
        continue
    s_view = view(np.uint8(np.clip(np.round(stressed_pixels[j].numpy() * 255), 0, 255)))
    row[2].image(thumbnail_png(picture_digest(s_view), s_view, 72), width=72, output_format="PNG")
    k0, k1 = int(exits[0][j]), int(exits[1][j])
    row[3].markdown(exit_squares(n_exits, k0) + "<br>" + exit_squares(n_exits, k1), unsafe_allow_html=True)
    p0, p1 = outs[0], outs[1]
    c0, c1 = net.classes[int(p0.prediction[k0, j])], net.classes[int(p1.prediction[k1, j])]
    row[4].markdown(f"{escape(c0)} ({float(p0.confidence[k0, j]):.2f}), {macs[k0] / 1e6:.1f} M<br>"
                    f"{escape(c1)} ({float(p1.confidence[k1, j]):.2f}), {macs[k1] / 1e6:.1f} M",
                    unsafe_allow_html=True)
if stressed_pixels is not None:
    spent = [float(np.mean([macs[int(k)] for k in e])) for e in exits]
    st.caption(f"Average MACs over these images: {spent[0] / 1e6:.2f} M clean, {spent[1] / 1e6:.2f} M stressed "
               f"({100 * spent[1] / macs[-1]:.0f}% of the full network). The squares: exits run (blue), taken "
               "(purple), not run (grey); first row clean, second stressed.")
