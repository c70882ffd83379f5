"""The benchmark scripts still run and print one JSON object (tiny sizes; the figures themselves come from bench/).

Each script runs in this process (as `python bench/X.py` would run it) to spare a Python start per script."""
import json
import runpy
import sys

import pytest
import torch

from conftest import REPO


@pytest.mark.parametrize("args", [
    ["bench/thresholds.py", "--samples", "2000", "--exits", "4", "--classes", "10"],
    ["bench/train_speed.py", "--preset", "digits", "--batch-size", "16", "--steps", "2", "--rounds", "1", "--threads", "1",
     "--paths", "bf16", "--methods", "joint"],
    ["bench/early_exit.py", "--checkpoint", str(REPO / "checkpoints" / "mnist5k-boostnet"), "--images", "16",
     "--threads", "1", "--shares", "0.6", "--repeats", "1"],
    ["bench/bf16_inference_accuracy.py", "--checkpoint", str(REPO / "checkpoints" / "mnist5k-boostnet"),
     "--engines", "torch-fold", "--threads", "1", "--shares", "0.5", "--images", "250"],
    ["bench/inference_profile.py", "--checkpoint", str(REPO / "checkpoints" / "mnist5k-boostnet"), "--batch", "4",
     "--threads", "1", "--repeats", "1", "--level", "fold"],
])
def test_benchmark_prints_json(args, capsys, monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", [str(REPO / args[0]), *args[1:]])
    try:
        runpy.run_path(str(REPO / args[0]), run_name="__main__")
    finally:
        torch.set_num_threads(threads)  # the scripts set their own thread count
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["benchmark"]
    if "by_kind" in report.get("eager", {}):  # every convolution's MACs found, and the kinds add up to the whole
        for path in ("eager", "fast"):
            kinds = report[path]["by_kind"].values()
            assert sum(k["share"] for k in kinds) == pytest.approx(1, abs=0.01)
            conv_mmacs, model_mmacs = sum(k.get("mmacs", 0) for k in kinds), report["model_mmacs_per_batch"]
            assert 0.8 * model_mmacs < conv_mmacs <= 1.001 * model_mmacs  # the rest: the heads' linear layers
    if "identical_thresholds" in report:
        assert report["identical_thresholds"] and report["identical_exits"]
