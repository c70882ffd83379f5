"""The real app in headless Chromium: open it, upload an image, move the threshold, see the exit change.

Starts `streamlit run` on a free local port and drives Debian's chromium through playwright. The server runs as on a
fresh clone: the data root points to a folder that does not exist, so CIFAR-10 pages use the sample shipped in
assets/. Screenshots of every page land in tests/screenshots/ (git-ignored) for a person to look at. Skips when
chromium or playwright is absent.
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
    env = {"BOOSTNET_CHECKPOINTS": str(REPO / "checkpoints"), "BOOSTNET_RUNS": str(tmp_path_factory.mktemp("runs")),
           "BOOSTNET_DATA_ROOT": str(tmp_path_factory.mktemp("fresh-clone") / "no-data-here")}
    with served_app(env) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        from serve import CHROMIUM_ARGS
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


OUTSIDE: list[str] = []   # every request the pages made to another host (fonts, icons, ...): there must be none


def new_tab(browser, app_url):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.on("request", lambda r: None if r.url.startswith((app_url, "data:", "blob:")) else OUTSIDE.append(r.url))
    return tab


@pytest.fixture(scope="module")
def page(browser, app_url):
    return new_tab(browser, app_url)


TITLES = ["What is BoostNet?", "Inspect an image", "Threshold and exits", "Accuracy vs cost", "Compare models", "Train",
          "Models"]
URLS = ["", "inspect_image", "dataset_exits", "accuracy_cost", "compare_models", "train", "models"]


def _titles_and_wide_layout(page, where: str) -> None:
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert all(title in nav for title in TITLES), (where, nav)
    assert page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"] > 1000, where   # wide
    assert page.locator('[data-testid="stException"]').count() == 0, where


def test_a_deep_link_opened_first_on_a_fresh_server_has_the_titles_and_the_wide_layout(page, app_url):
    """The first request this fresh server gets is a deep link (the next tests open Inspect, Threshold and exits and
    the first page by their URLs, each a new session, and check the same; the other pages' files are checked to be
    reached through st.navigation alone, below); no Deploy button."""
    page.goto(f"{app_url}/train")
    page.wait_for_selector("h1:has-text('Train')", timeout=60000)
    _wait_idle(page)
    _titles_and_wide_layout(page, "train")
    assert page.get_by_text("Deploy", exact=True).count() == 0


def test_the_pages_live_where_streamlit_does_not_list_them_itself():
    """A folder named pages/ beside the entry script is listed by Streamlit as pages of its own (raw file names,
    narrow layout) whenever a deep link comes first; every page file is reached through st.navigation by its URL."""
    assert not (REPO / "app" / "pages").exists()
    router = (REPO / "app" / "streamlit_app.py").read_text()
    assert [f"views/{u or 'about'}.py" for u in URLS] == re.findall(r'st\.Page\("([^"]+)"', router)


def test_a_fresh_clone_picks_test_images_from_the_shipped_sample(page, app_url):
    SHOTS.mkdir(exist_ok=True)
    page.goto(app_url + "/inspect_image?model=cifar10-boostnet")
    page.wait_for_selector("h1:has-text('Inspect an image')", timeout=60000)
    _wait_idle(page)
    _titles_and_wide_layout(page, "inspect_image")
    page.wait_for_selector("text=/test #\\d+ \\(true: /", timeout=60000)
    _wait_idle(page)
    assert page.get_by_text("Or pick test images from the 50 CIFAR-10 test images shipped with the app").count() == 1
    truths = re.findall(r"test #\d+ \(true: (\w+)\)", page.locator('[data-testid="stMain"]').inner_text())
    assert len(truths) == 3 and len(set(truths)) == 3, truths
    page.screenshot(path=str(SHOTS / "inspect-sample.png"), full_page=True)
    page.goto(app_url + "/dataset_exits?model=cifar10-boostnet")
    page.wait_for_selector("text=the gallery shows the 50 CIFAR-10 test images", timeout=60000)
    _wait_idle(page)
    _titles_and_wide_layout(page, "dataset_exits")
    page.screenshot(path=str(SHOTS / "dataset-sample.png"), full_page=True)
    assert OUTSIDE == []


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
    page.wait_for_selector("text=(28x28)", timeout=60000)  # MNIST test digits: the link chose the model
    _wait_idle(page)
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


# The text of an element, with what its pickers show (a selectbox's value may sit in an input or an aria label).
SHOWN_TEXT = """el => el.textContent + ' ' + [...el.querySelectorAll('input, [aria-label]')]
    .map(e => (e.value || '') + ' ' + (e.getAttribute('aria-label') || '')).join(' ')"""

PAGES = [("Threshold and exits", "dataset.png"), ("Accuracy vs cost", "curves.png"),
         ("Compare models", "compare.png"), ("Models", "models.png")]


def test_train_page_trains_live_the_models_join_the_pickers_and_every_page_renders(page, browser, app_url):
    other = new_tab(browser, app_url)          # a second tab (another session), open before the training
    other.goto(app_url + "/models")
    other.wait_for_selector("h1:has-text('Models')", timeout=60000)
    page.goto(app_url)
    page.wait_for_selector("h1:has-text('What is BoostNet?')", timeout=60000)
    _titles_and_wide_layout(page, "the first page")
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
    # Every other page, in the same session (now on the new models, as the message says), with a screenshot.
    page.screenshot(path=str(SHOTS / "inspect-trained.png"), full_page=True)
    for title, shot in PAGES:
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        page.wait_for_selector(f"h1:has-text('{title}')", timeout=60000)
        _wait_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0, title
        main = page.locator('[data-testid="stApp"]').evaluate(SHOWN_TEXT)
        if title in ("Threshold and exits", "Accuracy vs cost", "Compare models"):
            assert re.search(r"digits-boostnet-\d", main), title
        if title == "Compare models":
            assert re.search(r"digits-joint-\d", main), title
        page.screenshot(path=str(SHOTS / shot), full_page=True)
    # The other tab sees the new models in its picker at its next page.
    other.locator('[data-testid="stSidebarNav"]').get_by_text("Inspect an image", exact=True).click()
    other.wait_for_selector("h1:has-text('Inspect an image')", timeout=60000)
    _wait_idle(other)
    other.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    assert other.get_by_role("option", name=re.compile(r"digits-boostnet-\d")).count() == 1
    other.keyboard.press("Escape")
    other.close()
    assert OUTSIDE == []
