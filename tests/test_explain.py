"""Attributions: maps of the right shape for every method, for exits and for single heads' contributions."""
import numpy as np
import pytest
import torch

from boostnet_core.explain import ExitTarget, attribute, overlay


def test_exit_target_reproduces_exit_logits_and_contributions(digits_model):
    x = torch.randn(2, 1, 8, 8)
    exits, heads = digits_model(x), digits_model.head_logits(x)
    for k in range(digits_model.num_exits):
        assert torch.allclose(ExitTarget(digits_model, k)(x), exits[k], atol=1e-5)
        for i in range(k + 1):
            expected = digits_model.reweight ** (k - i) * heads[i]
            assert torch.allclose(ExitTarget(digits_model, k, head=i)(x), expected, atol=1e-5)


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "grad_cam"])
@pytest.mark.parametrize("head", [None, 1])
def test_attribution_maps(digits_model, method, head):
    from boostnet_core.data import load_dataset, normalize
    images = load_dataset("digits", val_size=0).test.images[:1]
    x = normalize(images, digits_model.meta["mean"], digits_model.meta["std"])[0]   # a real digit
    target = int(digits_model(x[None])[2][0].argmax())    # the class exit 3 predicts: its evidence is in the image
    heat = attribute(digits_model, x, exit_index=2, target=target, method=method, head=head, steps=8)
    assert heat.shape == (8, 8) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1 and heat.max() > 0


def test_saliency_is_the_input_gradient(digits_model):
    x = torch.randn(1, 8, 8)
    xr = x[None].clone().requires_grad_(True)
    digits_model(xr)[1][0, 4].backward()
    g = xr.grad[0].abs().sum(0)
    heat = attribute(digits_model, x, 1, 4, "saliency")
    assert np.allclose(heat, (g / g.max()).numpy(), atol=1e-5)


def test_bad_exit_head_class_method(digits_model):
    x = torch.randn(1, 8, 8)
    with pytest.raises(ValueError, match="Exit 9 does not exist"):
        attribute(digits_model, x, 9, 0)
    with pytest.raises(ValueError, match="does not contribute"):
        attribute(digits_model, x, 1, 0, head=3)
    with pytest.raises(ValueError, match="Class 12 does not exist"):
        attribute(digits_model, x, 1, 12)
    with pytest.raises(ValueError, match="Unknown attribution method"):
        attribute(digits_model, x, 1, 0, method="lime")


def test_overlay_any_size():
    img = np.zeros((40, 30, 3), np.uint8)
    out = overlay(img, np.ones((8, 8), np.float32))
    assert out.shape == (40, 30, 3) and out[..., 0].mean() > 0
