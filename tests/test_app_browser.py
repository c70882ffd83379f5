"""The real app in headless Chromium: open it, upload an image, move the threshold, see the exit change.

Starts `streamlit run` on a free local port and drives Debian's chromium through playwright. Screenshots of every
page land in tests/screenshots/ (git-ignored) for a person to look at. Skips when chromium or playwright is absent.
"""
import io
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import REPO, ambiguous_digit

sys.path.insert(0, str(REPO / "app"))

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "tests" / "screenshots"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from serve import served_app
    env = {"BOOSTNET_CHECKPOINTS": str(REPO / "checkpoints"), "BOOSTNET_RUNS": str(tmp_path_factory.mktemp("runs"))}
    with served_app(env) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        from serve import CHROMIUM_ARGS
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


def _wait_idle(page, timeout=60):
    """Wait until Streamlit has finished the current run (the status widget shows while a script runs)."""
    page.wait_for_timeout(150)  # let the rerun start
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout * 1000)
    page.wait_for_timeout(50)


def _exit_shown(page) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text="Exit taken").first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def test_upload_and_threshold_change_the_exit(page, app_url):
    SHOTS.mkdir(exist_ok=True)
    # The MNIST BoostNet model (its test digits always ship with the app), chosen by the link.
    page.goto(app_url + "/inspect_image?model=mnist5k-boostnet")
    page.wait_for_selector("h1:has-text('Inspect an image')", timeout=60000)
    _wait_idle(page)
    assert page.get_by_text("(28x28)").count() > 0  # MNIST test digits: the link chose the model
    img, exit_low, exit_high = ambiguous_digit()
    buf = io.BytesIO()
    img.save(buf, "PNG")
    page.locator('input[type="file"]').set_input_files(files=[{"name": "noise.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    page.wait_for_selector("text=noise.png", timeout=60000)
    _wait_idle(page)
    assert _exit_shown(page).endswith("of 5")  # the upload shows its exit
    # Threshold to its maximum: everything runs to the last exit.
    slider = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]').first
    slider.focus()
    slider.press("End")
    _wait_idle(page)
    high = _exit_shown(page)
    page.screenshot(path=str(SHOTS / "inspect.png"), full_page=True)
    slider.press("Home")
    _wait_idle(page)
    lowest = _exit_shown(page)
    assert (lowest, high) == (f"{exit_low + 1} of 5", f"{exit_high + 1} of 5")
    assert high != lowest


PAGES = [("Threshold and exits", "dataset.png"), ("Accuracy vs cost", "curves.png"),
         ("Compare models", "compare.png"), ("Models", "models.png")]


def test_train_page_trains_live_the_models_join_the_pickers_and_every_page_renders(page, app_url):
    page.goto(app_url)
    page.wait_for_selector("h1:has-text('What is BoostNet?')", timeout=60000)
    page.screenshot(path=str(SHOTS / "about.png"), full_page=True)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Train", exact=True).click()
    page.wait_for_selector("h1:has-text('Train')", timeout=60000)
    _wait_idle(page)
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    _wait_idle(page)
    page.get_by_role("button", name="Train BoostNet and joint").click()
    page.wait_for_selector("text=Saved and added to the model pickers", timeout=120000)
    assert page.get_by_role("button", name="Train BoostNet and joint").is_enabled()
    page.screenshot(path=str(SHOTS / "train.png"), full_page=True)
    # Without a restart, the new models are offered where models are picked, the new BoostNet model chosen.
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Inspect an image", exact=True).click()
    page.wait_for_selector("h1:has-text('Inspect an image')", timeout=60000)
    _wait_idle(page)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    assert page.get_by_role("option", name=re.compile(r"digits-boostnet-\d")).count() == 1
    assert page.get_by_role("option", name=re.compile(r"digits-joint-\d")).count() == 1
    page.keyboard.press("Escape")
    # Every other page, in the same session (now on the new model), with a screenshot for a person to look at.
    page.screenshot(path=str(SHOTS / "inspect-trained.png"), full_page=True)
    for title, shot in PAGES:
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        page.wait_for_selector(f"h1:has-text('{title}')", timeout=60000)
        _wait_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0, title
        page.screenshot(path=str(SHOTS / shot), full_page=True)
