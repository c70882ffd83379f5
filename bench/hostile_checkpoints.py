"""Benchmark: how long loading takes to refuse a hostile or broken model.json (target: under a second each).

Copies a shipped checkpoint, edits its model.json one way at a time (absurd sizes, a config that disagrees with the
weights, the largest layout the bounds allow with wrong sizes) and times `load_model` until its CheckpointError.
Prints one JSON object. Usage: python bench/hostile_checkpoints.py [--checkpoint checkpoints/mnist5k-boostnet]
"""
import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from boostnet_core import CheckpointError, load_model

CASES = {
    "n_blocks 100000": {"n_blocks": 100_000},
    "10^8 classes": {"num_classes": 10 ** 8},
    "10^7 channels": {"n_channels": 10 ** 7},
    "negative growth rate": {"growth_rate": -4},
    "input size 10^6": {"input_size": 10 ** 6},
    "shapes disagree with the weights": {"growth_rate": 5},
    # the most layers the bounds allow (6 scales x 42 layers), wide, and not the weights' sizes: laid out on the
    # meta device, then refused by the header
    "largest allowed layout": {"n_blocks": 8, "base": 7, "step": 5, "n_channels": 1024, "growth_rate": 512,
                               "gr_factor": [1] * 6, "bn_factor": [1] * 6, "num_classes": 25_000,
                               "classes": None, "macs": None},
}
TOP_LEVEL = ("input_size", "classes", "macs")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=str(Path(__file__).resolve().parents[1] / "checkpoints" / "mnist5k-boostnet"))
    args = parser.parse_args()
    load_model(args.checkpoint)  # warm-up: imports, first meta-device layout
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in CASES.items():
            folder = Path(tmp) / name.replace(" ", "_")
            shutil.copytree(args.checkpoint, folder)
            meta = json.loads((folder / "model.json").read_text())
            for key, value in changes.items():
                target = meta if key in TOP_LEVEL else meta["config"]
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
            (folder / "model.json").write_text(json.dumps(meta))
            t0 = time.perf_counter()
            try:
                load_model(folder)
                message = None
            except CheckpointError as e:
                message = str(e)
            results[name] = {"refused": message is not None, "seconds": round(time.perf_counter() - t0, 4),
                             "message": message}
    print(json.dumps({"benchmark": "hostile_checkpoints", "checkpoint": args.checkpoint, "cases": results,
                      "all_refused_within_1s": all(r["refused"] and r["seconds"] < 1 for r in results.values())}))


if __name__ == "__main__":
    main()
