"""Every page of the Streamlit app through streamlit.testing (no browser): renders, reacts, and reports bad input."""
import io
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, ambiguous_digit, share_apptest_work_once

sys.path.insert(0, str(REPO / "app"))
from streamlit.testing.v1 import AppTest  # noqa: E402
from session import ExitMode  # noqa: E402

share_apptest_work_once()

MNIST = str(REPO / "checkpoints" / "mnist5k-boostnet")
MNIST_JOINT = str(REPO / "checkpoints" / "mnist5k-joint")
PAGES = ["about", "inspect_image", "dataset_exits", "accuracy_cost", "compare_models", "train", "models"]


def page(name: str, model: str | None = MNIST) -> AppTest:
    at = AppTest.from_file(str(REPO / "app" / "views" / f"{name}.py"), default_timeout=120)
    if model:
        at.session_state["model"] = model
    return at


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def stat(at, label: str) -> str:
    """The value of the first figure `label` of Inspect's figure blocks (charts.stat_block, in markdown)."""
    import html
    import re
    for m in at.markdown:
        found = re.search(rf'class="stat-label"[^>]*>{re.escape(label)}(?: <span[^<]*</span>)?</div>'
                          r'<div class="stat-value"[^>]*>([^<]*)<', m.value)
        if found:
            return html.unescape(found.group(1))
    raise AssertionError(f"no figure {label!r} on the page")


def png_bytes(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_shipped_defaults(name):
    at = page(name, model=None).run()
    assert not at.exception, [e.value for e in at.exception]


def test_router_renders():
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception


def test_inspect_upload_shows_exit_and_threshold_changes_it():
    img, exit_low, exit_high = ambiguous_digit()
    from session import ExitSetting
    at = page("inspect_image")
    at.session_state["exit_setting"] = ExitSetting(threshold=0.0)
    at.run()
    assert at.expander[0].proto.expanded   # a first visit without uploads: the test-image picker is open
    at.file_uploader[0].set_value(("blend.png", png_bytes(np.asarray(img)), "image/png"))
    at.run()
    assert not at.exception and not at.error
    assert stat(at, "Exit taken") == f"{exit_low + 1} of 5"
    at.slider(key="exit_threshold").set_value(1.0).run()
    assert not at.exception
    assert stat(at, "Exit taken") == f"{exit_high + 1} of 5"
    assert at.expander[0].proto.expanded   # and stays open: an upload does not shut it at the next rerun
    scores = next(m.value for m in at.markdown if m.value.startswith("<div><svg") and "blend.png: the score of" in m.value)
    assert "threshold 1.00" in scores   # the image's score chart follows the threshold


def _svg(markup: str):
    import xml.etree.ElementTree as ET
    return ET.fromstring(markup.removeprefix("<div>").removesuffix("</div>"))


def test_score_bars_draw_the_exit_taken_the_threshold_beside_the_plot_and_per_exit_marks():
    from charts import EXIT_COLORS, NOT_TAKEN_COLOR, TAKEN_COLOR, THRESHOLD_COLOR, score_bars_svg
    names = [f"exit {k + 1}" for k in range(5)]
    scores = np.array([0.31, 0.55, 0.93, 0.97, 0.99])
    svg = _svg(score_bars_svg(names, scores, 2, 0.9, 1.0, "score of F_k: max-softmax", label="a <cat> & co"))
    assert svg.get("aria-label") == "a <cat> & co"   # escaped in the markup, read back as written
    bars = svg.findall("rect")
    assert [b.get("fill") for b in bars] == [NOT_TAKEN_COLOR] * 2 + [TAKEN_COLOR] + [NOT_TAKEN_COLOR] * 2
    assert TAKEN_COLOR not in EXIT_COLORS   # the exit taken never reads as a head's colour (the contribution panels)
    assert [b.find("title").text for b in bars][2] == "exit 3: score 0.930"
    heights = [float(b.get("height")) for b in bars]
    assert heights == sorted(heights) and heights[-1] / heights[0] == pytest.approx(0.99 / 0.31, rel=1e-2)
    label = next(t for t in svg.findall("text") if (t.text or "").startswith("threshold"))
    assert label.text == "threshold 0.90" and label.get("fill") == THRESHOLD_COLOR
    right_edge = max(float(b.get("x")) + float(b.get("width")) for b in bars)
    assert float(label.get("x")) > right_edge     # beside the plot, never on a bar's value
    line = next(l for l in svg.findall("line") if l.get("stroke-dasharray"))
    tops = [float(b.get("y")) for b in bars]     # SVG's y grows downwards: 0.93 above the line, 0.55 below it
    assert tops[2] < float(line.get("y1")) < tops[1]
    values = {t.text: t for t in svg.findall("text")}
    assert values["0.93"].get("fill") is None and float(values["0.93"].get("y")) < tops[2]    # above its bar
    near = _svg(score_bars_svg(names, np.array([0.3, 0.88, 0.5, 0.6, 0.7]), 1, 0.9, 1.0, "score"))
    struck = next(t for t in near.findall("text") if t.text == "0.88")   # the line would cross it: inside the bar
    assert struck.get("fill") == "white" and float(struck.get("y")) > float(near.findall("rect")[1].get("y"))   # white on the dark purple bar
    short = _svg(score_bars_svg(names, np.array([0.3, 0.05, 0.5, 0.6, 0.7]), 0, 0.06, 1.0, "score"))
    low = next(t for t in short.findall("text") if t.text == "0.05")     # too short to hold it: above the line
    line_y = float(next(l for l in short.findall("line") if l.get("stroke-dasharray")).get("y1"))
    assert low.get("fill") is None and float(low.get("y")) == pytest.approx(line_y - 4, abs=0.06)
    # Per-exit thresholds: one mark over each exit but the last; a patience beyond the top is drawn at the top.
    per_exit = _svg(score_bars_svg(names, np.array([0, 1, 2, 3, 4.0]), 4, np.array([2, 9, 9, 9, 9.0]), 4.0, "patience"))
    marks = [l for l in per_exit.findall("line") if l.get("stroke") == THRESHOLD_COLOR]
    assert len(marks) == 4 and [m.find("title").text for m in marks][1] == "exit 2: threshold 9.000"
    assert float(marks[1].get("y1")) < float(marks[0].get("y1")) and marks[1].get("y1") == marks[3].get("y1")


@pytest.mark.parametrize("payload, name, message", [
    (b"this is not an image", "bad.png", "is not a readable image"),
    (b"", "empty.png", "is empty"),
    (png_bytes(np.zeros((64, 64, 3), np.uint8))[:50], "truncated.png", "truncated.png is truncated: the file ends"),
])
def test_inspect_bad_upload_shows_error_and_page_keeps_working(payload, name, message):
    at = page("inspect_image").run()
    at.file_uploader[0].set_value((name, payload, "image/png"))
    at.run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert stat(at, "Exit taken").endswith("of 5")  # the data-set samples still render


def test_inspect_decompression_bomb():
    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, "PNG")
    at = page("inspect_image").run()
    at.file_uploader[0].set_value(("bomb.png", buf.getvalue(), "image/png"))
    at.run()
    assert not at.exception and any("megapixel" in e.value for e in at.error)


def test_dataset_threshold_changes_accuracy_and_cost():
    at = page("dataset_exits").run()
    assert not at.exception
    at.slider(key="exit_threshold").set_value(0.5).run()
    low = (metric(at, "Accuracy"), metric(at, "Average cost"))
    at.slider(key="exit_threshold").set_value(0.9999).run()
    high = (metric(at, "Accuracy"), metric(at, "Average cost"))
    assert not at.exception and low[1] != high[1]


def test_dataset_budget_mode():
    at = page("dataset_exits").run()
    at.radio(key="exit_mode").set_value(ExitMode.BUDGET).run()
    assert not at.exception
    at.slider(key="exit_budget").set_value(50).run()
    assert not at.exception
    cost = float(metric(at, "Average cost").split()[0])
    full = 5.34
    assert cost <= 0.5 * full * 1.05


def test_curves_with_reference_layer():
    at = page("accuracy_cost").run()
    at.multiselect(key="curve_models").set_value([MNIST, MNIST_JOINT])
    at.checkbox[0].check().run()
    assert not at.exception
    assert len(at.get("download_button")) == 2


def test_the_plot_download_is_drawn_at_the_click_one_panel_per_data_set(monkeypatch):
    """Accuracy vs cost's PNG is not drawn while the page runs; the function the download button keeps draws it,
    one panel per data set, bands, budgeted curves and operating points included."""
    import charts
    from streamlit.runtime.media_file_manager import MediaFileManager
    kept, drawn = [], []
    real = charts.curves_png
    monkeypatch.setattr(MediaFileManager, "add_deferred", lambda self, fn, *a, **k: kept.append(fn) or "deferred")
    monkeypatch.setattr(charts, "curves_png", lambda groups: drawn.append(groups) or real(groups))
    at = page("accuracy_cost")
    at.session_state["curve_models"] = [MNIST, MNIST_JOINT]
    at.run()
    assert not at.exception and drawn == [] and len(kept) == 1
    image = Image.open(io.BytesIO(kept[0]()))
    (groups,) = drawn
    assert image.format == "PNG" and image.size == (1040 * len(groups), 650)   # 8 x 5 inches per panel at 130 dpi
    bands = {"band": {"mean": [80.0, 85.0, 87.0], "sd": [0.5, 0.4, 0.3]},
             "budgeted": [{"avg_macs": 1.5e6, "top1": 83.0}, {"avg_macs": 2.5e6, "top1": 86.5}],
             "star": {"macs": 2e6, "top1": 85.0}}
    bare = {"name": "a", "color": "#1F77B4", "macs": [1e6, 2e6, 3e6], "top1": [80.0, 85.0, 87.0], "band": None,
            "budgeted": [], "star": None}
    assert Image.open(io.BytesIO(real({"MNIST": [dict(bare, **bands)], "CIFAR-10": [bare]}))).size == (2080, 650)


def _figures(at) -> list[dict]:
    import json
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_published_curves_one_chart_per_data_set_and_the_accuracy_axis_from_zero():
    """Issue 27, finding 4: the paper's CIFAR-100 (15-120 M MACs) and ImageNet (616-3,254 M) curves on one linear axis
    made CIFAR-100 a sliver; a zoomed accuracy axis made noise look like an effect."""
    at = page("accuracy_cost").run()
    at.checkbox[0].check().run()
    published = {f["layout"]["title"]["text"]: f for f in _figures(at) if "published" in f["layout"].get("title", {}).get("text", "")}
    assert set(published) == {"CIFAR-100 (published)", "ImageNet (published)"}
    top = {name: max(x for trace in f["data"] for x in trace["x"]) for name, f in published.items()}
    assert top["CIFAR-100 (published)"] < 200 < 600 < top["ImageNet (published)"]
    assert all("range" not in f["layout"]["yaxis"] or f["layout"]["yaxis"]["range"] != [0, 100] for f in _figures(at))
    at.toggle(key="curves_y_from_zero").set_value(True).run()
    assert all(f["layout"]["yaxis"]["range"] == [0, 100] for f in _figures(at))   # ours and the published ones


def test_compare_boostnet_and_joint():
    at = page("compare_models").run()
    at.selectbox(key="compare_a").set_value(MNIST)
    at.selectbox(key="compare_b").set_value(MNIST_JOINT).run()
    assert not at.exception
    assert any(m.label == "Different predictions" for m in at.metric)
    img, _, _ = ambiguous_digit()
    at.file_uploader(key="compare_uploads").set_value([("blend.png", png_bytes(np.asarray(img)), "image/png"),
                                                      ("broken.png", b"nope", "image/png")]).run()
    assert not at.exception
    assert any("broken.png" in e.value for e in at.error)
    assert any(m.label == "mnist5k-joint" for m in at.metric)


def test_models_page_loads_a_folder_and_rejects_a_non_checkpoint(digits_checkpoint, tmp_path):
    at = page("models").run()
    at.text_input[0].set_value(str(tmp_path))
    at.button[0].click().run()
    assert not at.exception and any("model.json is missing" in e.value for e in at.error)
    at.text_input[0].set_value(str(digits_checkpoint))
    at.button[0].click().run()
    assert not at.exception and any("Loaded" in s.value for s in at.success)


# ---------------------------------------------------------------- what a classroom walkthrough broke


def _ident(at) -> str:
    """The key suffix of the first image on the Inspect page (keys follow the image's content)."""
    return next(t.key.split("show_attr_")[1] for t in at.toggle if (t.key or "").startswith("show_attr_"))


def _figure(at, key: str) -> dict:
    """The figure of the chart with this key, as a plain dict (arrays as lists)."""
    import plotly.io
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}"))
    return plotly.io.from_json(chart.proto.spec).to_plotly_json()


def _svg_in(at, words: str):
    """The SVG chart of the first markdown element whose text contains `words`, parsed."""
    value = next(m.value for m in at.markdown if words in m.value)
    return _svg(value[value.index("<svg"): value.index("</svg>") + len("</svg>")])


def test_inspect_thumbnails_are_cached_by_their_pictures_not_their_place(monkeypatch):
    import images
    from images import picture_digest
    asked = []
    real = images.thumbnail_png
    monkeypatch.setattr(images, "thumbnail_png", lambda key, pixels, box=160: asked.append((key, pixels)) or real(key, pixels, box))
    page("inspect_image").run()                                     # MNIST: three test images and a class's page
    page("inspect_image", model=CIFAR).run()                        # CIFAR-10 in the same server process
    assert len(asked) >= 2 * (3 + 5)   # three images shown and a page of a class (5 in CIFAR-10's shipped sample)
    assert all(key == picture_digest(pixels) for key, pixels in asked)   # one cache for every model and session


def test_inspect_duplicate_names_extreme_shapes_and_odd_formats_never_break_the_page():
    gif = io.BytesIO()
    frames = [Image.new("RGB", (30, 30), c) for c in ("red", "blue")]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    deep = io.BytesIO()
    Image.fromarray((np.arange(28 * 28).reshape(28, 28) * 80).astype(np.uint16)).save(deep, "PNG")
    at = page("inspect_image").run()
    at.file_uploader[0].set_value([
        ("same.png", png_bytes(np.full((1, 300, 3), 200, np.uint8)), "image/png"),     # 1 x 300
        ("same.png", png_bytes(np.full((300, 1), 90, np.uint8)), "image/png"),          # 300 x 1, same name
        ("anim.gif", gif.getvalue(), "image/gif"),
        ("deep.png", deep.getvalue(), "image/png"),                                       # 16-bit grey
        ("notes.png", b"just some text, renamed", "image/png"),
        ("notes.png", b"another text", "image/png"),
        ("lesson.pdf", b"%PDF-1.4 a lesson plan", "application/pdf"),   # the uploaders take every type
    ]).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    uploaded = [c.rsplit(" (", 1)[0] for c in captions if c and not c.startswith(("test #", "#"))]   # "#i": the gallery
    assert uploaded[:4] == ["same.png (1)", "same.png (2)", "anim.gif", "deep.png"]
    assert "same.png (1) (300x1)" in captions and "same.png (2) (1x300)" in captions
    infos = [i.value for i in at.info]
    assert "2 files are named same.png; they are shown as same.png (1) to (2)." in infos
    assert "same.png (1) is 300x1 pixels, smaller than the model's 28x28 input; it was resized to 28x28, so the model sees little detail." in infos
    errors = [e.value for e in at.error]   # named as the note promises (issue 27, finding 9), a PDF in a sentence
    assert [e.split(" is ")[0] for e in errors] == ["notes.png (1)", "notes.png (2)", "lesson.pdf"], errors
    assert all("is not a readable image" in e and "BytesIO" not in e and "Pillow" not in e for e in errors)
    assert "(JPEG, PNG, WebP, BMP, GIF or TIFF)" in errors[2]
    assert all(img.proto.imgs[0].url for img in at.get("image"))  # every thumbnail drew


def test_inspect_attribution_follows_the_chosen_exit_and_method():
    at = page("inspect_image").run()
    ident = _ident(at)
    taken = int(stat(at, "Exit taken").split()[0]) - 1
    assert at.selectbox(key=f"exit_{ident}").value == taken                      # first the exit the image took
    at.slider(key="exit_threshold").set_value(1.0).run()                         # then left alone by the threshold
    assert stat(at, "Exit taken") == "5 of 5" and at.selectbox(key=f"exit_{ident}").value == taken
    at.selectbox(key=f"exit_{ident}").set_value(2).run()
    of = at.selectbox(key=f"of_{ident}_2")
    assert of.value is None and of.options[0] == "F_3, the exit's logit"
    assert of.options[-1] == "head 3's contribution to exit 3"
    at.radio(key=f"method_{ident}").set_value("saliency").run()
    assert not at.exception
    chart = _svg_in(at, 'aria-label="Saliency of F_3 for class')
    texts = [t.text for t in chart.iter("{http://www.w3.org/2000/svg}text")] or [t.text for t in chart.iter("text")]
    assert texts[0].startswith("Saliency of F_3 for class") and "attribution" in texts


def test_inspect_joint_heads_with_zero_weight_are_explained_not_blank():
    at = page("inspect_image", model=MNIST_JOINT).run()
    ident = _ident(at)
    at.selectbox(key=f"exit_{ident}").set_value(3).run()
    at.selectbox(key=f"of_{ident}_3").set_value(1).run()
    assert not at.exception and any("adds nothing to exit 4" in i.value for i in at.info)


def test_inspect_digit_classes_are_categories_in_score_order():
    at = page("inspect_image").run()
    last = _svg_in(at, "what each head adds to the top classes").findall("g")[-1]          # F of the last exit: its top 3 classes, best first, named
    sums = [float(p.find("title").text.rsplit("= ", 1)[1]) for p in last.findall("path")]
    assert len(sums) == 3 and sums == sorted(sums, reverse=True)
    labels = [t.text for t in last.findall("text")[1:]]
    assert labels == [p.find("title").text.split(":")[0] for p in last.findall("path")] and all(l.isdigit() for l in labels)


def test_top_classes_table_escapes_names_and_keeps_one_column_per_exit():
    import xml.etree.ElementTree as ET
    from charts import top_classes_table
    table = ET.fromstring(top_classes_table(["exit 1", "exit 2"], [[("<cat>", 0.7), ("dog", 0.2)],
                                                                    [("dog", 0.6), ("<cat>", 0.3)]]))
    rows = [[c.text for c in r] for r in table.iter("tr")]
    assert rows == [["rank", "exit 1", "exit 2"], ["1st", "<cat> (0.70)", "dog (0.60)"], ["2nd", "dog (0.20)", "<cat> (0.30)"]]


def test_stat_block_draws_each_figure_escaped_with_its_help():
    import xml.etree.ElementTree as ET
    from charts import stat_block
    block = ET.fromstring(stat_block([("Exit taken", "2 of 5", "score 0.9"), ("Prediction", "<cat> & co", "")],
                            helps={"Exit taken": 'first "exit" is 1'}))
    labels = [d for d in block.iter("div") if d.get("class") == "stat-label"]
    values = [d.text for d in block.iter("div") if d.get("class") == "stat-value"]
    assert [d.text.strip() for d in labels] == ["Exit taken", "Prediction"] and values == ["2 of 5", "<cat> & co"]
    assert labels[0].get("title") == 'first "exit" is 1' and labels[1].get("title") is None
    assert [d.text for d in block.iter("div") if d.get("class") == "stat-note"] == ["score 0.9"]   # no empty note


def test_attribution_svg_lays_the_map_over_the_picture_pixel_for_pixel():
    import base64
    from charts import ATTRIBUTION_OPACITY, attribution_svg, inferno
    view = np.full((4, 6, 3), 100, np.uint8)
    heat = np.zeros((4, 6))
    heat[1, 2] = 5.0                                    # one hot pixel: at or above the 99th percentile, so 1
    svg = _svg(attribution_svg(view, heat, "Grad-CAM of F_2 for class 'a<b'", size=240))
    ns = "{http://www.w3.org/2000/svg}"
    images = list(svg.iter("image")) or list(svg.iter(ns + "image"))
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(images[0].get("href").split(",", 1)[1]))))
    assert picture.shape == (4, 6, 3) and images[0].get("height") == "160"      # 240 x 160: the picture's shape
    hot = ATTRIBUTION_OPACITY * inferno(np.array(1.0)) + (1 - ATTRIBUTION_OPACITY) * 100
    cold = ATTRIBUTION_OPACITY * inferno(np.array(0.0)) + (1 - ATTRIBUTION_OPACITY) * 100
    assert np.abs(picture[1, 2] - hot).max() <= 0.5 and np.abs(picture[0, 0] - cold).max() <= 0.5
    texts = [t.text for t in svg.iter("text")]
    assert texts[0] == "Grad-CAM of F_2 for class 'a<b'" and "attribution" in texts and "top 1%" in texts


def test_contribution_panels_stack_each_head_to_the_exit_logit():
    from types import SimpleNamespace
    import torch
    from charts import EXIT_COLORS, contribution_panels
    net = SimpleNamespace(num_exits=2, classes=["ant", "bee", "cat", "dog"], reweight=0.5)
    f1 = torch.tensor([[1.0, 3.0, 0.5, 2.0]])
    heads = torch.cat([0.5 * f1, torch.tensor([[2.0, -1.0, 0.2, 0.4]])])     # w f_1 and f_2: F_2 = their sum
    t = {"contributions": [f1, heads], "exit_logits": [f1[0], heads.sum(0)]}
    first, second = _svg(contribution_panels(t, net, 300)).findall("g")
    assert [x.text for x in first.findall("text")[1:]] == ["bee", "dog", "ant"]
    assert [x.text for x in second.findall("text")[1:]] == ["ant", "dog", "bee"]   # F_2 = 2.5, 1.4, 0.5 (cat 0.45)
    rects = second.findall("rect")
    assert [r.get("fill") for r in rects] == [EXIT_COLORS[0], EXIT_COLORS[1]] * 3
    assert "ant: head 1 (x0.5) adds 0.50" == rects[0].find("title").text
    top, bottom = (lambda r: float(r.get("y"))), (lambda r: float(r.get("y")) + float(r.get("height")))
    assert bottom(rects[1]) == pytest.approx(top(rects[0]), abs=0.11)     # ant: f_2 (+2.0) stacked on w f_1 (+0.5)
    tip = float(second.findall("path")[0].get("d").split()[1])            # the diamond's centre is 6 px below its tip
    assert tip + 6 == pytest.approx(top(rects[1]), abs=0.11)              # at F_2, the top of the stack
    bee_w1, bee_f2 = rects[4], rects[5]                                  # +1.5 up from 0, -1.0 down from 0
    assert top(bee_f2) == pytest.approx(bottom(bee_w1), abs=0.11)
    assert float(bee_f2.get("height")) == pytest.approx(float(bee_w1.get("height")) / 1.5, abs=0.11)
    # An overflowed logit draws the rest on a finite scale instead of failing.
    t["exit_logits"][1][0], t["contributions"][1][1, 0] = float("inf"), float("inf")
    assert len(_svg(contribution_panels(t, net, 300)).findall("g")) == 2


def test_cached_results_see_a_re_evaluated_checkpoint(tmp_path):
    import json
    import os
    import shutil
    import store
    folder = tmp_path / "m"
    shutil.copytree(MNIST_JOINT, folder)
    before = store.results(str(folder))["anytime"]["top1"][0]
    data = json.loads((folder / "evaluation.json").read_text())
    data["anytime"]["top1"][0] = before - 50
    (folder / "evaluation.json").write_text(json.dumps(data))
    stamp = (folder / "evaluation.json").stat().st_mtime + 10
    os.utime(folder / "evaluation.json", (stamp, stamp))
    assert store.results(str(folder))["anytime"]["top1"][0] == before - 50


def test_budget_mode_is_remembered_across_pages_and_drives_the_operating_point():
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
    at.session_state["model"] = MNIST
    at.run()
    at.switch_page("views/dataset_exits.py").run()
    at.radio(key="exit_mode").set_value(ExitMode.BUDGET).run()
    at.slider(key="exit_budget").set_value(45).run()
    at.switch_page("views/accuracy_cost.py").run()
    at.multiselect(key="curve_models").set_value([MNIST, MNIST_JOINT]).run()
    assert not at.exception
    caption = " ".join(c.value for c in at.caption)
    assert "fitted to 45% of the full MACs" in caption and "Data set page" not in caption
    fig = _figure(at, "curves_mnist5k")
    stars = [t for t in fig["data"] if t.get("marker", {}).get("symbol") == "star"]
    assert len(stars) == 2 and all(t["x"][0] <= 0.45 * 5.34 * 1.02 for t in stars)  # MNIST: 5.34 M MACs in full
    at.switch_page("views/dataset_exits.py").run()
    assert at.radio(key="exit_mode").value is ExitMode.BUDGET
    assert at.slider(key="exit_budget").value == 45


def test_gallery_data_root_that_does_not_exist_says_so():
    at = page("dataset_exits", model=str(REPO / "checkpoints" / "cifar10-boostnet")).run()
    key = next(t.key for t in at.text_input if t.key and t.key.startswith("root_"))
    at.text_input(key=key).set_value("/no/such/folder").run()
    assert not at.exception and any("/no/such/folder" in i.value and "does not exist" in i.value for i in at.info)


def test_compare_gallery_filters_and_pages():
    at = page("compare_models").run()
    at.selectbox(key="compare_a").set_value(MNIST)
    at.selectbox(key="compare_b").set_value(MNIST_JOINT).run()
    at.radio(key="gallery_kind").set_value("Only mnist5k-boostnet right").run()
    assert not at.exception
    only_a = int(next(m.value for m in at.metric if m.label == "Only mnist5k-boostnet right"))
    shown = [m for m in at.markdown if m.value.startswith("#")]
    assert len(shown) == min(only_a, 12) and all("A: " in m.value and "✓" in m.value.split("A: ")[1].split("\n")[0] for m in shown)
    fig = _figure(at, "cmp_mismatch")
    assert len(fig["data"]) == 4  # two models x (all samples, samples that reach the exit)


def test_about_page_states_the_model_and_the_project_results():
    at = page("about").run()
    assert not at.exception
    assert any(r"w\,F_{n-1}" in l.value for l in at.latex)
    assert any("not distinguishable from noise" in m.value or "ahead" in m.value for m in at.markdown)


def test_train_page_one_run_at_a_time_and_stop(tmp_path, monkeypatch):
    import time
    import store
    monkeypatch.setattr(store, "RUNS", tmp_path)   # read by the page on every run (BOOSTNET_RUNS only at import)
    import threading
    import torch
    threads_before = torch.get_num_threads()
    at = page("train", model=None).run()
    at.number_input(key="train_epochs").set_value(50)
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    assert at.button(key="train_start").disabled and not at.button(key="train_stop").disabled
    # A reload of the page (a new session) reconnects to the run going on (issue 27, finding 5), and can stop it.
    reloaded = page("train", model=None).run()
    assert reloaded.session_state["train_job"] is job and any("training run is going on" in i.value for i in reloaded.info)
    assert not reloaded.button(key="train_stop").disabled
    at.button(key="train_stop").click().run()
    for _ in range(100):
        if not job.alive:
            break
        time.sleep(0.1)
    assert [r.status for r in job.runs] == ["stopped", "stopped"]
    # The job's one-thread setting did not outlive it: Streamlit runs every rerun in a new thread, which would
    # inherit it (torch's thread count is per thread, new threads take the last one set).
    seen = []
    probe = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    probe.start()
    probe.join()
    assert seen == [threads_before]
    assert "Stopped during epoch" in job.runs[0].message and "Not started" in job.runs[1].message


def test_models_trained_on_the_train_page_are_shown_by_every_page_and_offered_to_every_session(
        digits_checkpoint, tmp_path, monkeypatch):
    """What the Train page's message promises, page by page (the browser test trains for real with two tabs open and
    checks the pickers of both). Here each run "trains" by copying a finished digits run, then is evaluated as usual:
    what the pages do with finished runs is under test, not the training (tests/test_training.py)."""
    import json
    import shutil
    from pathlib import Path
    import store
    from boostnet_core import training

    def copy_a_finished_run(cfg, on_epoch, stop):
        shutil.copytree(digits_checkpoint, cfg.out, dirs_exist_ok=True)
        for line in (digits_checkpoint / "train_log.jsonl").read_text().splitlines():
            on_epoch(json.loads(line))
    monkeypatch.setattr(training, "train", copy_a_finished_run)
    monkeypatch.setattr(store, "RUNS", tmp_path)
    router = str(REPO / "app" / "streamlit_app.py")
    other = AppTest.from_file(router, default_timeout=120).run()      # another session, open before the training
    at = AppTest.from_file(router, default_timeout=120).run()
    at.switch_page("views/train.py").run()
    at.number_input(key="train_epochs").set_value(3)   # the epochs of the copied run
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    job.thread.join(timeout=120)
    at.run()
    boostnet, joint = (str(live.folder) for live in job.runs)
    assert [live.status for live in job.runs] == ["done", "done"] and not at.exception
    shown = {"views/inspect_image.py": lambda: at.selectbox(key="_model_widget").value == boostnet,
             "views/dataset_exits.py": lambda: at.selectbox(key="_model_widget").value == boostnet,
             "views/accuracy_cost.py": lambda: at.multiselect(key="curve_models").value == [boostnet, joint],
             "views/compare_models.py": lambda: (at.selectbox(key="compare_a").value,
                                                 at.selectbox(key="compare_b").value) == (boostnet, joint),
             "views/models.py": lambda: all(any(e.label.startswith(Path(f).name + ":") for e in at.expander)
                                            for f in (boostnet, joint))}
    for view, shows_the_new_models in shown.items():
        at.switch_page(view).run()
        assert not at.exception and shows_the_new_models(), view
    other.switch_page("views/inspect_image.py").run()
    assert {Path(boostnet).name, Path(joint).name} <= set(other.selectbox(key="_model_widget").options)  # its labels
    assert not other.exception


# ---------------------------------------------------------------- a class on a fresh clone (issue 19)

CIFAR = str(REPO / "checkpoints" / "cifar10-boostnet")
CIFAR_JOINT = str(REPO / "checkpoints" / "cifar10-joint")


def test_shipped_sample_is_the_test_split_it_names():
    """assets/cifar10-sample: 5 test images per class, each the pixels of the test index it records (where the
    development copy of CIFAR-10 is here), and the labels the shipped model's evaluation cache has for them."""
    import json
    from conftest import CIFAR10_JPG
    from images import SAMPLE, shipped_sample
    index, tiles = shipped_sample()
    assert (SAMPLE / "images.png").stat().st_size < 300_000 and tiles.shape == (50, 3, 32, 32)
    entries = json.loads((SAMPLE / "index.json").read_text())["images"]
    classes = [e["class"] for e in entries]
    assert all(classes.count(c) == 5 for c in index["classes"])
    from boostnet_core.evaluation import load_cache
    labels = load_cache(CIFAR)["test"].labels.numpy()
    assert [index["classes"][labels[e["test_index"]]] for e in entries] == classes
    if CIFAR10_JPG.is_dir():
        for e, tile in list(zip(entries, tiles))[::7]:
            from boostnet_core.data import decode_to_array, open_image
            assert np.array_equal(decode_to_array(open_image(CIFAR10_JPG / e["file"]), 32, 3), tile)


def test_without_the_data_the_picker_and_galleries_use_the_shipped_sample(monkeypatch):
    monkeypatch.setenv("BOOSTNET_DATA_ROOT", "/no/such/folder")
    at = page("inspect_image", model=CIFAR).run()
    assert not at.exception
    assert "shipped with the app" in at.expander[0].label
    shown = [img.proto.imgs[0].caption for img in at.get("image") if img.proto.imgs[0].caption.startswith("test #")]
    assert len(shown) == 3 and len({c.split("true: ")[1] for c in shown}) == 3      # three different classes
    at.selectbox(key=f"browse_{CIFAR}").set_value("cat").run()
    at.pills(key=f"add_{CIFAR}").set_value(3200).run()                              # a thumbnail's button adds it
    assert at.pills(key=f"add_{CIFAR}").value is None                                # cleared for the next click
    assert 3200 in at.multiselect(key=f"samples_{CIFAR}").value and not at.exception
    from images import shipped_sample
    other = int(shipped_sample()[0]["images"][-1]["test_index"])
    at.number_input(key=f"number_{CIFAR}").set_value(other).run()                     # or typed by its number
    picker = at.multiselect(key=f"samples_{CIFAR}")
    assert picker.value[-2:] == [3200, other] and picker.options == [picker.format_func(i) for i in picker.value]
    assert at.number_input(key=f"number_{CIFAR}").value is None                     # cleared for the next one
    missing = next(i for i in range(10000) if i not in {e["test_index"] for e in shipped_sample()[0]["images"]})
    at.number_input(key=f"number_{CIFAR}").set_value(missing).run()
    assert f"Test image #{missing} is not among the 50 shipped with the app" in " ".join(i.value for i in at.info)
    assert len(at.multiselect(key=f"samples_{CIFAR}").value) == 5 and not at.exception
    at.number_input(key=f"number_{CIFAR}").set_value(other).run()
    assert f"Test image #{other} is already shown." in " ".join(i.value for i in at.info)
    at.number_input(key=f"number_{CIFAR}").set_value(20000).run()
    assert "There is no test image #20000: the numbers run from 0 to 9999." in " ".join(i.value for i in at.info)
    at = page("dataset_exits", model=CIFAR).run()
    assert not at.exception and any("shipped with the app" in i.value for i in at.info)
    assert any(c.value.startswith("#") for c in at.caption)                          # the gallery has images
    at = page("compare_models").run()
    assert not at.exception and any("disagreements among the 50 CIFAR-10 test images" in i.value for i in at.info)


def test_one_exit_setting_for_every_page_and_uploads_survive_page_switches():
    from boostnet_core.evaluation import load_cache
    from boostnet_core.thresholds import outcome_at
    from session import ExitSetting
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
    at.session_state["model"] = MNIST
    at.run()
    at.switch_page("views/inspect_image.py").run()
    at.slider(key="exit_threshold").set_value(0.5).run()
    img, _, _ = ambiguous_digit()
    at.file_uploader[0].set_value([("blend.png", png_bytes(np.asarray(img)), "image/png")]).run()
    at.switch_page("views/compare_models.py").run()
    at.selectbox(key="compare_a").set_value(MNIST)
    at.selectbox(key="compare_b").set_value(MNIST_JOINT).run()
    assert at.slider(key="exit_threshold").value == 0.5 and not at.exception
    caches = [load_cache(p)["test"] for p in (MNIST, MNIST_JOINT)]
    from boostnet_core import load_model
    want = [f"{outcome_at(c, 0.5, load_model(p).macs).top1:.2f}%" for c, p in zip(caches, (MNIST, MNIST_JOINT))]
    assert [metric(at, "A: accuracy"), metric(at, "B: accuracy")] == want
    assert any(m.label == "mnist5k-joint" for m in at.metric)                        # the upload, through both models
    at.slider(key="exit_threshold").set_value(0.7).run()                             # set on Compare ...
    at.switch_page("views/inspect_image.py").run()
    assert at.slider(key="exit_threshold").value == 0.7                              # ... used on Inspect
    assert at.session_state["exit_setting"] == ExitSetting(threshold=0.7)
    assert any(c.value.startswith("1 uploaded image kept") for c in at.caption)
    assert any(img.proto.imgs[0].caption.startswith("blend.png") for img in at.get("image"))


def test_upload_limit_tiny_images_and_truncated_files_each_say_one_sentence():
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    jpeg_bytes = buf.getvalue()
    at = page("inspect_image").run()
    at.file_uploader[0].set_value([
        ("huge.png", b"\x89PNG" + bytes(21 * 10**6 - 4), "image/png"),   # 21.0 MB as the uploader counts them
        ("pixel.png", png_bytes(np.array([[[255, 0, 0]]], np.uint8)), "image/png"),
        ("cut.jpg", jpeg_bytes[: len(jpeg_bytes) // 2], "image/jpeg"),
    ]).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert "huge.png is 21.0 MB, over the app's 20 MB limit per image; it was not read." in errors
    assert "cut.jpg is truncated: the file ends before the image does." in errors     # no nested brackets
    assert any(i.value.startswith("pixel.png is 1x1 pixels, smaller than the model's") for i in at.info)
    assert stat(at, "Exit taken").endswith("of 5")                                 # the 1x1 image is shown


# ---------------------------------------------------------------- exit criteria and certified thresholds (issue 18)


def test_criterion_selector_drives_the_outcome_and_persists_across_pages():
    from boostnet_core import load_model
    from boostnet_core.criteria import prepare
    from boostnet_core.evaluation import load_cache
    from boostnet_core.thresholds import outcome_at
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
    at.session_state["model"] = MNIST
    at.run()
    at.switch_page("views/dataset_exits.py").run()
    at.selectbox(key="exit_criterion").set_value("entropy").run()
    at.slider(key="exit_threshold").set_value(0.5).run()
    assert not at.exception
    criterion, scored = prepare(load_cache(MNIST), "entropy", MNIST)
    want = outcome_at(scored["test"], 0.5, load_model(MNIST).macs, criterion.score_range)
    assert metric(at, "Accuracy") == f"{want.top1:.2f}%"
    at.switch_page("views/inspect_image.py").run()
    assert at.selectbox(key="exit_criterion").value == "entropy" and not at.exception
    assert any("1 − normalised entropy" in m.value for m in at.markdown)
    at.selectbox(key="exit_criterion").set_value("patience").run()                  # an integer threshold: t exits
    at.slider(key="exit_patience").set_value(2).run()
    assert not at.exception and at.session_state["exit_setting"].threshold == 2


def test_certified_mode_states_the_guarantee_the_test_risk_and_the_cost_saved():
    from boostnet_core.calibration import calibrate_checkpoint, reliability
    from boostnet_core.evaluation import load_cache
    at = page("dataset_exits").run()
    at.radio(key="exit_mode").set_value(ExitMode.CERTIFIED).run()
    at.number_input(key="exit_epsilon").set_value(0.05).run()
    assert not at.exception
    want = calibrate_checkpoint(MNIST, "disagreement", 0.05, 0.1, "max_softmax")
    assert metric(at, "Risk seen (test split)") == f"{100 * want['test']['risk']:.2f}%"   # in percent, as epsilon
    assert metric(at, "MACs saved") == f"{100 * (1 - want['test']['cost_ratio']):.1f}%"
    assert any(m.value.startswith("**The guarantee**: with probability at least 90% over the") for m in at.markdown)
    at.toggle(key="show_reliability").set_value(True).run()
    title = _figure(at, "reliability_0")["layout"]["title"]["text"]   # one figure per exit, ECE in percent
    assert title == f"exit 1: ECE {100 * reliability(load_cache(MNIST)['test'])[0]['ece']:.1f}%"
    at2 = page("compare_models")   # the mode is the session's: another page of it is certified too
    at2.session_state["exit_setting"] = at.session_state["exit_setting"]
    at2.run()
    assert not at2.exception and at2.radio(key="exit_mode").value is ExitMode.CERTIFIED


def test_a_mistyped_model_link_says_so_in_a_sentence():
    """Issue 27, finding 7: ?model=mnist5k-boostnett showed cifar10-boostnet without a word."""
    at = AppTest.from_file(str(REPO / "app" / "views" / "dataset_exits.py"), default_timeout=120)
    at.query_params["model"] = "mnist5k-boostnett"
    at.run()
    assert not at.exception
    (warning,) = [w.value for w in at.warning if "mnist5k-boostnett" in w.value]
    assert warning.startswith("There is no model named 'mnist5k-boostnett' here") and "mnist5k-boostnet," in warning
    at = AppTest.from_file(str(REPO / "app" / "views" / "dataset_exits.py"), default_timeout=120)
    at.query_params["model"] = "mnist5k-boostnet"
    at.run()
    assert not [w for w in at.warning if "no model named" in w.value] and at.session_state["model"] == MNIST


def test_a_reload_of_the_tab_keeps_the_exit_setting_the_uploads_and_the_projector_mode():
    """Issue 27, finding 5: a refresh dropped the uploads and reset the threshold. The router names the tab in the
    address (?tab=...); a new session opened at that address (what a reload is) takes the tab's values back, and a
    session at another address does not."""
    from session import ExitSetting
    first = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
    first.session_state["exit_setting"] = ExitSetting(threshold=0.75)
    first.session_state["uploads"] = [("cat.png", b"...")]
    first.run()
    tab = first.query_params["tab"]
    tab = tab[0] if isinstance(tab, list) else tab
    first.toggle(key="projector_mode").set_value(True).run()
    reloaded = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
    reloaded.query_params["tab"] = tab
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.session_state["exit_setting"].threshold == 0.75
    assert reloaded.session_state["uploads"] == [("cat.png", b"...")]
    assert reloaded.session_state["projector_mode"] is True
    other = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert "uploads" not in other.session_state and other.query_params["tab"] != first.query_params["tab"]


# ---------------------------------------------------------------- the classroom (issue 27)


def test_network_picture_is_drawn_from_the_model_blocks_scales_heads_and_what_an_exit_skips():
    import xml.etree.ElementTree as ET
    from boostnet_core import load_model
    from network_svg import describe, network_svg
    net = load_model(MNIST)
    pic = describe(net)
    cfg = net.backbone.cfg
    assert pic.kind == "MSDNet" and len(pic.rows) == cfg.n_scales and pic.rows[0] == "scale 1 (28x28)"
    assert max(c.col for c in pic.cells) + 1 == cfg.n_blocks
    # Every block's own MACs plus the heads' add up to the cost of the last exit (model.macs, the paper's count).
    assert sum(c.macs for c in pic.cells if c.macs >= 0) + sum(pic.head_macs) == pytest.approx(net.macs[-1], rel=1e-6)
    svg = ET.fromstring(network_svg(pic, taken=1, marks={1: "A, C"}))
    rects = svg.findall("rect")
    heads = [r for r in rects if "head" in r.get("class")]
    assert [("taken" in h.get("class"), "skipped" in h.get("class")) for h in heads] == \
        [(False, False), (True, False)] + [(False, True)] * (cfg.n_blocks - 2)
    blocks = [r for r in rects if "block" in r.get("class")]
    assert {"skipped" in b.get("class") for b in blocks if "block 1:" in b.find("title").text} == {False}
    assert {"skipped" in b.get("class") for b in blocks if "block 5:" in b.find("title").text} == {True}
    assert any(t.text == "A, C" for t in svg.findall("text"))
    # RANet: its flows as rows, each exit's head where the exit plan puts it; an exit skips the later flows' blocks.
    from types import SimpleNamespace
    from boostnet_core.macs import exit_macs
    from boostnet_core.models.ranet import RANet, RANetConfig
    backbone = RANet(RANetConfig(n_blocks=1, block_step=1, step=1, n_channels=8, growth_rate=8, scale_list=(1, 2, 2),
                                 gr_factor=(2, 1, 1), bn_factor=(2, 1, 1), head_channels=8))
    ranet = SimpleNamespace(backbone=backbone, input_shape=(3, 16, 16), macs=exit_macs(backbone, (3, 16, 16)),
                            num_exits=backbone.num_exits)   # a small RANet: describe() reads only these
    rpic = describe(ranet)
    assert rpic.kind == "RANet" and len(rpic.rows) == len(ranet.backbone.cfg.scale_list)
    assert rpic.head_at == ranet.backbone.exit_plan
    assert {c.needed_by for c in rpic.cells if c.row == 0} <= {0, 1} and max(c.needed_by for c in rpic.cells) == ranet.num_exits - 1


def test_inspect_step_and_play_sweep_the_threshold_and_the_strip_follows(monkeypatch):
    """Issue 27, finding 3: step buttons move the threshold by 0.05; play sweeps it, one step per fragment run, and
    every shown image's line in the strip follows; at the end it stops and the sidebar's slider shows the value."""
    import re
    import player
    from session import ExitSetting
    at = page("inspect_image")
    at.session_state["exit_setting"] = ExitSetting(threshold=0.5)
    at.run()
    strip = lambda: next(m.value for m in at.markdown if 'class="exit-strip"' in m.value)   # noqa: E731
    exits = lambda: re.findall(r"(\d) of 5(?:<br>|</td>)", strip())   # noqa: E731
    assert len(exits()) == 3                                 # one line per image shown
    at.button(key="player_forward").click().run()
    assert at.session_state["exit_setting"].threshold == 0.55 and at.slider(key="exit_threshold").value == 0.55
    at.button(key="player_back").click().run()
    at.button(key="player_back").click().run()
    assert at.session_state["exit_setting"].threshold == 0.45
    monkeypatch.setattr(player, "PLAY_SECONDS", 0.0)          # a step at every run, not once per 0.9 s
    at.session_state["exit_setting"] = ExitSetting(threshold=0.8)   # from 0.8: four steps to the end
    at.run()
    seen = {tuple(exits())}
    at.button(key="player_play").click().run()   # each step runs the page again: here, with no wait, to the end
    seen.add(tuple(exits()))
    for _ in range(8):
        if not at.session_state["player_playing"]:
            break
        at.run()
        seen.add(tuple(exits()))
    assert not at.session_state["player_playing"] and at.session_state["exit_setting"].threshold == 1.0
    assert at.slider(key="exit_threshold").value == 1.0 and not at.exception
    assert len(seen) > 1 and ("5", "5", "5") in seen         # the images' exits changed, all at the last one at 1.0


def test_inspect_says_what_the_network_sees_its_classes_and_a_photo_far_from_its_training_data():
    """Issue 27, finding 10: the class list and input size, each upload at the input size beside it, and a note
    when a picture is far from the training data (a white page for MNIST's light-on-black digits; a huge photo)."""
    at = page("inspect_image").run()
    assert any(c.value.startswith("This model knows 10 classes: 0, 1, 2") and "28x28 pixels, in grey" in c.value
               for c in at.caption)
    at.file_uploader[0].set_value([("page.png", png_bytes(np.full((28, 28, 3), 250, np.uint8)), "image/png"),
                                   ("photo.png", png_bytes(np.full((600, 400, 3), 20, np.uint8)), "image/png")]).run()
    assert not at.exception
    strip = next(m.value for m in at.markdown if 'class="exit-strip"' in m.value)
    assert "Far from the training data: much brighter" in strip and "MNIST digits are light strokes" in strip
    assert "Far from the training data: a 400x600 picture shrunk to 28x28, 21 times smaller" in strip
    captions = [c for img in at.get("image") for c in [i.caption for i in img.proto.imgs]]
    assert "what the network sees (28x28)" in captions
    assert strip.count("<img ") == 2 * 5                       # each image and its view at the input size


def test_gallery_rows_never_show_one_image_twice():
    import importlib.util
    spec = importlib.util.spec_from_file_location("gallery_rows_only", REPO / "app" / "views" / "dataset_exits.py")
    source = (REPO / "app" / "views" / "dataset_exits.py").read_text()
    code = source[source.index("def gallery_rows("):source.index('st.subheader("Gallery')]
    space = {"np": np}
    exec(compile(code, str(spec.origin), "exec"), space)
    for n in (1, 5, 6, 15, 16, 40):
        order = np.arange(n)
        most, least = space["gallery_rows"](order)
        assert not set(most) & set(least) and len(most) <= 8 and len(least) <= 8
        assert list(most) == list(order[:len(most)]) and (n < 2 or len(least) > 0)
        assert list(least) == sorted(least, reverse=True)   # the least confident first


def test_inspect_with_many_uploads_keeps_the_picker_a_few_lines_below_the_uploader():
    """Issue 27, finding 6: with six uploads the test-image picker sat below every result (screen 9 of 14). Now the
    strip comes first with a line per image, then the uploader, the uploads folded to one line each, the picker, and
    the test images' details."""
    at = page("inspect_image").run()
    at.file_uploader[0].set_value([(f"u{i}.png", png_bytes(np.full((28, 28), 40 * i, np.uint8)), "image/png")
                                   for i in range(6)]).run()
    at.run()   # an upload reruns only its fragment; the next full run draws the picker and the test images again
    assert not at.exception
    labels = [e.label for e in at.expander]
    picker = "Pick test images from the model's test split"
    assert [label.split(":")[0] for label in labels] == [f"U{i}" for i in range(1, 7)] + [picker, "T1", "T2", "T3"]
    assert [label.split(", ")[0].split(": ")[1] for label in labels[:6]] == [f"u{i}.png" for i in range(6)]
    assert not any(e.proto.expanded for e in at.expander[:6])   # six uploads: each one line until opened
    strip = next(m.value for m in at.markdown if 'class="exit-strip"' in m.value)
    assert strip.count("<tr ") == 1 + 9   # the header and one line per image

def test_inspect_says_in_words_that_the_last_exit_takes_an_image_below_the_threshold():
    """Issue 27, finding 3: at threshold 0.95 a cat left at exit 5 with score 0.87, below the red line, and why was
    behind a '?'. The strip and the image's figures now say it."""
    from session import ExitSetting
    at = page("inspect_image")
    at.session_state["exit_setting"] = ExitSetting(threshold=1.0)   # no score reaches 1.0: every image runs to the end
    at.run()
    strip = next(m.value for m in at.markdown if 'class="exit-strip"' in m.value)
    assert strip.count("5 of 5<br>") == 3 and strip.count("below the threshold: the last exit takes the rest") == 3
    assert any("below the threshold, but the last exit takes every image that reaches it" in m.value for m in at.markdown)
