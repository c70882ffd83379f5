"""Models: what is loaded, its metadata, and loading another checkpoint folder by path."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from charts import fmt_macs
from store import available_checkpoints, label, model, results
from boostnet_core import UserError
from boostnet_core.checkpoint import read_meta

st.title("Models")
with st.form("load"):
    new_path = st.text_input("Load a checkpoint folder (the folder holding model.json and model.safetensors)")
    submitted = st.form_submit_button("Load")
if submitted and new_path.strip():
    folder = str(Path(new_path.strip()).expanduser())
    try:
        model(folder)
    except (UserError, OSError) as e:
        st.error(str(e))
    else:
        extra = st.session_state.setdefault("extra_checkpoints", [])
        if folder not in extra:
            extra.append(folder)
        st.success(f"Loaded {folder}.")

for number, path in enumerate(available_checkpoints()):
    try:
        meta = read_meta(path)
        m = model(path)
    except (UserError, OSError) as e:
        st.error(str(e))
        continue
    with st.expander(f"{label(path)}: {meta['method']}, {m.num_exits} exits, {fmt_macs(m.macs[-1])} at the last exit", expanded=number == 0):
        c1, c2 = st.columns(2)
        c1.markdown(f"**Folder** `{path}`  \n**Preset** {meta.get('preset')} ({meta['arch']})  \n"
                    f"**Method** {meta['method']}, w = {meta['reweight']}, gradient rescaling {'on' if meta.get('grad_rescale') else 'off'}  \n"
                    f"**Classes** {len(meta.get('classes', []))}: {', '.join(meta.get('classes', [])[:10])}  \n"
                    f"**Input** {meta['input_size']} px, mean {meta['mean']}, std {meta['std']}  \n"
                    f"**Parameters** {sum(p.numel() for p in m.parameters()) / 1e6:.3f} M")
        res = results(path)
        # A Markdown table of preformatted numbers: every value with two decimals (a data grid drops trailing zeros).
        columns = {"MACs (M, cumulative)": [f"{v / 1e6:.2f}" for v in m.macs]}
        if res:
            columns["test top-1 %"] = [f"{v:.2f}" for v in res["anytime"]["top1"]]
            columns["test top-5 %"] = [f"{v:.2f}" for v in res["anytime"]["top5"]]
        c2.markdown("| exit | " + " | ".join(columns) + " |\n|---:|" + "---:|" * len(columns) + "\n" + "\n".join(
            f"| {k + 1} | " + " | ".join(values[k] for values in columns.values()) + " |" for k in range(m.num_exits)))
        train = meta.get("train", {})
        st.markdown(f"**Training** {train.get('epochs_done', '?')} of {train.get('epochs', '?')} epochs, {train.get('schedule')} schedule, "
                    f"lr {train.get('lr')}, batch {train.get('batch_size')}, seed {train.get('seed')}; "
                    f"data {meta.get('data', {}).get('dataset')} (validation split {meta.get('data', {}).get('val_size')}, seed {meta.get('data', {}).get('split_seed')})")
        if meta.get("command"):
            st.code(meta["command"], language="bash")
        if meta.get("metrics"):
            st.json(meta["metrics"], expanded=False)
