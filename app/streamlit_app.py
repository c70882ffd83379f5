"""BoostNet explorer: a router over one file per page (st.navigation)."""
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).parent))  # pages import `common` from here

st.set_page_config(page_title="BoostNet explorer", layout="wide")
pages = [
    st.Page("pages/about.py", title="What is BoostNet?", icon=":material/school:", default=True),
    st.Page("pages/inspect_image.py", title="Inspect an image", icon=":material/image_search:"),
    st.Page("pages/dataset_exits.py", title="Threshold and exits", icon=":material/tune:"),
    st.Page("pages/accuracy_cost.py", title="Accuracy vs cost", icon=":material/show_chart:"),
    st.Page("pages/compare_models.py", title="Compare models", icon=":material/compare:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
]
st.navigation(pages).run()
