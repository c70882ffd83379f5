"""Models: what is loaded, its metadata, and loading another checkpoint folder by path."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from common import available_checkpoints, fmt_macs, label, model, results
from boostnet_core import CheckpointError
from boostnet_core.checkpoint import read_meta

st.title("Models")
with st.form("load"):
    new_path = st.text_input("Load a checkpoint folder (the folder holding model.json and model.safetensors)")
    submitted = st.form_submit_button("Load")
if submitted and new_path.strip():
    folder = str(Path(new_path.strip()).expanduser())
    try:
        model(folder)
    except (CheckpointError, ValueError, OSError) as e:
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
    except (CheckpointError, ValueError, OSError) as e:
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
        table = {"exit": list(range(1, m.num_exits + 1)), "MACs (M, cumulative)": [round(v / 1e6, 2) for v in m.macs]}
        if res:
            table["test top-1 %"] = [round(v, 2) for v in res["anytime"]["top1"]]
            table["test top-5 %"] = [round(v, 2) for v in res["anytime"]["top5"]]
        c2.dataframe(table, hide_index=True)
        train = meta.get("train", {})
        st.markdown(f"**Training** {train.get('epochs_done', '?')} of {train.get('epochs', '?')} epochs, {train.get('schedule')} schedule, "
                    f"lr {train.get('lr')}, batch {train.get('batch_size')}, seed {train.get('seed')}; "
                    f"data {meta.get('data', {}).get('dataset')} (validation split {meta.get('data', {}).get('val_size')}, seed {meta.get('data', {}).get('split_seed')})")
        if meta.get("command"):
            st.code(meta["command"], language="bash")
        if meta.get("metrics"):
            st.json(meta["metrics"], expanded=False)
