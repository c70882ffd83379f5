"""The app's Stress test page: every shipped condition through the page's pieces, and the page itself (AppTest)."""
import sys

import numpy as np
import pytest

from conftest import REPO, share_apptest_work_once

sys.path.insert(0, str(REPO / "app"))
from streamlit.testing.v1 import AppTest  # noqa: E402

share_apptest_work_once()

PAIR = ["cifar10-boostnet", "cifar10-joint"]
STRESS = REPO / "assets" / "stress"


@pytest.mark.parametrize("name", PAIR)
def test_every_shipped_condition_reads_summarises_and_corrupts_the_shown_images(name):
    """What the page computes for each corruption at each severity and each attack, without a browser session: the
    split's summary against clean, the certified risk's sentence, the histogram, and the live corruption of images."""
    import json

    from boostnet_core.stress import NAMES, SEVERITIES, corrupt, load_outputs
    from images import shipped_sample
    from session import ExitSetting
    from stress_view import histogram_figure, risk_sentence, summary
    outputs, extra = load_outputs(STRESS / f"{name}.safetensors")
    wanted = {"clean", "attack/slowdown", "attack/universal"} | {f"{n}/{s}" for n in NAMES for s in SEVERITIES}
    assert set(outputs) == wanted
    assert extra["attack/universal.perturbation"].abs().max() <= 8 / 255 + 1e-6
    recorded = json.loads((STRESS / "summary.json").read_text())["models"][name]
    macs = recorded["macs"]
    thresholds, setting = np.full(len(macs), 0.9), ExitSetting()
    # the certified thresholds of the default setting, as the script recorded them (calibrate_checkpoint's)
    rules = recorded["conditions"]["clean"]["rules"]
    cert = {"thresholds": rules["certified disagreement 0.02 (delta 0.1)"]["thresholds"]}
    clean = summary(outputs["clean"], thresholds, macs)
    _, tiles = shipped_sample()
    shown = tiles[:1]
    for key, p in outputs.items():
        s = summary(p, thresholds, macs)
        assert s["counts"].sum() == s["n"] and 0 < s["share"] <= 1
        sentence = risk_sentence(outputs["clean"], p, key, cert, setting, True)
        assert ("**held**" in sentence) != ("**broken**" in sentence), sentence
        if key.startswith(("attack", "fog/")):   # the figure's code does not depend on the condition
            histogram_figure(["e"] * len(macs), clean["counts"], s["counts"], key)
        if key.count("/") and not key.startswith("attack"):
            corruption, severity = key.split("/")
            stressed = corrupt(shown, corruption, int(severity), keys=[0])
            assert stressed.shape == shown.shape
    # the attack does what it is for: more MACs and more images at the last exit than clean
    attacked = summary(outputs["attack/slowdown"], thresholds, macs)
    assert attacked["share"] > clean["share"] and attacked["last"] > clean["last"]


def test_stress_page_renders_a_corruption_a_severity_change_and_the_universal_attack(monkeypatch):
    monkeypatch.setenv("BOOSTNET_DATA_ROOT", str(REPO / "no-such-folder"))   # as on a fresh clone: the shipped sample
    at = AppTest.from_file(str(REPO / "app" / "views" / "stress_test.py"), default_timeout=120)
    at.session_state["model"] = str(REPO / "checkpoints" / PAIR[1])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    before = {m.label: m.value for m in at.metric}
    assert "Top-1" in before
    assert any("held" in m.value or "broken" in m.value for m in at.markdown)
    at.select_slider(key="stress_severity").set_value(5).run()
    assert not at.exception
    after = {m.label: m.value for m in at.metric}
    assert float(after["Top-1"].rstrip("%")) < float(before["Top-1"].rstrip("%"))
    at.radio(key="stress_kind").set_value("attack").run()
    at.radio(key="stress_attack").set_value("universal").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("stressed" in c.value for c in at.caption)   # the shown images, attacked with the shipped perturbation
