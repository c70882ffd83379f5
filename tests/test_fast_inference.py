"""The torch engines (BatchNorm folding, channels-last, traced blocks) and the trainer's speed options."""
import warnings

import pytest
import torch

from boostnet_core import fast_inference as fi
from boostnet_core.engines import registry
from boostnet_core.engines import engine_for, prepare_inference
from boostnet_core.early_exit import predict_early, predict_early_stream
from boostnet_core.evaluation import predict_split
from boostnet_core.data import load_dataset
from boostnet_core.models.stepwise import iter_exits
from boostnet_core.errors import ArgumentError


def _with_batchnorm_statistics(model):
    """Random BatchNorm statistics and affine terms, so that folding has something to fold."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


def _logits(backbone, x):
    with torch.inference_mode():
        return [s.head_logits for s in iter_exits(backbone, x)]


@pytest.fixture(scope="module")
def digits_net(digits_model):
    """The trained digits model (its BatchNorm statistics are real); tests that change it take a copy."""
    return digits_model


@pytest.mark.parametrize("level", ["fold", "jit"])
def test_prepared_logits_agree_with_eager(digits_net, level):
    engine = prepare_inference(digits_net, f"torch-{level}")   # traced once per test session: the model is shared
    assert engine.name == f"torch-{level}" and engine.runner.level == level
    for batch in (1, 7):
        x = torch.randn(batch, *digits_net.input_shape)
        for fast, eager in zip(_logits(engine, x), _logits(digits_net.backbone, x)):
            assert fast.shape == eager.shape
            assert (fast - eager).abs().max() <= 1e-4


def test_folding_leaves_no_batchnorm_and_keeps_the_function(digits_net):
    backbone = prepare_inference(digits_net, "torch-fold").runner
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.eager.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in digits_net.modules())  # the model itself is untouched


def test_ranet_traces_its_heads_and_keeps_eager_blocks():
    from boostnet_core.boosting import BoostNet
    from boostnet_core.models.ranet import RANet, RANetConfig
    torch.manual_seed(0)
    cfg = RANetConfig(n_blocks=1, block_step=1, step=1, n_channels=8, growth_rate=8, scale_list=(1, 2),
                      gr_factor=(2, 1), bn_factor=(2, 1), head_channels=8)
    model = _with_batchnorm_statistics(BoostNet(RANet(cfg), meta={"input_size": 16}))
    backbone = prepare_inference(model, "torch-jit").runner
    assert backbone.blocks is None and len(backbone.heads) == model.num_exits
    x = torch.randn(3, *model.input_shape)
    for fast, eager in zip(_logits(backbone, x), _logits(model.backbone, x)):
        assert (fast - eager).abs().max() <= 1e-4


def test_early_exit_takes_the_same_exits_fast_and_eager(digits_model):
    x = load_dataset("digits").test.images[:300].float()
    from boostnet_core.data import normalize
    x = normalize(x, digits_model.meta["mean"], digits_model.meta["std"])
    for t in (0.5, 0.8, 0.95):
        fast = predict_early(digits_model, x, t, engine="torch-jit")
        eager = predict_early(digits_model, x, t, fast=False)
        assert fast.engine == "torch-jit" and eager.engine == "eager"
        assert torch.equal(fast.exit_index, eager.exit_index)
        assert (fast.logits - eager.logits).abs().max() <= 1e-4
        stream = predict_early_stream(digits_model, x.split(64), t, engine="torch-jit")
        assert torch.equal(stream.exit_index, eager.exit_index)


def test_switch_off_runs_the_eager_backbone(digits_model):
    assert engine_for(digits_model, "torch-fold", fast=False) is digits_model.backbone
    assert engine_for(digits_model, "torch-fold") is prepare_inference(digits_model, "torch-fold")
    split = load_dataset("digits").test
    fast, eager = predict_split(digits_model, split, engine="torch-fold"), predict_split(digits_model, split, fast=False)
    assert torch.equal(fast.prediction, eager.prediction)
    assert (fast.confidence - eager.confidence).abs().max() <= 1e-5


def test_changed_weights_are_prepared_again(digits_net):
    import copy
    model = copy.deepcopy(digits_net)
    first = prepare_inference(model, "torch-fold")
    assert prepare_inference(model, "torch-fold") is first
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)   # what an optimizer step does
    second = prepare_inference(model, "torch-fold")
    assert second is not first and second.name == "torch-fold"
    x = torch.randn(2, *model.input_shape)
    for fast, eager in zip(_logits(second, x), _logits(model.backbone, x)):
        assert (fast - eager).abs().max() <= 1e-4


def test_a_trace_that_fails_falls_back_to_folding_with_one_warning(digits_net, monkeypatch):
    import copy

    def no_tracing(*args, **kwargs):
        raise RuntimeError("tracing is not supported here")
    monkeypatch.setattr(torch.jit, "trace", no_tracing)
    monkeypatch.setattr(registry, "_warned", set())
    models = [copy.deepcopy(digits_net) for _ in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = [prepare_inference(m, "torch-jit") for m in models]
    assert [e.name for e in prepared] == ["torch-fold", "torch-fold"]
    assert len([w for w in caught if "'torch-jit'" in str(w.message)]) == 1
    x = torch.randn(2, *digits_net.input_shape)
    assert (_logits(prepared[0], x)[-1] - _logits(digits_net.backbone, x)[-1]).abs().max() <= 1e-4


def test_a_model_that_cannot_be_prepared_runs_eager(digits_net, monkeypatch):
    import copy

    def broken(*args, **kwargs):
        raise RuntimeError("no folding on this platform")   # how torch reports what a platform cannot do
    monkeypatch.setattr(fi, "fuse_conv_bn_eval", broken)
    monkeypatch.setattr(registry, "_warned", set())
    model = copy.deepcopy(digits_net)
    with pytest.warns(RuntimeWarning, match="Inference engine 'torch-fold'"):
        assert prepare_inference(model, "torch-jit").name == "torch"


def test_unknown_engine_is_one_clear_error(digits_net):
    with pytest.raises(ArgumentError, match="Unknown engine 'turbo'"):
        prepare_inference(digits_net, "turbo")


# ---------------------------------------------------------------- training speed options


def test_bf16_channels_last_training_runs_and_is_part_of_the_run_identity(tmp_path):
    from boostnet_core.training import TrainConfig, train
    cfg = TrainConfig(dataset="digits", out=str(tmp_path / "bf16"), epochs=1, progress=False, precision="bf16",
                      channels_last=True, train_limit=300)
    train(cfg)
    import json
    meta = json.loads((tmp_path / "bf16" / "model.json").read_text())
    assert meta["train"]["precision"] == "bf16"
    assert "channels_last" not in meta["train"] and "compile" not in meta["train"]  # speed, not identity
    assert "precision" not in TrainConfig().identity()  # fp32 runs saved before the option resume unchanged


def test_bad_precision_is_one_clear_error():
    from boostnet_core.training import TrainConfig
    with pytest.raises(ArgumentError, match="--precision"):
        TrainConfig(precision="fp8")


def test_a_compiler_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    from boostnet_core import training

    def failing_compile(module, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")
        return run
    monkeypatch.setattr(torch, "compile", failing_compile)
    module = torch.nn.Linear(3, 2)
    forward = training.speed_options(module, torch.device("cpu"), compile=True)
    x = torch.randn(4, 3)
    with pytest.warns(RuntimeWarning, match="--compile failed"):
        out = forward(x)
    assert torch.equal(out, module(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forward(x)  # once fallen back, no second warning


def test_eager_flag_of_evaluate_and_predict(digits_copy, tmp_path, capsys):
    import json
    from PIL import Image
    from boostnet_core.cli import main
    assert main(["evaluate", str(digits_copy), "--quiet"]) == 0
    fast = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(digits_copy), "--quiet", "--eager"]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert fast == eager  # same accuracies to every digit: the fast path changes no prediction here
    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 128).save(image)
    outputs = []
    for flags in ([], ["--eager"]):
        assert main(["predict", str(digits_copy), str(image), "--json", *flags]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0]["exit_index"] == outputs[1]["exit_index"] and outputs[0]["label"] == outputs[1]["label"]


def test_a_preparation_that_changes_the_results_is_refused(digits_net, monkeypatch):
    import copy
    real_fuse = fi.fuse_conv_bn_eval

    def wrong_fold(conv, bn):   # a folding bug: the BatchNorm's shift is lost
        fused = real_fuse(conv, bn)
        fused.bias.data.zero_()
        return fused
    monkeypatch.setattr(fi, "fuse_conv_bn_eval", wrong_fold)
    monkeypatch.setattr(registry, "_warned", set())
    model = copy.deepcopy(digits_net)
    with pytest.warns(RuntimeWarning, match="differ from the eager model's"):
        assert prepare_inference(model, "torch-jit").name == "torch"
