"""Benchmark: the app as a user feels it, in headless Chromium (Debian's chromium + playwright).

Starts `streamlit run` on the shipped models and times, from the key press (or the upload) until the script run is
over and the new result is drawn:
- one step of the threshold on "Inspect an image" with three test images (attribution panel open);
- one step of the threshold on "Threshold and exits" (10,000 cached test samples);
- an uploaded image until its exit is shown.
Each is repeated; the median and the worst are reported. Run it on an otherwise idle machine. Prints one JSON
object. Targets: 0.5 s, 0.3 s and 1 s. Usage: python bench/app_browser_latency.py [--repeats 5]
"""
import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "app"))
from serve import CHROMIUM_ARGS, served_app  # noqa: E402
RUNNING = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


def settle(page):
    page.wait_for_timeout(300)
    page.wait_for_function(RUNNING, timeout=120000)
    page.wait_for_timeout(300)


def step_times(page, slider, drawn_text, repeats: int) -> list[float]:
    """Seconds from one ArrowRight on `slider` until `drawn_text(new value)` is on the page and the run is over."""
    times = []
    for _ in range(repeats):
        value = float(slider.input_value())
        t0 = time.perf_counter()
        slider.press("ArrowRight")
        page.get_by_text(drawn_text(value + 0.01)).first.wait_for(timeout=60000)
        page.wait_for_function(RUNNING, timeout=60000)
        times.append(time.perf_counter() - t0)
        page.wait_for_timeout(200)
    return times


def summary(times: list[float], target: float) -> dict:
    return {"median_s": round(statistics.median(times), 3), "worst_s": round(max(times), 3),
            "runs": [round(t, 3) for t in times], "target_s": target, "met": statistics.median(times) < target}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    with served_app({"BOOSTNET_RUNS": str(REPO / "runs" / "bench")}) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            result = {"benchmark": "app latency in the browser", "repeats": args.repeats}

            page.goto(url + "/inspect_image?model=cifar10-boostnet")  # three test images by default
            page.wait_for_selector("h1:has-text('Inspect an image')", timeout=120000)
            settle(page)
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            slider.focus()
            slider.press("Home")
            settle(page)
            result["inspect_threshold_step"] = summary(
                step_times(page, slider, lambda v: f"threshold {v:.2f}", args.repeats), 0.5)

            buf = io.BytesIO()
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
            uploads = []
            for i in range(args.repeats):
                t0 = time.perf_counter()
                page.locator('input[type="file"]').first.set_input_files(
                    files=[{"name": f"upload{i}.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
                page.get_by_text(f"upload{i}.png (64x48)").first.wait_for(timeout=60000)
                page.wait_for_function(RUNNING, timeout=60000)
                uploads.append(time.perf_counter() - t0)
                page.wait_for_timeout(200)
            result["upload_until_exit_shown"] = summary(uploads, 1.0)

            page.goto(url + "/dataset_exits?model=cifar10-boostnet")
            page.wait_for_selector("h1:has-text('Threshold and exits')", timeout=120000)
            settle(page)
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            slider.focus()
            result["threshold_page_step"] = summary(
                step_times(page, slider, lambda v: f"Where samples exit (threshold {v:.2f})", args.repeats), 0.3)
            browser.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
