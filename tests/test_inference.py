"""Real early exit, per-sample traces, image preprocessing, and `boostnet predict`."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from boostnet_core import create_model
from boostnet_core.cli import main
from boostnet_core.evaluation import assign_exits
from boostnet_core.early_exit import predict_early
from boostnet_core.inference import preprocess_image, trace


def _thresholds_between_samples(conf):
    """Per-exit thresholds at midpoints between sample confidences (no sample sits on a threshold)."""
    t = []
    for k in range(conf.shape[0]):
        v = conf[k].sort().values
        i = len(v) // 2
        t.append(float((v[i] + v[i + 1]) / 2))
    return t


@pytest.mark.parametrize("preset", ["digits", "cifar100-ranet"])
def test_early_exits_equal_assign_exits_and_spend_the_exit_cost(preset):
    torch.manual_seed(0)
    model = create_model(preset).eval()
    c, s, _ = model.input_shape
    x = torch.randn(64, c, s, s)
    with torch.no_grad():
        exits = model(x)
    conf = torch.stack([F.softmax(-1).max(-1).values for F in exits])
    thresholds = _thresholds_between_samples(conf)
    result = model.predict_early(x, thresholds, fast=False)   # the exit logic itself; engines: test_engines.py
    expected = assign_exits(conf, thresholds)
    assert torch.equal(result.exit_index, expected)
    assert len(set(expected.tolist())) > 1  # the test exercises several exits
    for i, k in enumerate(result.exit_index.tolist()):
        assert torch.allclose(result.logits[i], exits[k][i], atol=1e-5)
        assert result.macs[i] == model.macs[k]
        assert torch.allclose(result.exit_confidences[: k + 1, i], conf[: k + 1, i], atol=1e-6)
        assert torch.isnan(result.exit_confidences[k + 1:, i]).all()


@pytest.mark.parametrize("preset", ["digits", "cifar100-ranet"])
@pytest.mark.parametrize("batch_size", [8, 13])
def test_stream_pools_continuing_samples_and_matches_predict_early(preset, batch_size):
    from boostnet_core.early_exit import predict_early_stream
    torch.manual_seed(1)
    model = create_model(preset).eval()
    c, s, _ = model.input_shape
    x = torch.randn(40, c, s, s)
    with torch.no_grad():
        conf = torch.stack([F.softmax(-1).max(-1).values for F in model(x)])
    thresholds = _thresholds_between_samples(conf)
    model.macs  # measured once (a batch-1 pass), before the hooks below count batch sizes
    sizes = []
    hooks = [b.register_forward_pre_hook(lambda m, a: sizes.append(_batch(a[0]))) for b in model.backbone.blocks] \
        if hasattr(model.backbone, "blocks") else []
    # fast=False: the hooks watch the model's own blocks (an engine runs a prepared copy)
    stream = predict_early_stream(model, x.split(10), thresholds, batch_size=batch_size, fast=False)
    for h in hooks:
        h.remove()
    whole = model.predict_early(x, thresholds, fast=False)
    assert torch.equal(stream.exit_index, whole.exit_index)
    assert torch.equal(stream.exit_index, assign_exits(conf, thresholds))
    # Other batch sizes sum in another order (oneDNN picks its kernels by batch size and thread count): fp32 rounding
    # relative to the activations' scale (an untrained RANet's logits reach 1e3-1e5 here; with one thread the stream
    # differs by about 4 units in the last place of the largest logit), not an absolute 1e-5.
    scale = whole.logits.abs().max().item()
    tolerance = 1e-5 + 1e-6 * scale
    assert torch.allclose(stream.logits, whole.logits, rtol=0, atol=tolerance)
    assert torch.equal(stream.macs, whole.macs)
    # logits that differ by at most d move a softmax probability by at most d
    assert torch.allclose(stream.exit_confidences.nan_to_num(-1), whole.exit_confidences.nan_to_num(-1), atol=tolerance)
    if sizes:  # every block ran on full batches except the final flush of each block
        assert sum(1 for n in sizes if n != batch_size) <= model.num_exits


def test_batch_of_one_and_extreme_thresholds(digits_model):
    x = torch.randn(1, 1, 8, 8)
    assert predict_early(digits_model, x, 0.0).exit_index.item() == 0
    conf = torch.stack([F.softmax(-1).max(-1).values for F in digits_model(x)])
    assert torch.equal(predict_early(digits_model, x, 1.0).exit_index, assign_exits(conf, 1.0))
    everything = predict_early(digits_model, torch.randn(5, 1, 8, 8), float("inf"))
    assert (everything.exit_index == digits_model.num_exits - 1).all()


def test_samples_that_exit_leave_the_batch(digits_model):
    """No work on exited samples: the batch reaching each block shrinks to the samples still running."""
    sizes = []
    hooks = [b.register_forward_pre_hook(lambda m, a: sizes.append(_batch(a[0]))) for b in digits_model.backbone.blocks]
    x = torch.randn(32, 1, 8, 8)
    result = predict_early(digits_model, x, 0.6, fast=False)  # the hooks sit on the eager blocks
    for h in hooks:
        h.remove()
    remaining = [int((result.exit_index >= k).sum()) for k in range(digits_model.num_exits)]
    assert sizes == [r for r in remaining if r > 0]


def _batch(a):
    return a.shape[0] if isinstance(a, torch.Tensor) else a[0].shape[0]


def test_trace_contributions_sum_to_exit_logits(digits_model):
    x = torch.randn(1, 8, 8)
    t = trace(digits_model, x, threshold=0.5)
    for k in range(digits_model.num_exits):
        assert torch.allclose(t["contributions"][k].sum(0), t["exit_logits"][k], atol=1e-5)
    assert t["macs"] == digits_model.macs[t["exit_index"]]
    assert len(t["top_k"][0]) == 5 and abs(sum(t["probabilities"][0].tolist()) - 1) < 1e-5


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "CMYK"])
def test_preprocess_any_mode_and_size(mode, digits_model):
    img = Image.new("RGB", (37, 23), (200, 30, 30)).convert(mode)
    x = preprocess_image(img, digits_model.meta)
    assert x.shape == (1, 8, 8) and torch.isfinite(x).all()


def test_preprocess_applies_exif_orientation():
    meta = create_model("cifar10").meta
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    rotated = preprocess_image(io.BytesIO(buf.getvalue()), meta)
    plain = preprocess_image(Image.fromarray(arr), meta)
    assert not torch.allclose(rotated, plain, atol=0.5)
    # After the rotation the white half is on top.
    assert rotated[:, :16].mean() > rotated[:, 16:].mean()


def test_preprocess_matches_the_data_pipeline_for_data_set_images(digits_model):
    from boostnet_core.data import load_dataset, normalize
    b = load_dataset("digits")
    img = Image.fromarray(b.test.images[0, 0].numpy(), mode="L")
    assert torch.allclose(preprocess_image(img, digits_model.meta), normalize(b.test.images[:1], digits_model.meta["mean"], digits_model.meta["std"])[0])


def test_predict_cli(digits_checkpoint, tmp_path, capsys):
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype(np.uint8)).save(p)
        paths.append(str(p))
    assert main(["predict", str(digits_checkpoint), *paths, "--threshold", "0.5", "--json"]) == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert set(r) >= {"exit_index", "label", "confidence", "macs", "exit_confidences"}
        assert len(r["exit_confidences"]) == r["exit_index"] + 1
    assert main(["predict", str(digits_checkpoint), paths[0], "--threshold", "0.2,0.3,0.4,0.5"]) == 0
    assert "exit" in capsys.readouterr().out


@pytest.mark.parametrize("thresholds, message", [("1.5", r"\[0, 1\]"), ("0.5,0.5", "one threshold or 4")])
def test_predict_bad_thresholds(digits_checkpoint, tmp_path, capsys, thresholds, message):
    import re
    p = tmp_path / "a.png"
    Image.new("L", (8, 8)).save(p)
    assert main(["predict", str(digits_checkpoint), str(p), "--threshold", thresholds]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_predict_threshold_that_is_not_a_number(digits_checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(digits_checkpoint), "a.png", "--threshold", "abc"])
    assert exit_info.value.code == 2 and "Expected one threshold or one per exit" in capsys.readouterr().err


def test_predict_bad_image(digits_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["predict", str(digits_checkpoint), str(bad)]) == 2
    assert "bad.png is not a readable image" in capsys.readouterr().err
    assert main(["predict", str(digits_checkpoint), str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err


def test_predict_answers_every_readable_file_and_names_each_bad_one(digits_checkpoint, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["predict", str(digits_checkpoint), str(bad), str(good), str(tmp_path / "gone.png"), "--json"]) == 2
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in rows] == [str(bad), str(good), str(tmp_path / "gone.png")]
    assert "error" in rows[0] and "exit_index" in rows[1] and "error" in rows[2]
    assert err.count("boostnet: error:") == 2 and "bad.png is not a readable image" in err


def test_a_reader_that_goes_away_ends_predict_quietly(digits_checkpoint, tmp_path, monkeypatch, capsys):
    import sys

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["predict", str(digits_checkpoint), str(good), "--json"]) == 0
    assert "Broken pipe" not in capsys.readouterr().err
