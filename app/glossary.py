"""The words the app uses, in plain terms for a class: one glossary, shown in full on the first page and folded in
the sidebar of every page."""
from __future__ import annotations

import streamlit as st

WORDS = {
    "MACs": "multiply-adds: the arithmetic a network does for one image (one multiplication and one addition each). "
            "The papers' measure of cost; 24.27 M MACs = 24.27 million. Not the same as time, which depends on the "
            "computer.",
    "block": "a group of layers of the backbone, the network's shared trunk. A head follows each block.",
    "head / exit": "a small classifier after a block. Exit k gives a prediction from everything computed up to "
                   "block k; exits are counted from 1, the first head.",
    "logit": "a head's raw score for a class, any number; the higher, the more the head favours the class.",
    "softmax": "turns a list of logits into probabilities that add up to 1.",
    "confidence (max softmax)": "the largest of those probabilities: how sure an exit is of its top class.",
    "threshold": "an image leaves at the first exit whose confidence reaches it; the last exit takes every image "
                 "that gets there.",
    "budget": "an average cost to meet: the thresholds are chosen so that the test images cost that many MACs on "
              "average.",
    "anytime": "every image goes to exit k: the accuracy you get if you always stop there.",
    "ECE": "expected calibration error: how far confidence is from accuracy, on average (0% = a confidence of 0.9 is "
           "right 90% of the time).",
    "epsilon and delta": "certified mode: the risk allowed (epsilon, e.g. 2% of images) and the chance that the "
                         "guarantee fails on new images (delta, e.g. 10%).",
    "95% range": "where the true difference lies with 95% confidence, from the spread over seeds (a t-interval) "
                 "or over resampled test images.",
    "seed": "the random start of a training run; runs with other seeds show how much results vary by chance.",
}


def markdown() -> str:
    return "\n".join(f"- **{word}**: {meaning}" for word, meaning in WORDS.items())


def sidebar() -> None:
    with st.sidebar.expander("Words used in this app"):
        st.markdown(markdown())
