"""What BoostNet is, in one page: the additive model, the boosted loss, the two evaluation modes, and what this
project's own runs say (computed from the shipped results by the study report, never typed in)."""
from __future__ import annotations

import json

import streamlit as st

from boostnet_core.study.report import boostnet_against_joint
import glossary
from charts import svg_block
from network_svg import network_svg, picture_of
from store import ASSETS, available_checkpoints, label, load_or_error, weights_mtime

REPORT = ASSETS / "report" / "report.json"  # written by `boostnet study report` (see the README's Results)


def plain_variant(report_label: str) -> str:
    """A study report's variant label in words: "boostnet, rescaling on" -> "BoostNet with gradient rescaling"."""
    method, _, rescaling = (part.strip() for part in report_label.partition(","))
    name = {"boostnet": "BoostNet", "joint": "joint training"}.get(method, method)
    words = {"rescaling on": " with gradient rescaling", "rescaling off": ""}
    return name + words.get(rescaling, f" ({rescaling})" if rescaling else "")

st.title("What is BoostNet?")
options = available_checkpoints()
current = st.session_state.get("model") or (options[0] if options else None)
net = load_or_error(current) if current else None
w = net.reweight if net is not None and net.reweight > 0 else 0.5

st.markdown(
    "An **early-exit network** has several prediction heads along one backbone. At test time an image leaves at "
    "the first head that is confident enough, so easy images cost little and hard ones go deeper. Trained the "
    "ordinary way (**joint** training), every head learns from every image, yet at test time a deep head only sees "
    "the images the earlier heads were unsure about. **BoostNet** (Yu et al., AAAI 2023, arXiv 2211.16726) reads the "
    "heads as a boosted ensemble: each exit adds its head's output to a down-weighted sum of the earlier ones.")
if net is not None:   # the lesson's picture: this model's own blocks and heads, with their MACs
    picture = picture_of(current, weights_mtime(current))
    rows = "scales" if picture.kind == "MSDNet" else "flows" if picture.kind == "RANet" else "blocks"
    st.markdown(f"**The network chosen now, {label(current)}**: a {picture.kind} with {net.num_exits} heads. Each row "
                f"is one of its {rows} (sizes of its feature maps), each box a block with the MACs it adds; a head "
                "after each block gives an exit, and the last line is the cost of reaching each exit. An image that "
                "leaves at exit 2 never runs the blocks to its right (see **Inspect an image**).")
    st.markdown(svg_block(network_svg(picture)), unsafe_allow_html=True)
# The two formulas one under the other: side by side, each had half the page and was cut on the right at 1024 px.
st.markdown("**The model**: head n outputs raw scores f_n (logits); exit n predicts with")
st.latex(r"F_1 = f_1,\qquad F_n = f_n + w\,F_{n-1} = \sum_{i\le n} w^{\,n-i} f_i")
st.markdown(f"with w = **{w:g}**" + (f" (the model chosen now, {label(current)})" if net is not None and net.reweight > 0
                                     else " (every published run); a joint model is the same with w = 0")
            + ". Its confidence is the largest softmax probability of F_n.")
st.markdown("**The boosted loss**: every head is trained on what the earlier ones leave unexplained")
st.latex(r"\mathcal{L} = \sum_{n=1}^{N} \mathrm{CE}\big(f_n + \mathrm{sg}(w\,F_{n-1}),\; y\big)")
st.markdown("where CE is the cross-entropy loss and sg stops the gradient: the earlier ensemble is a fixed starting "
            "point for head n, while the shared backbone still learns from every later loss. Joint training minimises "
            "Σ CE(f_n, y).")
st.markdown(
    "**Anytime** evaluation scores every exit on the whole test set (accuracy at each fixed cost). **Budgeted "
    "batch** evaluation chooses one threshold per exit, fitted on a held-out validation split so that the test set "
    "costs a given average of multiply-adds (MACs), and reports the accuracy at that average cost.")
st.markdown("The pages: **Inspect an image** shows which exit an image takes and what each head adds; **Threshold "
            "and exits** spreads a whole test set over the exits; **Accuracy vs cost** draws the curves; **Compare "
            "models** puts BoostNet and joint side by side; **Train** trains small models live.")


st.subheader("What this project's own runs say")
report = json.loads(REPORT.read_text()) if REPORT.is_file() else None
if report is None:
    st.info(f"No study report in this copy of the project ({REPORT.relative_to(ASSETS.parent)}); "
            "`boostnet study report` writes one.")
else:
    for recipe in report["recipes"]:
        pairs = boostnet_against_joint(recipe)
        if not pairs:
            continue
        st.markdown(f"*{recipe['recipe']}*")
        for c in pairs:
            m = c["mean_over_exits"]
            a, b = plain_variant(c["a"]), plain_variant(c["b"])
            n = len(c["seeds"])
            how = (f"range from the spread over {n} seeds" if n > 1
                   else "one seed; range from resampling the test images")
            verdict = {"A above B": "BoostNet ahead", "A below B": "joint ahead"}.get(m["verdict"], "not distinguishable from noise")
            exits = ", ".join(f"{e['difference']:+.2f}" for e in c["exits"])
            st.markdown(f"- {a} − {b}: mean over exits **{m['difference']:+.2f} points** of "
                        f"accuracy, 95% range {m['low']:+.2f} to {m['high']:+.2f} ({how}): **{verdict}**. Per exit: "
                        f"{exits}.")
    st.caption("Gradient rescaling: MSDNet's recipe that scales each block's gradient by the number of heads after "
               "it, so that no block is dominated by the many losses of the later heads.")
    st.caption(f"From {REPORT.relative_to(ASSETS.parent)}, written by `boostnet study report` from the shipped evaluations. The paper reports +1 to +3 points "
               "at the middle exits on CIFAR-100 with 300 epochs; these are short runs on smaller problems.")


with st.expander("Words used in this app (a glossary)", expanded=False):
    st.markdown(glossary.markdown())
