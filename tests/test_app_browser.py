"""The real app in headless Chromium: open it, upload an image, move the threshold, see the exit change.

Starts `streamlit run` on a free local port and drives Debian's chromium through playwright. The server runs as on a
fresh clone: the data root points to a folder that does not exist, so CIFAR-10 pages use the sample shipped in
assets/. Screenshots of the pages it visits land in tests/screenshots/ (git-ignored) for a person to look at. Skips when
chromium or playwright is absent.
"""
import io
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "app"))

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "tests" / "screenshots"
# Whole-page screenshots of every page at projector sizes cost about a fifth of the suite's browser time; the first
# screen of every page is always kept. BOOSTNET_FULL_SCREENSHOTS=1 keeps the whole pages too.
FULL_PAGE_SHOTS = os.environ.get("BOOSTNET_FULL_SCREENSHOTS", "") not in ("", "0")
# One Streamlit server and one Chromium for the module: pytest-xdist runs a whole file on one worker (--dist loadfile,
# pyproject.toml; the group keeps it so under --dist loadgroup too), and conftest.py deals this file out first.
pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
              pytest.mark.xdist_group("browser"), pytest.mark.slow]


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
    # Reduced motion: without it, Streamlit's fades and spinners are repainted in software at every frame while a
    # script runs (a fifth of the browser's CPU here); what the pages show is the same.
    tab = browser.new_page(viewport={"width": 1400, "height": 1000}, reduced_motion="reduce")
    tab.on("request", lambda r: None if r.url.startswith((app_url, "data:", "blob:")) else OUTSIDE.append(r.url))
    return tab


@pytest.fixture(scope="module")
def page(browser, app_url):
    return new_tab(browser, app_url)


TITLES = ["What is BoostNet?", "Inspect an image", "Threshold and exits", "Accuracy vs cost", "Compare models",
          "Stress test", "Train", "Models"]
URLS = ["", "inspect_image", "dataset_exits", "accuracy_cost", "compare_models", "stress_test", "train", "models"]


def _titles_and_wide_layout(page, where: str) -> None:
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert all(title in nav for title in TITLES), (where, nav)
    assert page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"] > 1000, where   # wide
    assert page.locator('[data-testid="stException"]').count() == 0, where


def test_the_readme_link_opened_first_on_a_fresh_server_shows_the_titles_the_layout_and_the_shipped_sample(page, app_url):
    """The first request this fresh server gets is the README's deep link (the other pages' files are checked to be
    reached through st.navigation alone, below); no Deploy button; a clone without the data picks test images of
    three classes from the sample shipped in assets/."""
    SHOTS.mkdir(exist_ok=True)
    page.goto(app_url + "/inspect_image?model=cifar10-boostnet")
    page.wait_for_selector("h1:has-text('Inspect an image')", timeout=60000)
    _wait_idle(page)
    _titles_and_wide_layout(page, "inspect_image")
    assert page.get_by_text("Deploy", exact=True).count() == 0
    uploader = page.locator('[data-testid="stFileUploader"]').first.inner_text()
    assert "up to 20 MB each" in uploader and "200MB" not in uploader   # one limit on screen, the app's
    page.wait_for_selector("text=/test #\\d+ \\(true: /", timeout=60000)
    _wait_idle(page)
    assert page.get_by_text("Pick test images from the 50 CIFAR-10 test images shipped with the app").count() == 1
    truths = re.findall(r"test #\d+ \(true: (\w+)\)", page.locator(".exit-strip").inner_text())   # a line per image
    assert len(truths) == 3 and len(set(truths)) == 3, truths
    page.screenshot(path=str(SHOTS / "inspect-sample.png"), full_page=True)
    # The Threshold and Compare galleries on the sample: tests/test_app.py (AppTest).
    assert OUTSIDE == []


def test_the_pages_live_where_streamlit_does_not_list_them_itself():
    """A folder named pages/ beside the entry script is listed by Streamlit as pages of its own (raw file names,
    narrow layout) whenever a deep link comes first; every page file is reached through st.navigation by its URL."""
    assert not (REPO / "app" / "pages").exists()
    router = (REPO / "app" / "streamlit_app.py").read_text()
    assert [f"views/{u or 'about'}.py" for u in URLS] == re.findall(r'st\.Page\("([^"]+)"', router)


# The script run is over and its output is on the page: Streamlit marks the app's state on its root element at once
# (its status widget shows only once a run has lasted half a second), and removes the previous run's elements, marked
# stale, when the run ends.
RUN_OVER = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
    && !document.querySelector('[data-stale="true"]')"""


def _wait_idle(page, timeout=60, started=False):
    """Wait until Streamlit has finished the current run. `started`: the caller has seen the run's own output, so it
    has begun; otherwise give a rerun (a key press, an upload) a moment to start."""
    if not started:
        page.wait_for_timeout(150)
    page.wait_for_function(RUN_OVER, timeout=timeout * 1000)


def _open(page, title: str) -> None:
    """Go to a page through the sidebar (the same session; no reload of the app in the browser)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=60000)   # written by the new page's run
    _wait_idle(page, started=True)


# Every element of the run drawn: no placeholder left (Streamlit shows a skeleton while an element's code loads,
# plotly's the first time) and every plotly chart's SVG holding its text; then two frames (at most 2 s: a page in
# the background gets none).
CHARTS_DRAWN = """() => !document.querySelector('[data-testid="stSkeleton"]')
    && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
       .filter(c => !c.closest('details:not([open])')).every(c => c.querySelector('svg.main-svg text'))"""
TWO_FRAMES = """() => new Promise(done => { setTimeout(done, 2000);
    requestAnimationFrame(() => requestAnimationFrame(() => done(true))); })"""


def _laid_out(page, check: str):
    """`check` (a JavaScript function returning a list of problems) once the page's run is over and its charts are
    drawn; a problem seen is looked at again 300 ms later, so that only a layout that stays wrong fails (plotly may
    still be moving text)."""
    page.wait_for_function(CHARTS_DRAWN, timeout=30000)
    page.evaluate(TWO_FRAMES)
    problems = page.evaluate(check)
    if problems:
        page.wait_for_timeout(300)
        problems = page.evaluate(check)
    return problems


def _exit_shown(page) -> str:
    figure = page.locator(".stat", has_text="Exit taken").first
    return figure.locator(".stat-value").inner_text()


def cifar_upload():
    """A noise image and the exits the library gives it on cifar10-boostnet at thresholds 0 and 1."""
    import numpy as np
    from PIL import Image
    from boostnet_core import load_model
    from boostnet_core.inference import preprocess_image, trace
    img = Image.fromarray(np.random.default_rng(7).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    model = load_model(REPO / "checkpoints" / "cifar10-boostnet")
    x = preprocess_image(img, model.meta)
    return img, trace(model, x, 0.0)["exit_index"], trace(model, x, 1.0)["exit_index"]


def test_upload_and_threshold_change_the_exit(page, app_url):
    SHOTS.mkdir(exist_ok=True)
    if page.locator("h1:has-text('Inspect an image')").count() == 0:   # run alone: open the README's link
        page.goto(app_url + "/inspect_image?model=cifar10-boostnet")
        page.wait_for_selector("h1:has-text('Inspect an image')", timeout=60000)
        _wait_idle(page)
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    assert "cifar10-boostnet" in picker.evaluate(SHOWN_TEXT)   # the model the README's link chose
    img, exit_low, exit_high = cifar_upload()
    buf = io.BytesIO()
    img.save(buf, "PNG")
    page.locator('input[type="file"]').set_input_files(files=[{"name": "noise.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    page.wait_for_selector("text=noise.png", timeout=60000)
    _wait_idle(page)
    assert _exit_shown(page).endswith("of 5")  # the upload shows its exit
    # Threshold to its maximum: everything runs to the last exit.
    assert exit_low != exit_high
    slider = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"] input[type="range"]').first
    slider.focus()
    slider.press("End")
    _wait_for_exit(page, exit_high)
    page.screenshot(path=str(SHOTS / "inspect.png"), full_page=True)
    slider.press("Home")
    _wait_for_exit(page, exit_low)


def _wait_for_exit(page, exit_index: int) -> None:
    """Wait (up to a minute) until the upload's figure shows exit `exit_index` (0-based): a key press is sent at once,
    but on a loaded machine the rerun it causes may start after the run state was last checked."""
    from playwright.sync_api import expect
    expect(page.locator(".stat", has_text="Exit taken").first.locator(".stat-value")).to_have_text(
        f"{exit_index + 1} of 5", timeout=60000)
    _wait_idle(page)


# The text of an element with what its pickers show (a selectbox's value may sit in an input or an aria label).
SHOWN_TEXT = """el => el.textContent + ' ' + [...el.querySelectorAll('input, [aria-label]')]
    .map(e => (e.value || '') + ' ' + (e.getAttribute('aria-label') || '')).join(' ')"""


def test_train_page_trains_live_and_the_models_join_the_pickers_of_both_tabs(page, browser, app_url):
    other = new_tab(browser, app_url)          # a second tab (another session), open before the training
    other.goto(app_url + "/train")
    other.wait_for_selector("h1:has-text('Train')", timeout=60000)
    if page.url == "about:blank":   # run alone
        page.goto(app_url)
    _open(page, "Train")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    _wait_idle(page)
    page.get_by_role("button", name="Train BoostNet and joint").click()
    page.wait_for_selector("text=Saved and added to the model pickers", timeout=120000)
    assert page.get_by_role("button", name="Train BoostNet and joint").is_enabled()
    page.screenshot(path=str(SHOTS / "train.png"), full_page=True)
    # Without a restart, the new models are offered where models are picked, the new BoostNet model chosen.
    _open(page, "Inspect an image")
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    shown = picker.evaluate(SHOWN_TEXT)
    assert re.search(r"digits-boostnet-\d", shown), shown
    picker.click()
    assert page.get_by_role("option", name=re.compile(r"digits-boostnet-\d")).count() == 1
    assert page.get_by_role("option", name=re.compile(r"digits-joint-\d")).count() == 1
    page.keyboard.press("Escape")
    page.screenshot(path=str(SHOTS / "inspect-trained.png"), full_page=True)
    # Every other page switching to the new models is checked page by page in tests/test_app.py (AppTest).
    # The other tab sees the new models in its picker at its next page.
    _open(other, "Inspect an image")
    other.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    assert other.get_by_role("option", name=re.compile(r"digits-boostnet-\d")).count() == 1
    other.keyboard.press("Escape")
    other.close()
    assert OUTSIDE == []


# Classroom projectors: 1024x768 and 1280x800 (the second in the dark theme, which a system setting may choose).
PROJECTOR_SIZES = [(1024, 768, "light"), (1280, 800, "dark")]
LAYOUT_CHECK = (REPO / "app" / "layout_check.js").read_text()


@pytest.fixture(scope="module")
def projector_tab(browser, app_url):
    """One tab for every projector check: each size and colour scheme is set on it in turn (Streamlit follows the
    system's scheme as it changes), so the app is loaded once rather than once per size (seconds of CPU each)."""
    tab = new_tab(browser, app_url)   # its requests to other hosts are listed in OUTSIDE too
    tab.goto(app_url + "/?model=cifar10-boostnet")
    tab.wait_for_selector("h1:has-text('What is BoostNet?')", timeout=60000)
    _wait_idle(tab)
    yield tab
    tab.close()


@pytest.mark.parametrize("width,height,scheme", PROJECTOR_SIZES, ids=[f"{w}x{h}-{s}" for w, h, s in PROJECTOR_SIZES])
def test_every_page_holds_at_projector_sizes(projector_tab, width, height, scheme):
    """Every page of the sidebar at a projector's size: no text box of a chart (title, legend, tick and axis labels,
    bar labels; the app's own SVG charts' text) over another one, none leaving its chart, no figure or formula cut
    (app/layout_check.js, one evaluation per page). Screenshots of each page (its first screen; the whole page with
    BOOSTNET_FULL_SCREENSHOTS=1) are kept in tests/screenshots/projector/ for a person to look at."""
    shots = SHOTS / "projector"
    shots.mkdir(parents=True, exist_ok=True)
    # The page is laid out at the projector's width; the window is taller than the projector's so that a whole page
    # can be photographed without resizing (and re-laying out) the window twice per page. The first-screen shot is
    # the top `height` pixels: what the projector shows before scrolling.
    tall = 2 * height
    tab = projector_tab
    tab.emulate_media(color_scheme=scheme, reduced_motion="reduce")
    tab.set_viewport_size({"width": width, "height": tall})
    titles = [t.strip() for t in tab.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
    assert set(TITLES) <= set(titles), titles
    found = {}
    for title in titles:
        _open(tab, title)   # the first one too: the page is laid out again at this size
        found[title] = _laid_out(tab, LAYOUT_CHECK)
        background = tab.evaluate("() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
        assert (background == "rgb(255, 255, 255)") == (scheme == "light"), (title, scheme, background)
        assert tab.locator('[data-testid="stException"]').count() == 0, (title, width, scheme)
        if width >= 1280:   # the wide layout on every page (a centred one keeps the main column to 736 px)
            assert tab.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"] > 0.6 * width, title
        if title == "Inspect an image":   # the lesson on one screen: the step buttons, the picture, every image's row
            step, strip = tab.get_by_role("button", name="step ▶").bounding_box(), tab.locator(".exit-strip").bounding_box()
            assert step["y"] < strip["y"] and strip["y"] + strip["height"] <= height, (width, height, step, strip)
        name = f"{title.split()[0].lower()}-{width}x{height}-{scheme}"
        tab.screenshot(path=str(shots / f"{name}-first-screen.png"), clip={"x": 0, "y": 0, "width": width, "height": height})
        if FULL_PAGE_SHOTS:   # the whole page too: a window up to 8,000 px tall, laid out again and photographed
            needed = tab.evaluate("() => Math.max(...[...document.querySelectorAll('section, div')].map(e => e.scrollHeight))")
            if needed > tall:
                tab.set_viewport_size({"width": width, "height": min(needed, 8000)})
                tab.wait_for_timeout(300)
            tab.screenshot(path=str(shots / f"{name}.png"))
            tab.set_viewport_size({"width": width, "height": tall})
    print(f"screenshots of every page at {width}x{height}: {shots}")
    assert {t: p for t, p in found.items() if p} == {}
    assert OUTSIDE == []


def test_projector_mode_folds_the_sidebar_enlarges_the_text_and_gives_each_chart_a_row(projector_tab, app_url):
    """?projector=1 (or the sidebar's toggle): the sidebar starts folded and gives its room back, the text is larger,
    Threshold and exits shows one chart per row, and nothing collides (screenshot kept in tests/screenshots/)."""
    tab = projector_tab
    tab.emulate_media(color_scheme="light", reduced_motion="reduce")
    tab.set_viewport_size({"width": 1024, "height": 768})
    tab.goto(app_url + "/dataset_exits?model=cifar10-boostnet&projector=1")   # a new session, as a link opens
    tab.wait_for_selector("h1:has-text('Threshold and exits')", timeout=60000)
    _wait_idle(tab)
    tab.wait_for_function("() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] svg.main-svg').length >= 3")
    tab.wait_for_timeout(600)   # the sidebar's folding and plotly's resize to the freed width
    assert tab.locator('[data-testid="stSidebar"]').get_attribute("data-collapsed") == "true"
    assert tab.evaluate("() => getComputedStyle(document.documentElement).fontSize") == "20px"
    assert tab.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"] > 1000   # the sidebar's room
    charts = [c.bounding_box() for c in tab.locator('[data-testid="stPlotlyChart"]').all()]
    assert len(charts) == 3, charts
    assert charts[0]["y"] + charts[0]["height"] <= charts[1]["y"] and charts[1]["y"] + charts[1]["height"] <= charts[2]["y"]
    assert tab.evaluate(LAYOUT_CHECK) == []
    (SHOTS / "projector").mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / "projector" / "threshold-1024x768-projector-mode.png"))
