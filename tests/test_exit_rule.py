"""One exit rule, every path: "leave at the first exit whose score reaches t_k, the last takes the rest", with
F_k = f_k + w F_{k-1}, gives the same exits and logits in the cached-split arithmetic (thresholds.assign_exits),
the eager walk, every engine's walk, every engine's one-graph early exit, every engine's whole network with the exits
chosen afterwards (auto's other plan), the stream, and the README's plain ONNX Runtime loop over an export, at
thresholds that include "no exit here"."""
import copy
import math

import numpy as np
import pytest
import torch

from boostnet_core.boosting import ensemble
from boostnet_core.criteria import softmax_top
from boostnet_core.data import load_dataset, normalize
from boostnet_core.early_exit import predict_early, predict_early_stream
from boostnet_core.engines import prepare_inference
from boostnet_core.engines.auto import exits_chosen_after
from boostnet_core.thresholds import assign_exits

ENGINES = ["torch", "torch-fold", "torch-jit", "onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def setting(digits_model):
    """A private model, 96 digits, their eager exit logits, and thresholds kept clear of every sample's confidence
    (an engine's fp32 rounding, ~1e-7, must not decide a tie)."""
    model = copy.deepcopy(digits_model)
    x = normalize(load_dataset("digits").test.images[:96].float(), model.meta["mean"], model.meta["std"])
    with torch.inference_mode():
        exits = torch.stack(ensemble(model.head_logits(x), model.reweight))
    confidence = softmax_top(exits)[0].double()
    n = model.num_exits

    def clear(t: float) -> float:
        while (confidence - t).abs().min() < 1e-4:
            t += 3e-4
        return t
    medians = [clear(float(confidence[k].median())) for k in range(n - 1)]
    settings = [medians + [0.0], [None] + medians[1:] + [None], [clear(0.9)] * (n - 1) + [0.0], [None] * n]
    return model, x, exits, confidence, settings


def reference(exits, confidence, thresholds):
    taken = assign_exits(confidence, thresholds)
    return taken, exits[taken, torch.arange(exits.shape[1])]


def check(got_exits, got_logits, want_exits, want_logits):
    assert torch.equal(torch.as_tensor(got_exits), want_exits)
    assert (torch.as_tensor(got_logits).float() - want_logits).abs().max() <= 1e-4


def test_the_thresholds_spread_the_samples_over_the_exits(setting):
    model, x, exits, confidence, settings = setting
    assert len(set(assign_exits(confidence, settings[0]).tolist())) >= 3   # the test exercises several exits
    assert set(assign_exits(confidence, settings[-1]).tolist()) == {model.num_exits - 1}   # none: all to the last


def test_eager_walk_and_stream(setting):
    model, x, exits, confidence, settings = setting
    for t in settings:
        want = reference(exits, confidence, t)
        got = predict_early(model, x, t, fast=False)
        check(got.exit_index, got.logits, *want)
        streamed = predict_early_stream(model, x.split(40), t, batch_size=32, fast=False)
        check(streamed.exit_index, streamed.logits, *want)


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_walk_and_one_graph(setting, name):
    model, x, exits, confidence, settings = setting
    engine = prepare_inference(model, name)
    assert engine.name == name                         # no fallback: each engine really runs
    for t in settings:
        want = reference(exits, confidence, t)
        got = predict_early(model, x, t, engine=engine)   # the one graph where the engine has one
        check(got.exit_index, got.logits, *want)
        walked = predict_early_stream(model, [x], t, engine=engine)   # block by block, samples leaving
        check(walked.exit_index, walked.logits, *want)
        if engine.exit_decisions(x) is not None:   # the engines with a one graph: auto's other plan
            chosen = exits_chosen_after(engine, x, t)   # the whole network, the exits chosen afterwards
            check(chosen[0], chosen[1], *want)
            assert torch.equal(chosen[3].isnan(), got.exit_confidences.isnan())   # nothing reported beyond the exit
    assert (engine.fused_early_exit(len(x)) is not None) == (name in ("onnxruntime", "openvino"))


def test_the_readme_loop_over_an_export(setting, tmp_path):
    from boostnet_core.export import export_onnx
    from test_export import readme_loop
    model, x, exits, confidence, settings = setting
    export_onnx(model, tmp_path / "onnx")
    loop = readme_loop()
    manifest, sessions = loop["load"](str(tmp_path / "onnx"))
    for t in settings[:2]:
        want_exits, want_logits = reference(exits, confidence, t)
        per_exit = [None if v is None or math.isinf(v) else v for v in t]   # the manifest's form: null = no exit
        got = [loop["early_exit"](manifest, sessions, x[i:i + 1].numpy(), per_exit) for i in range(len(x))]
        check([k for k, _ in got], np.concatenate([F for _, F in got]), want_exits, want_logits)
