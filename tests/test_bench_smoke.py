"""The benchmark scripts still run and print one JSON object (tiny sizes; the figures themselves come from bench/)."""
import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("args", [
    ["bench/thresholds.py", "--samples", "2000", "--exits", "4", "--classes", "10"],
    ["bench/train_speed.py", "--preset", "digits", "--steps", "2", "--rounds", "1", "--threads", "1"],
    ["bench/early_exit.py", "--checkpoint", "checkpoints/mnist5k-boostnet", "--images", "16", "--threads", "1",
     "--shares", "0.6"],
])
def test_benchmark_prints_json(args):
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["benchmark"]
    if "identical_thresholds" in report:
        assert report["identical_thresholds"] and report["identical_exits"]
