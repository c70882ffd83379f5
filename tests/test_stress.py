"""Early exit under stress (boostnet_core/stress): corruptions, the slowdown attack, the run over conditions, the CLI."""
import json

import numpy as np
import pytest
import torch

from boostnet_core.cli import main
from boostnet_core.errors import ArgumentError
from boostnet_core.stress import (NAMES, SEVERITIES, ExitRule, attack, corrupt, corruption, run_condition,
                                  slowdown_attack, slowdown_loss, stress_images, stress_test, universal_slowdown)

def _pictures(n, c, size, seed=0):
    """n pictures with flat regions, edges and a gradient: every corruption changes them visibly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        base = 40 + 150 * xx + rng.uniform(0, 40)
        box = (np.abs(yy - rng.uniform(0.3, 0.7)) < 0.25) & (np.abs(xx - rng.uniform(0.3, 0.7)) < 0.2)
        img = np.where(box, 230.0, base)
        out.append(np.stack([img * (0.6 + 0.4 * k / max(1, c - 1)) for k in range(c)]))
    return np.uint8(np.clip(out, 0, 255))


RGB32, GREY28, GREY8 = _pictures(3, 3, 32), _pictures(2, 1, 28), _pictures(2, 1, 8)
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform"}


@pytest.mark.parametrize("name", NAMES)
def test_each_corruption_is_deterministic_per_seed_and_keeps_shape_and_dtype(name):
    for images in (RGB32, GREY28, GREY8):
        a = corrupt(images, name, 5, seed=1)
        assert a.dtype == np.uint8 and a.shape == images.shape
        assert np.array_equal(a, corrupt(images, name, 5, seed=1))
        # defocus blur scaled to 8x8 pixels is a sub-pixel blur (1.5 px at 32 is 0.375 px at 8): nothing to see
        assert np.array_equal(a, images) == (name == "defocus_blur" and images is GREY8), name
    # one image looks the same whichever batch it is corrupted in (its key, not its position, seeds it)
    alone = corrupt(RGB32[1:2], name, 3, seed=1, keys=[1])
    assert np.array_equal(alone[0], corrupt(RGB32, name, 3, seed=1)[1])
    other_seed = corrupt(RGB32, name, 5, seed=2)
    assert (not np.array_equal(other_seed, corrupt(RGB32, name, 5, seed=1))) == (name in RANDOM)


MONOTONE = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur", "fog",
            "brightness", "contrast", "pixelate", "jpeg_compression", "snow"]


@pytest.mark.parametrize("name", MONOTONE)
def test_severity_moves_the_image_further_from_clean(name):
    """Where severity is one knob (not glass blur, frost, elastic: several parameters that trade off, as in the
    generator), the mean change grows with it."""
    change = [np.abs(corrupt(RGB32, name, s).astype(float) - RGB32).mean() for s in SEVERITIES]
    assert change[-1] > change[0] + 1
    assert all(b >= a - 0.25 for a, b in zip(change, change[1:])), change


def test_bad_names_and_severities_are_one_sentence():
    with pytest.raises(ArgumentError, match="gaussian_noise, shot_noise"):
        corrupt(RGB32, "gaussian", 1)
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ArgumentError, match="from 1 to 5"):
            corrupt(RGB32, "fog", bad)
    with pytest.raises(ArgumentError, match="uint8"):
        corrupt(RGB32.astype(np.float32), "fog", 1)


def _pixels(model, n=12):
    images, labels, keys, _ = stress_images(model, n)
    return torch.from_numpy(images).float() / 255, labels, keys


def test_slowdown_attack_lowers_its_loss_within_epsilon_and_the_pixel_range(digits_model):
    x, _, _ = _pixels(digits_model)
    adv, history = slowdown_attack(digits_model, x, epsilon=8 / 255, step=0.01, steps=5)
    assert history[-1] < history[0] - 0.05 and (history[1:] <= history[:-1] + 1e-4).all(), history
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    normalise = lambda p: (p - torch.tensor(digits_model.meta["mean"]).view(1, -1, 1, 1)) / torch.tensor(
        digits_model.meta["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        assert float(slowdown_loss(digits_model(normalise(adv))).mean()) == pytest.approx(float(history[-1]), rel=1e-4)
    delta, curve = universal_slowdown(digits_model, x, epsilon=8 / 255, step=0.01, iterations=4)
    assert delta.shape == (1,) + tuple(x.shape[1:]) and delta.abs().max() <= 8 / 255 + 1e-6
    assert curve[-1] < curve[0]
    with pytest.raises(ArgumentError, match="epsilon"):
        slowdown_attack(digits_model, x, epsilon=0)


def test_a_condition_exits_where_real_early_exit_does(digits_model):
    x, labels, keys = _pixels(digits_model, 40)
    rule = ExitRule.of(0.8, digits_model.num_exits, risk="disagreement", epsilon=0.1)
    run = run_condition(digits_model, x, labels, corruption("gaussian_noise", 5), rule, keys=keys, keep_pixels=True)
    meta = digits_model.meta
    normalised = (run.pixels - torch.tensor(meta["mean"]).view(1, -1, 1, 1)) / torch.tensor(meta["std"]).view(1, -1, 1, 1)
    real = digits_model.predict_early(normalised, 0.8, fast=False)
    assert torch.equal(run.exits, real.exit_index)
    assert run.summary["exit_histogram"] == torch.bincount(real.exit_index, minlength=digits_model.num_exits).tolist()
    assert run.summary["mean_macs"] == pytest.approx(float(real.macs.mean()))
    assert run.summary["top1_at_exits"] == pytest.approx(
        100 * float((real.logits.argmax(1) == labels).double().mean()))


def test_stress_test_json_shape(digits_model):
    x, labels, keys = _pixels(digits_model, 16)
    rule = ExitRule.of([0.9] * (digits_model.num_exits - 1) + [None], digits_model.num_exits)
    result = stress_test(digits_model, x, labels, [corruption("fog", 2), attack("slowdown", steps=2)], rule, keys=keys)
    assert set(result) == {"clean", "conditions"} and len(result["conditions"]) == 2
    fog, slow = result["conditions"]
    assert (fog["kind"], fog["name"], fog["severity"]) == ("corruption", "fog", 2)
    assert (slow["kind"], slow["name"], slow["severity"]) == ("attack", "slowdown", None)
    for r in (result["clean"], fog, slow):
        assert len(r["top1"]) == len(r["exit_histogram"]) == len(r["ece"]) == digits_model.num_exits
        assert sum(r["exit_histogram"]) == 16 and 0 < r["macs_share"] <= 1 and "risk" not in r


def test_cli_stress_json(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "stress.json"
    code = main(["stress", str(digits_checkpoint), "--corruption", "contrast,pixelate", "--severity", "5",
                 "--attack", "slowdown", "--steps", "2", "--epsilon", "8/255", "--images", "20", "--threshold",
                 "0.8", "--json", "--out", str(out), "--quiet"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed == json.loads(out.read_text())
    assert [(c["kind"], c["name"], c["severity"]) for c in printed["conditions"]] == [
        ("corruption", "contrast", 5), ("corruption", "pixelate", 5), ("attack", "slowdown", None)]
    assert printed["conditions"][2]["epsilon"] == pytest.approx(8 / 255)
    for r in [printed["clean"], *printed["conditions"]]:
        assert {"top1", "exit_histogram", "mean_macs", "macs_share", "top1_at_exits"} <= set(r)


@pytest.mark.parametrize("args, message", [
    (["--corruption", "fogg"], "unknown corruption 'fogg'; choose from: gaussian_noise"),
    (["--corruption", "fog", "--severity", "6"], "from 1 to 5"),
    (["--attack", "slowdown", "--epsilon", "8/0"], "such as 8/255"),
    (["--attack", "slowdown", "--epsilon", "2"], "(0, 1]"),
    (["--attack", "sloth"], "invalid choice"),
])
def test_cli_stress_bad_flags(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["stress", "x", *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_cli_stress_needs_a_condition(digits_checkpoint, capsys):
    assert main(["stress", str(digits_checkpoint)]) == 2
    assert "Give --corruption" in capsys.readouterr().err
