"""Every page of the Streamlit app through streamlit.testing (no browser): renders, reacts, and reports bad input."""
import io
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, ambiguous_digit

sys.path.insert(0, str(REPO / "app"))
from streamlit.testing.v1 import AppTest  # noqa: E402

MNIST = str(REPO / "checkpoints" / "mnist5k-boostnet")
MNIST_JOINT = str(REPO / "checkpoints" / "mnist5k-joint")
PAGES = ["inspect_image", "dataset_exits", "accuracy_cost", "compare_models", "models"]


def page(name: str, model: str | None = MNIST) -> AppTest:
    at = AppTest.from_file(str(REPO / "app" / "pages" / f"{name}.py"), default_timeout=120)
    if model:
        at.session_state["model"] = model
    return at


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def png_bytes(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_shipped_defaults(name):
    at = page(name, model=None).run()
    assert not at.exception, [e.value for e in at.exception]


def test_router_renders():
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception


def test_inspect_upload_shows_exit_and_threshold_changes_it():
    img, exit_low, exit_high = ambiguous_digit()
    at = page("inspect_image")
    at.session_state["threshold"] = 0.0
    at.run()
    at.file_uploader[0].set_value(("blend.png", png_bytes(np.asarray(img)), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert metric(at, "Exit taken") == f"{exit_low + 1} of 5"
    at.slider(key="inspect_threshold").set_value(1.0).run()
    assert not at.exception
    assert metric(at, "Exit taken") == f"{exit_high + 1} of 5"


@pytest.mark.parametrize("payload, name, message", [
    (b"this is not an image", "bad.png", "is not a readable image"),
    (b"", "empty.png", "is empty"),
    (png_bytes(np.zeros((64, 64, 3), np.uint8))[:50], "truncated.png", "is not a readable image"),
])
def test_inspect_bad_upload_shows_error_and_page_keeps_working(payload, name, message):
    at = page("inspect_image").run()
    at.file_uploader[0].set_value((name, payload, "image/png"))
    at.run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert len(at.metric) > 0  # the data-set samples still render


def test_inspect_decompression_bomb():
    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, "PNG")
    at = page("inspect_image").run()
    at.file_uploader[0].set_value(("bomb.png", buf.getvalue(), "image/png"))
    at.run()
    assert not at.exception and any("megapixel" in e.value for e in at.error)


def test_dataset_threshold_changes_accuracy_and_cost():
    at = page("dataset_exits").run()
    assert not at.exception
    at.slider(key="dataset_threshold").set_value(0.5).run()
    low = (metric(at, "Accuracy"), metric(at, "Average cost"))
    at.slider(key="dataset_threshold").set_value(0.9999).run()
    high = (metric(at, "Accuracy"), metric(at, "Average cost"))
    assert not at.exception and low[1] != high[1]


def test_dataset_budget_mode():
    at = page("dataset_exits").run()
    at.radio(key="threshold_mode").set_value("Fitted to a cost budget").run()
    assert not at.exception
    at.slider(key="budget_share").set_value(50).run()
    assert not at.exception
    cost = float(metric(at, "Average cost").split()[0])
    full = 5.34
    assert cost <= 0.5 * full * 1.05


def test_curves_with_reference_layer():
    at = page("accuracy_cost").run()
    at.multiselect(key="curve_models").set_value([MNIST, MNIST_JOINT])
    at.checkbox[0].check().run()
    assert not at.exception
    assert len(at.get("download_button")) == 2


def test_compare_boostnet_and_joint():
    at = page("compare_models").run()
    at.selectbox(key="compare_a").set_value(MNIST)
    at.selectbox(key="compare_b").set_value(MNIST_JOINT).run()
    assert not at.exception
    assert any(m.label == "Different predictions" for m in at.metric)
    img, _, _ = ambiguous_digit()
    at.file_uploader(key="compare_uploads").set_value([("blend.png", png_bytes(np.asarray(img)), "image/png"),
                                                      ("broken.png", b"nope", "image/png")]).run()
    assert not at.exception
    assert any("broken.png" in e.value for e in at.error)
    assert any(m.label == "mnist5k-joint" for m in at.metric)


def test_models_page_loads_a_folder_and_rejects_a_non_checkpoint(digits_checkpoint, tmp_path):
    at = page("models").run()
    at.text_input[0].set_value(str(tmp_path))
    at.button[0].click().run()
    assert not at.exception and any("model.json is missing" in e.value for e in at.error)
    at.text_input[0].set_value(str(digits_checkpoint))
    at.button[0].click().run()
    assert not at.exception and any("Loaded" in s.value for s in at.success)
