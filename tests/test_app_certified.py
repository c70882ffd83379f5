"""The app's certified mode: exact thresholds and the certificate file to take away, 'no exit' in words, and an
epsilon or delta out of range refused with a sentence (it turned the input red and kept the old value silently)."""
import sys

from conftest import REPO, share_apptest_work_once

sys.path.insert(0, str(REPO / "app"))
from streamlit.testing.v1 import AppTest  # noqa: E402
from session import ExitMode  # noqa: E402

share_apptest_work_once()
MNIST = str(REPO / "checkpoints" / "mnist5k-boostnet")


def certified_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app" / "views" / "dataset_exits.py"), default_timeout=120)
    at.session_state["model"] = MNIST
    at.run()
    at.radio(key="exit_mode").set_value(ExitMode.CERTIFIED).run()
    return at


def test_certified_thresholds_say_no_exit_and_give_the_exact_values_and_the_certificate():
    from boostnet_core.calibration import calibrate_checkpoint
    from boostnet_core.thresholds import format_thresholds
    at = certified_page()
    assert not at.exception
    want = calibrate_checkpoint(MNIST, "disagreement", 0.02, 0.1, "max_softmax")
    assert None in want["thresholds"]   # this model has exits nobody leaves at under this setting
    line = next(m.value for m in at.markdown if m.value.startswith("**Certified thresholds**"))
    assert "no exit" in line and "none" not in line
    assert any(f"--threshold {format_thresholds(want['thresholds'])}" in c.value for c in at.code)
    assert any("--certificate cert.json" in c.value for c in at.code)


def test_a_delta_out_of_range_is_refused_with_a_sentence_and_the_old_value_kept():
    at = certified_page()
    at.number_input(key="exit_delta").set_value(0.9).run()     # a valid share: applied
    assert at.session_state["exit_setting"].delta == 0.9
    at.number_input(key="exit_delta").set_value(1.5).run()
    assert not at.exception and at.session_state["exit_setting"].delta == 0.9
    assert any("must lie strictly between 0 and 1" in e.value and "still uses 0.9" in e.value for e in at.error)
    at.number_input(key="exit_epsilon").set_value(0.0).run()
    assert at.session_state["exit_setting"].epsilon == 0.02
    assert any("epsilon is a share of images" in e.value for e in at.error)


def test_a_cache_of_other_weights_is_a_sentence_on_every_page_that_reads_it(tmp_path):
    """New weights beside an old cache (a `train --resume`): the pages say what to run instead of a traceback, and
    Inspect still works for uploads."""
    import shutil
    import torch
    from boostnet_core import load_model
    from boostnet_core.checkpoint import save_model
    folder = tmp_path / "resumed"
    shutil.copytree(MNIST, folder)
    model = load_model(folder)
    with torch.no_grad():
        model.backbone.head(0).linear.bias += 0.01
    save_model(model, folder)
    for name in ("dataset_exits", "inspect_image"):
        at = AppTest.from_file(str(REPO / "app" / "views" / f"{name}.py"), default_timeout=120)
        at.session_state["extra_checkpoints"] = [str(folder)]   # loaded on the Models page
        at.session_state["model"] = str(folder)
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert any("was computed from weights" in w.value and "--write" in w.value for w in at.warning), name
