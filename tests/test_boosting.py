"""The additive ensemble, the detached boosting loss and MSDNet's gradient rescaling."""
import pytest
import torch

from boostnet_core import create_model
from boostnet_core.boosting import boosting_loss, ensemble
from boostnet_core.models.msdnet import gradient_rescale
from boostnet_core.errors import ArgumentError


def test_exit_logits_are_the_weighted_sum_of_heads():
    heads = [torch.randn(4, 10) for _ in range(5)]
    w = 0.5
    exits = ensemble(heads, w)
    for n, F in enumerate(exits):
        expected = sum(w ** (n - i) * heads[i] for i in range(n + 1))
        assert torch.allclose(F, expected, atol=1e-6)


def test_contributions_sum_to_exit_logits():
    model = create_model("digits").eval()
    x = torch.randn(3, 1, 8, 8)
    heads = model.head_logits(x)
    exits = model(x)
    for n in range(model.num_exits):
        parts = model.contributions(heads, n)
        assert parts.shape == (n + 1, 3, 10)
        assert torch.allclose(parts.sum(0), exits[n], atol=1e-5)


def test_joint_method_uses_raw_heads():
    model = create_model("digits", method="joint").eval()
    x = torch.randn(2, 1, 8, 8)
    assert model.reweight == 0.0
    for f, F in zip(model.head_logits(x), model(x)):
        assert torch.equal(f, F)


def test_loss_of_head_n_sends_no_gradient_to_earlier_heads_through_the_ensemble():
    """Each head's gradient from the total loss is the gradient of its own term CE(f_n + w F_{n-1}, y) alone."""
    w, y = 0.5, torch.randint(0, 10, (8,))
    heads = [torch.randn(8, 10, requires_grad=True) for _ in range(4)]
    total, per_head = boosting_loss(heads, y, w)
    total.backward()
    for n, head in enumerate(heads):
        earlier = ensemble([h.detach() for h in heads[:n]], w)[-1] if n else 0.0
        own = head.detach().clone().requires_grad_(True)
        term = torch.nn.functional.cross_entropy(own + w * earlier, y)
        assert torch.isclose(term, per_head[n])
        term.backward()
        assert torch.allclose(head.grad, own.grad, atol=1e-7), n


def test_an_undetached_ensemble_would_leak_gradient():
    """Guards the test above: without the detach, head 2's term pushes gradient into head 1."""
    y = torch.randint(0, 10, (8,))
    leaky = [torch.randn(8, 10, requires_grad=True) for _ in range(2)]
    torch.nn.functional.cross_entropy(leaky[1] + 0.5 * leaky[0], y).backward()
    assert leaky[0].grad.abs().sum() > 0
    heads = [torch.randn(8, 10, requires_grad=True) for _ in range(2)]
    _, per_head = boosting_loss(heads, y, 0.5)
    last_term_only = torch.nn.functional.cross_entropy(heads[1] + 0.5 * heads[0].detach(), y)
    assert torch.isclose(last_term_only, per_head[1])
    last_term_only.backward()
    assert heads[0].grad is None


def test_gradient_rescale_is_identity_forward_and_scales_backward():
    x = torch.randn(5, requires_grad=True)
    y = gradient_rescale(x, 0.25)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.25))


def _single_scale_pair():
    """Two identical one-scale MSDNets (every path crosses the rescaled map), with and without rescaling."""
    from boostnet_core.boosting import BoostNet
    from boostnet_core.models.msdnet import MSDNet, MSDNetConfig
    cfg = MSDNetConfig(n_blocks=4, step=1, base=1, n_channels=6, growth_rate=4, gr_factor=(1,), bn_factor=(1,),
                       head_channels=8, head_pool="global")
    torch.manual_seed(0)
    plain = BoostNet(MSDNet(cfg, grad_rescale=False), meta={"input_size": 8}).train()
    scaled = BoostNet(MSDNet(cfg, grad_rescale=True), meta={"input_size": 8}).train()
    scaled.load_state_dict(plain.state_dict())
    return plain, scaled


@pytest.mark.parametrize("head", [0, 1, 2, 3])
def test_rescaling_factor_reaching_each_block_is_one_over_remaining_heads(head):
    """Head i's loss reaches block b <= i scaled by 1/(N-b): summed over heads b..N it is their mean."""
    plain, scaled = _single_scale_pair()
    x = torch.randn(6, 3, 8, 8)
    n = plain.num_exits

    def block_grads(model):
        model.zero_grad()
        model.head_logits(x)[head].square().sum().backward()
        return [next(model.backbone.blocks[b].parameters()).grad.clone() for b in range(head + 1)]

    for b, (g_scaled, g_plain) in enumerate(zip(block_grads(scaled), block_grads(plain))):
        assert torch.allclose(g_scaled, g_plain / (n - b), rtol=1e-4, atol=1e-7), (head, b)


def test_rescaling_is_inactive_in_eval_mode():
    model = create_model("digits", grad_rescale=True).eval()
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    ref = create_model("digits", grad_rescale=False).eval()
    ref.load_state_dict(model.state_dict())
    model(x)[-1].sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    ref(x)[-1].sum().backward()
    assert torch.allclose(g1, x.grad)


def test_bad_reweight_and_method():
    with pytest.raises(ArgumentError, match="reweight"):
        create_model("digits", reweight=1.5)
    with pytest.raises(ArgumentError, match="Unknown method"):
        create_model("digits", method="boost")
