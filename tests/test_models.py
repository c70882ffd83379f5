"""Backbones and presets: costs per exit against the papers, shapes, and the FlopCounterMode cross-check."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from boostnet_core import create_model
from boostnet_core.cli import main
from boostnet_core.macs import exit_macs
from boostnet_core.models.presets import PRESETS, get_preset
from boostnet_core.errors import ArgumentError

PAPER_CIFAR100_ANYTIME = [15.14, 25.51, 37.79, 52.06, 62.18, 74.07, 87.73, 100.04, 110.12, 121.68]
PAPER_RANET_CIFAR100 = [15.8, 31.3, 44.7, 50.4, 60.7, 63.7, 90.3, 95.0]
PAPER_IMAGENET_STEP7 = [0.616, 1.436, 2.283, 2.967, 3.254]


@pytest.mark.parametrize("preset, published, unit", [
    ("cifar100-msdnet-anytime", PAPER_CIFAR100_ANYTIME, 1e6),
    ("cifar100-ranet", PAPER_RANET_CIFAR100, 1e6),
    ("imagenet-msdnet-step7", PAPER_IMAGENET_STEP7, 1e9),
])
def test_macs_match_the_published_costs(preset, published, unit):
    from boostnet_core.cli import model_info
    macs = model_info(None, preset)["macs"]   # what `boostnet info --preset` prints (built without initial values)
    assert len(macs) == len(published)
    for ours, theirs in zip(macs, published):
        assert abs(ours / unit - theirs) / theirs < 0.01, (preset, ours / unit, theirs)


def test_cifar100_anytime_parameter_count_matches_paper():
    params = sum(p.numel() for p in create_model("cifar100-msdnet-anytime").backbone.parameters())
    assert abs(params / 1e6 - 4.96) < 0.01


def test_budgeted_preset_has_six_exits_and_the_same_first_exit():
    # Later exits differ: "max" pruning spaces the scale drops over the whole (shorter) network.
    assert create_model("cifar100-msdnet-budgeted").macs[0] == create_model("cifar100-msdnet-anytime").macs[0]
    assert create_model("cifar100-msdnet-budgeted").num_exits == 6


@pytest.mark.parametrize("preset", ["cifar10", "cifar100-ranet", "digits", "mnist5k"])
def test_conv_and_linear_macs_agree_with_flop_counter(preset):
    model = create_model(preset).eval()
    ours = exit_macs(model.backbone, model.input_shape, elementwise=False)[-1]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *model.input_shape))
    assert counter.get_total_flops() == pytest.approx(2 * ours, rel=1e-9)


@pytest.mark.parametrize("preset", ["cifar10", "cifar100-ranet", "digits"])
@pytest.mark.parametrize("classes, channels", [(7, 1), (13, 3)])
def test_any_number_of_classes_and_channels(preset, classes, channels):
    model = create_model(preset, num_classes=classes, in_channels=channels)
    size = get_preset(preset)["data"].input_size
    out = model(torch.randn(2, channels, size, size))
    assert len(out) == model.num_exits and all(o.shape == (2, classes) for o in out)


def test_macs_are_cumulative_and_counter_keeps_no_global_state():
    model = create_model("cifar10")
    first = exit_macs(model.backbone, model.input_shape)
    second = exit_macs(model.backbone, model.input_shape)
    assert first == second
    assert all(a < b for a, b in zip(first, first[1:]))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_info_json_for_every_preset(preset, capsys):
    assert main(["info", "--preset", preset, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["exits"] == len(info["macs"]) and info["params"] > 0


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ArgumentError, match="Unknown preset 'nope'; choose one of"):
        get_preset("nope")


def test_bad_configuration_fails_at_once():
    from boostnet_core.models.msdnet import MSDNetConfig
    with pytest.raises(ArgumentError, match="must have the same length"):
        MSDNetConfig(gr_factor=(1, 2), bn_factor=(1, 2, 4))
