"""Attributions: maps of the right shape for every method, for exits and for single heads' contributions."""
import numpy as np
import pytest
import torch

from boostnet_core.explain import ExitTarget, attribute, overlay
from boostnet_core.errors import ArgumentError


def test_exit_target_reproduces_exit_logits_and_contributions(digits_model):
    x = torch.randn(2, 1, 8, 8)
    exits, heads = digits_model(x), digits_model.head_logits(x)
    for k in range(digits_model.num_exits):
        assert torch.allclose(ExitTarget(digits_model, k)(x), exits[k], atol=1e-5)
        for i in range(k + 1):
            expected = digits_model.reweight ** (k - i) * heads[i]
            assert torch.allclose(ExitTarget(digits_model, k, head=i)(x), expected, atol=1e-5)


def _digit(model):
    from boostnet_core.data import load_dataset, normalize
    images = load_dataset("digits", val_size=0).test.images[:1]
    return normalize(images, model.meta["mean"], model.meta["std"])[0]   # a real digit


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
@pytest.mark.parametrize("head", [None, 1])
def test_attribution_maps(digits_model, method, head):
    # Both methods sum absolute values of input gradients: zero only where the target does not depend on the input,
    # which no network with non-zero weights does. No assumption about what the model learned.
    x = _digit(digits_model)
    heat = attribute(digits_model, x, exit_index=2, target=3, method=method, head=head, steps=8)
    assert heat.shape == (8, 8) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)


@pytest.mark.parametrize("head", [None, 1])
def test_grad_cam_finds_the_evidence_of_one_sign(digits_model, head):
    """Grad-CAM is ReLU(sum_c alpha_c A_c) with alpha the mean gradient of the target: built so that class 1's
    output is exactly minus class 0's (the head's last layer negated), the two unrectified maps are negatives of each
    other, so one of them is positive wherever the evidence is not zero. Which class holds the positive part is
    whatever the model learned; the test does not care."""
    import copy
    model = copy.deepcopy(digits_model)
    tapped = 2 if head is None else head
    for j in range(tapped, 3 if head is None else head + 1):   # every head that feeds the target
        linear = model.backbone.head(j).linear
        with torch.no_grad():
            linear.weight[1] = -linear.weight[0]
            linear.bias[1] = -linear.bias[0]
    x = _digit(model)
    pos, neg = (attribute(model, x, exit_index=2, target=c, method="grad_cam", head=head) for c in (0, 1))
    for heat in (pos, neg):
        assert heat.shape == (8, 8) and heat.dtype == np.float32 and heat.min() >= 0 and heat.max() <= 1
    assert max(pos.max(), neg.max()) == pytest.approx(1.0)   # the evidence is somewhere, for one class or the other


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "grad_cam"])
def test_a_class_the_head_ignores_has_no_evidence(digits_model, method):
    """A head whose output for class 4 is a constant (its weights zero) gives class 4 no evidence at all: every map of
    that head's contribution is all zero, and explain.has_evidence says so (the app then says it in words)."""
    import copy
    from boostnet_core.explain import has_evidence
    model = copy.deepcopy(digits_model)
    with torch.no_grad():
        model.backbone.head(1).linear.weight[4] = 0
    x = _digit(model)
    empty = attribute(model, x, exit_index=2, target=4, method=method, head=1, steps=4)
    assert empty.shape == (8, 8) and not empty.any() and not has_evidence(empty)
    assert has_evidence(attribute(model, x, exit_index=2, target=4, method="saliency"))   # other heads still see it


def test_saliency_is_the_input_gradient(digits_model):
    x = torch.randn(1, 8, 8)
    xr = x[None].clone().requires_grad_(True)
    digits_model(xr)[1][0, 4].backward()
    g = xr.grad[0].abs().sum(0)
    heat = attribute(digits_model, x, 1, 4, "saliency")
    assert np.allclose(heat, (g / g.max()).numpy(), atol=1e-5)


def test_bad_exit_head_class_method(digits_model):
    x = torch.randn(1, 8, 8)
    with pytest.raises(ArgumentError, match="Exit 9 does not exist"):
        attribute(digits_model, x, 9, 0)
    with pytest.raises(ArgumentError, match="does not contribute"):
        attribute(digits_model, x, 1, 0, head=3)
    with pytest.raises(ArgumentError, match="Class 12 does not exist"):
        attribute(digits_model, x, 1, 12)
    with pytest.raises(ArgumentError, match="Unknown attribution method"):
        attribute(digits_model, x, 1, 0, method="lime")


def test_overlay_any_size():
    img = np.zeros((40, 30, 3), np.uint8)
    out = overlay(img, np.ones((8, 8), np.float32))
    assert out.shape == (40, 30, 3) and out[..., 0].mean() > 0
