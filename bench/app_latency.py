"""Benchmark: the app's server-side latency. Prints one JSON object.

- threshold: moving the global threshold on the data-set page (10,000 cached CIFAR-10 test samples when the
  shipped model is present), timed as a full script rerun through streamlit.testing; target < 300 ms;
- trace: an uploaded image's per-exit trace (preprocessing + all exits + contributions); target < 1 s;
- attribution: Integrated Gradients / Grad-CAM for one image (shown with a spinner; no target).
Usage: python bench/app_latency.py [--checkpoint checkpoints/cifar10-boostnet]
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "app"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "cifar10-boostnet"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import os
    import torch
    from streamlit.testing.v1 import AppTest
    from boostnet_core import load_model
    torch.set_num_threads(max(1, min(4, (os.cpu_count() or 1) // 2)))   # as app/streamlit_app.py does at start
    from boostnet_core.explain import attribute
    from boostnet_core.inference import preprocess_image, trace

    at = AppTest.from_file(str(REPO / "app" / "views" / "dataset_exits.py"), default_timeout=120)
    at.session_state["model"] = args.checkpoint
    at.run()
    rerun = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        at.slider(key="exit_threshold").set_value(0.5 + 0.09 * i).run()
        rerun.append(time.perf_counter() - t0)
    assert not at.exception, at.exception

    model = load_model(args.checkpoint)
    img = Image.fromarray((np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8))
    traces, attributions = [], {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        trace(model, preprocess_image(img, model.meta), 0.9)
        traces.append(time.perf_counter() - t0)
    x = preprocess_image(img, model.meta)
    for method in ("integrated_gradients", "grad_cam", "saliency"):
        t0 = time.perf_counter()
        attribute(model, x, model.num_exits - 1, 0, method, steps=32)
        attributions[method] = round(time.perf_counter() - t0, 3)
    from boostnet_core.evaluation import load_cache
    n = load_cache(args.checkpoint)["test"].labels.numel()
    print(json.dumps({"benchmark": "app latency", "checkpoint": args.checkpoint, "cached_test_samples": n,
                      "threshold_rerun_ms_median": round(1000 * statistics.median(rerun), 1),
                      "threshold_rerun_ms_max": round(1000 * max(rerun), 1),
                      "trace_ms_median": round(1000 * statistics.median(traces), 1),
                      "attribution_s": attributions,
                      "targets": {"threshold_rerun_ms": 300, "trace_ms": 1000}}))


if __name__ == "__main__":
    main()
