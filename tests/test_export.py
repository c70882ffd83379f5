"""`boostnet export`: ONNX files and manifest, and the README's plain ONNX Runtime early-exit loop run as written."""
import json
import re

import numpy as np
import pytest
import torch

from boostnet_core.cli import main
from boostnet_core.data import load_dataset, normalize

from conftest import REPO


def readme_loop() -> dict:
    """The code between the README's "onnx loop" markers, executed: its functions by name."""
    text = (REPO / "README.md").read_text()
    section = re.search(r"<!-- onnx loop: start -->(.*?)<!-- onnx loop: end -->", text, re.S).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md (onnx loop)", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def exported(digits_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "digits-onnx"
    assert main(["export", str(digits_checkpoint), "--format", "onnx", "--out", str(out), "--threshold", "0.9"]) == 0
    return out


def test_the_readme_loop_takes_predict_earlys_exits(exported, digits_model):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["classes"] == list(digits_model.classes) and manifest["w"] == digits_model.reweight
    assert manifest["macs"] == list(digits_model.macs) and manifest["thresholds"] == [0.9] * digits_model.num_exits
    assert [p["file"] for p in manifest["pieces"]] == [f"exit{k}.onnx" for k in range(digits_model.num_exits)]
    loop = readme_loop()
    manifest, sessions = loop["load"](str(exported))
    x = normalize(load_dataset("digits").test.images[:40], digits_model.meta["mean"], digits_model.meta["std"])
    n = digits_model.num_exits
    thresholds = [0.6, 0.8, 0.95, 0.99][: n - 1] + [0.0]
    reference = digits_model.predict_early(x, thresholds, fast=False)
    exits = []
    for i in range(len(x)):
        k, F = loop["early_exit"](manifest, sessions, x[i:i + 1].numpy(), thresholds)
        exits.append(k)
        assert np.abs(F[0] - reference.logits[i].numpy()).max() <= 1e-4
    assert exits == reference.exit_index.tolist() and len(set(exits)) > 1


def test_export_replaces_an_earlier_export_and_refuses_other_folders(exported, digits_checkpoint, tmp_path, capsys):
    assert main(["export", str(digits_checkpoint), "--out", str(exported)]) == 0   # over an earlier export
    assert json.loads((exported / "manifest.json").read_text())["thresholds"] is None
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["export", str(digits_checkpoint), "--out", str(other)]) == 2
    assert "not an earlier export" in capsys.readouterr().err and (other / "keep.txt").read_text() == "mine"
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
