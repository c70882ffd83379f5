"""BoostNet explorer: a router over one file per page (st.navigation), and the settings made once per app start.

The pages live in views/, not pages/: Streamlit would list a folder named pages/ beside the entry script as pages of
its own, which a deep link opened first on a fresh server then shows as raw file names in a narrow layout.
"""
import os
import sys
from pathlib import Path

import streamlit as st
import torch

sys.path.insert(0, str(Path(__file__).parent))  # pages import the app's modules (store, session, ...) from here

# Half the cores: the browser usually runs on the same machine, and two-thread tensor ops on a CPU the browser is
# busy on wait for each other (the Threshold page's arithmetic took 40 ms instead of 4 on two cores).
APP_THREADS = max(1, min(4, (os.cpu_count() or 1) // 2))
torch.set_num_threads(APP_THREADS)

import glossary  # noqa: E402
import projector  # noqa: E402
import restore  # noqa: E402

restore.keep_over_refresh()   # before the page config: a reload takes the tab's projector mode back too

st.set_page_config(page_title="BoostNet explorer", layout="wide", initial_sidebar_state=projector.start_of_run())
# Model names such as "cifar10-boostnet-norescale" fit the sidebar's picker without being cut. The uploaders' own
# hint ("200MB per file", Streamlit's transport limit, kept above the app's so that the app's sentence naming a file
# over 20 MB is what a user sees) is hidden: each uploader's label gives the formats and the app's limit.
st.html("<style>section[data-testid='stSidebar'] {min-width: 20rem;} "
        "[data-testid='stFileUploaderDropzoneInstructions'] {display: none;}</style>")
projector.style()
projector.toggle()
glossary.sidebar()
# No page icons: Material icons come from a font server, and emoji need a colour font the machine may lack.
pages = [
    st.Page("views/about.py", title="What is BoostNet?", default=True),
    st.Page("views/inspect_image.py", title="Inspect an image"),
    st.Page("views/dataset_exits.py", title="Threshold and exits"),
    st.Page("views/accuracy_cost.py", title="Accuracy vs cost"),
    st.Page("views/compare_models.py", title="Compare models"),
    st.Page("views/stress_test.py", title="Stress test", url_path="stress_test"),
    st.Page("views/train.py", title="Train"),
    st.Page("views/models.py", title="Models"),
]
st.navigation(pages).run()
