"""Inference engines (boostnet_core/engines): the default engine in a loop, auto's pick, fallback and refusal."""
import copy
import json
import sys
import warnings

import pytest
import torch

from boostnet_core.errors import ArgumentError
from boostnet_core.engines import registry
from boostnet_core.data import load_dataset, normalize
from boostnet_core.engines import engine_for, prepare_inference
from boostnet_core.models.stepwise import iter_exits


@pytest.fixture(scope="module")
def digits_x(digits_model):
    x = load_dataset("digits").test.images[:128].float()
    return normalize(x, digits_model.meta["mean"], digits_model.meta["std"])


def _eager(model, x):
    with torch.inference_mode():
        return [s.head_logits for s in iter_exits(model.backbone, x)]


@pytest.mark.slow
def test_predict_early_in_a_loop_keeps_one_measured_engine_and_a_later_process_reads_it_from_disk(
        digits_model, digits_x, tmp_path, monkeypatch):
    from boostnet_core.engines import auto, disk_cache, onnx_graphs
    monkeypatch.delenv("BOOSTNET_ENGINE", raising=False)   # the default engine, "auto"
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path))
    monkeypatch.setenv("BOOSTNET_ENGINE_CACHE", "on")
    monkeypatch.setattr(auto, "PAUSE", 0.0)   # the pauses between candidates are wall time for the timings' quality
    model = copy.deepcopy(digits_model)   # a model nothing has prepared yet
    results = [model.predict_early(x, 0.9) for x in digits_x.split(64)]   # exports, prepares and measures
    auto_engine = engine_for(model)
    assert auto_engine is prepare_inference(model) and auto_engine.name == "auto"
    picked = auto_engine.picked[("batch", "early")]
    assert picked in ("openvino", "onnxruntime", "torch-fold")
    ran = picked if picked != "torch-fold" else auto_engine.picked[("batch", "walk")]   # torch-fold: blocks walked
    # The same engine from the first call on; where it has a one graph, the first call of a threshold setting runs
    # the whole network and chooses the exits afterwards (auto.ExitPlan: it has not yet seen where samples leave).
    plan = auto_engine.exit_plans.get("batch")
    assert (plan is not None) == (picked != "torch-fold")
    first = f"auto:{ran} (whole network)" if plan is not None else f"auto:{ran}"
    assert results[0].engine == first and results[1].engine in (f"auto:{ran}", first)
    assert set(auto_engine.timings[("batch", "early")]) >= {"onnxruntime", "torch-fold"}   # chosen by measurement
    eager = model.predict_early(digits_x[:64], 0.9, fast=False)
    assert eager.engine == "eager" and torch.equal(eager.exit_index, results[0].exit_index)
    assert (eager.logits - results[0].logits).abs().max() <= 1e-4

    # On disk for the next process: the graphs and the pick.
    folder = tmp_path / "engines" / disk_cache.weights_key(model)
    assert ({f"piece{i}.onnx" for i in range(model.num_exits)} | {"whole.onnx", "early_exit.onnx"}
            <= {p.name for p in folder.iterdir()})
    (picks,) = folder.glob("auto-fp32-*.json")
    kept = json.loads(picks.read_text())["batch/early"]
    assert kept["engine"] == picked and set(kept["measured"]) >= {"at", "host", "torch_threads", "load_average_1min"}
    assert (kept.get("exit_plan") == plan.costs) if plan is not None else "exit_plan" not in kept

    def never(*args, **kwargs):
        raise AssertionError("made again")
    for made in ("export_pieces", "join_pieces", "early_exit_graph"):
        monkeypatch.setattr(onnx_graphs, made, never)                  # a later process: no graph made ...
    monkeypatch.setattr(auto, "_seconds", never)                       # ... no measuring ...
    built = []
    real_build = registry._build
    monkeypatch.setattr(registry, "_build", lambda m, name, precision: built.append(name) or real_build(m, name, precision))
    later = copy.deepcopy(digits_model)
    got = later.predict_early(digits_x[:64], 0.9)
    assert built[0] == picked and got.engine == first                  # ... the engine picked is prepared first
    assert built == [picked] or picked == "torch-fold"                 # (and alone, unless the walk's pick is another)
    assert torch.equal(got.exit_index, results[0].exit_index) and (got.logits - results[0].logits).abs().max() <= 1e-6
    for name in ("onnxruntime", "openvino"):                           # both ONNX engines run the graphs kept on disk
        engine = prepare_inference(later, name)
        assert engine.name == name
        for a, b in zip(engine.head_logits(digits_x), _eager(later, digits_x)):
            assert (a - b).abs().max() <= 1e-4
        assert torch.equal(later.predict_early(digits_x[:64], 0.9, engine=engine).exit_index, results[0].exit_index)
    changed = copy.deepcopy(digits_model)
    with torch.no_grad():
        next(changed.parameters())[0].add_(1.0)
    assert disk_cache.weights_key(changed) != disk_cache.weights_key(later)   # other weights: another entry


@pytest.mark.parametrize("damaged", ["piece0", "whole", "early_exit"])
def test_graphs_on_disk_that_a_runtime_cannot_read_are_made_anew(digits_model, digits_x, tmp_path, monkeypatch, damaged):
    from boostnet_core.engines import disk_cache
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path))
    monkeypatch.setenv("BOOSTNET_ENGINE_CACHE", "on")
    first = copy.deepcopy(digits_model)
    first.predict_early(digits_x[:8], 0.9, engine=prepare_inference(first, "onnxruntime"))   # every graph on disk
    folder = tmp_path / "engines" / disk_cache.weights_key(first)
    (folder / f"{damaged}.onnx").write_bytes(b"not a graph")          # damaged outside the library
    model = copy.deepcopy(digits_model)                                 # a later process
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                   # no fallback warning: it just works
        engine = prepare_inference(model, "onnxruntime")
        got = model.predict_early(digits_x[:64], 0.9, engine=engine)
    assert engine.name == "onnxruntime" and got.engine == "onnxruntime"
    for a, b in zip(engine.head_logits(digits_x), _eager(model, digits_x)):
        assert (a - b).abs().max() <= 1e-4
    assert torch.equal(got.exit_index, model.predict_early(digits_x[:64], 0.9, fast=False).exit_index)
    assert (folder / f"{damaged}.onnx").read_bytes() != b"not a graph"   # and the copy on disk is repaired


def test_the_engine_cache_can_be_turned_off(digits_model, digits_x, tmp_path, monkeypatch):
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path))
    monkeypatch.setenv("BOOSTNET_ENGINE_CACHE", "off")
    model = copy.deepcopy(digits_model)
    model.predict_early(digits_x[:8], 0.9, engine=prepare_inference(model, "onnxruntime"))
    assert list(tmp_path.iterdir()) == []                               # nothing kept


def test_without_a_home_folder_the_caches_go_to_the_temporary_folder(digits_model, monkeypatch):
    import pathlib
    import tempfile
    from boostnet_core.data.cache import cache_dir
    from boostnet_core.engines import disk_cache

    def no_home():
        raise RuntimeError("Could not determine home directory.")   # a container's anonymous user
    monkeypatch.setattr(pathlib.Path, "home", staticmethod(no_home))
    monkeypatch.delenv("BOOSTNET_CACHE", raising=False)
    monkeypatch.setenv("BOOSTNET_ENGINE_CACHE", "on")
    assert cache_dir() == pathlib.Path(tempfile.gettempdir()) / "boostnet-cache"
    assert disk_cache.EngineCache(digits_model).folder.parent == cache_dir() / "engines"


def test_auto_times_the_candidates_in_interleaved_rounds(monkeypatch):
    """A burst of noise on a shared machine slows every candidate of a round alike; it must not decide the pick.
    On a clock of its own: each call advances it by the candidate's cost (b's first timed call hits a burst). Each
    timing follows a pause and an untimed call, so the candidate before it (a runtime's threads still spinning) does
    not count; with `calls`, the calls of a round are timed together."""
    from types import SimpleNamespace
    from boostnet_core.engines import auto
    clock, calls, pauses = [0.0], [], []
    monkeypatch.setattr(auto, "time", SimpleNamespace(perf_counter=lambda: clock[0], sleep=pauses.append))

    def run(name, seconds):
        def fn():
            calls.append(name)
            clock[0] += seconds + (0.1 if name == "b" and calls.count("b") == 3 else 0.0)
        return fn
    best = auto._seconds({"a": run("a", 0.02), "b": run("b", 0.005)}, budget=0.0)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 2       # warm-up, then two rounds: untimed, timed, per candidate
    assert pauses == [auto.PAUSE] * 4                           # a pause before every candidate's turn
    assert best == pytest.approx({"a": 0.02, "b": 0.005})      # b is faster, burst or not
    calls.clear()
    best = auto._seconds({"a": run("a", 0.02), "b": run("b", 0.005)}, budget=0.0, calls=3)
    assert calls == ["a", "b"] + ["a"] * 4 + ["b"] * 4 + ["a"] * 4 + ["b"] * 4
    assert best == pytest.approx({"a": 0.02, "b": 0.005})      # seconds per call
    calls.clear(), pauses.clear()
    auto._seconds({"a": run("a", 0.02), "b": run("b", 0.005)}, budget=0.0, together=("a", "b"))   # one session
    assert calls == ["a", "b", "a", "a", "b", "a", "b"] and pauses == [auto.PAUSE]   # rest and untimed call once


def test_auto_runs_each_early_exit_call_on_the_plan_expected_to_cost_less(digits_model, digits_x):
    """auto.ExitPlan: the first call of a threshold setting runs the whole network and chooses the exits afterwards;
    later calls run the one graph where the exits seen so far make it cheaper than that, and the whole network where
    they do not. Both plans give the same exits and logits."""
    from boostnet_core.engines.auto import ExitPlan
    model, x = digits_model, digits_x[:64]
    n, inf = model.num_exits, float("inf")
    engine = prepare_inference(model, "onnxruntime")
    costs = {"engine": "onnxruntime", "one_graph_by_exit": [1.0] * (n - 1) + [3.0], "whole_then_choose": 2.5}
    plan = ExitPlan(engine, len(x), costs)
    everyone_at_the_first, nobody_early = [0.0] * n, [inf] * n
    first, by_whole = plan.run(x, everyone_at_the_first)
    again, by_one_graph = plan.run(x, everyone_at_the_first)
    assert (first, again) == ("whole", "one graph")               # expected 1.0 s in the one graph against 2.5
    assert [plan.run(x, nobody_early)[0] for _ in range(2)] == ["whole", "whole"]   # 3.0 against 2.5
    for a, b in zip(by_whole, by_one_graph):
        assert torch.equal(a.isnan(), b.isnan()) and (a - b).nan_to_num().abs().max() <= 1e-4
    assert torch.equal(by_whole[0], torch.zeros(len(x), dtype=torch.long))
    # The same setting while the data change: the decayed counts follow within ten calls.
    setting = [float(by_whole[2].median())] + [inf] * (n - 1)     # leave at the first exit, or run to the end
    leaves = plan.run(x, setting)[1][0] == 0
    easy, hard = x[leaves], x[~leaves]
    assert [plan.run(easy, setting)[0] for _ in range(3)] == ["one graph"] * 3   # expected 1.0
    on_hard = [plan.run(hard, setting)[0] for _ in range(10)]     # everyone runs to the end now: 3.0
    assert on_hard[0] == "one graph" and on_hard[-2:] == ["whole", "whole"]


def test_an_early_exit_pick_on_disk_without_well_formed_costs_is_measured_again(digits_model):
    """A later process takes the early-exit pick from disk only with the costs its plan weighs (auto.ExitPlan);
    an entry from before them, or a damaged one, is measured again rather than run without a plan."""
    from types import SimpleNamespace
    from boostnet_core.engines import disk_cache
    from boostnet_core.engines.auto import AutoEngine
    n = digits_model.num_exits
    good = {"engine": "onnxruntime", "one_graph_by_exit": [0.001] * n, "whole_then_choose": 0.002}
    entries = {"no costs": None, "good": good, "another engine's": {**good, "engine": "openvino"},
               "too few exits": {**good, "one_graph_by_exit": [0.001]}, "not seconds": {**good, "whole_then_choose": "x"},
               "no time": {**good, "whole_then_choose": 0.0}, "not a dict": [0.001] * n}
    for name, costs in entries.items():
        pick = {"engine": "onnxruntime", "seconds": {}, "measured": {}, **({} if costs is None else {"exit_plan": costs})}
        table = {"batch/early": pick, "batch/whole": pick}   # as EngineCache.picks reads it: damaged entries left out
        disk = SimpleNamespace(picks=lambda precision, t=table: {k: v for k, v in t.items() if disk_cache._well_formed(v)})
        auto_engine = AutoEngine(digits_model, "fp32", disk)
        engine = auto_engine._remembered(("batch", "early"), 64)
        assert (engine is not None) == (name == "good"), name
        assert ("batch" in auto_engine.exit_plans) == (name == "good")


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_onnx_engines_agree_with_eager_whole_and_stepwise(digits_model, digits_x, name):
    engine = prepare_inference(digits_model, name)
    assert engine.name == name and engine.agreement <= 1e-4
    x = digits_x[:5]
    for got in (engine.head_logits(x), [s.head_logits for s in iter_exits(engine, x)]):
        for a, b in zip(got, _eager(digits_model, x)):
            assert (a - b).abs().max() <= 1e-4


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_early_exit_in_one_graph_takes_the_eager_exits(digits_model, digits_x, name):
    engine = prepare_inference(digits_model, name)
    for t in ([0.5] * 4, [0.9, 0.95, 0.99, 0.0], [1.0] * 4):
        fused, eager = digits_model.predict_early(digits_x, t, engine=engine), digits_model.predict_early(digits_x, t, fast=False)
        assert fused.engine == name
        assert torch.equal(fused.exit_index, eager.exit_index) and torch.equal(fused.macs, eager.macs)
        assert (fused.logits - eager.logits).abs().max() <= 1e-4
        assert torch.allclose(fused.exit_confidences.nan_to_num(-1), eager.exit_confidences.nan_to_num(-1), atol=1e-5)


def test_openvino_runs_a_large_batch_in_parts_with_the_same_results(digits_model, digits_x):
    """With two threads a batch of 16 or more runs as two parts on two streams; the joined outputs (and the sample
    indices of the early-exit graph, shifted by each part's start) equal the eager model's."""
    pytest.importorskip("openvino")
    from boostnet_core.engines.onnx_engines import OpenVinoEngine
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine = OpenVinoEngine(digits_model)
    finally:
        torch.set_num_threads(threads)
    x = digits_x[:37]   # parts of 19 and 18
    for a, b in zip(engine.head_logits(x), _eager(digits_model, x)):
        assert (a - b).abs().max() <= 1e-4
    t = [0.9, 0.95, 0.99, 0.0]
    eager = digits_model.predict_early(x, t, fast=False)
    assert 0 < int((eager.exit_index == 0).sum()) < len(x)   # exits differ across the parts
    fused = digits_model.predict_early(x, t, engine=engine)
    assert torch.equal(fused.exit_index, eager.exit_index) and (fused.logits - eager.logits).abs().max() <= 1e-4
    from boostnet_core.engines import check_agreement
    assert engine.parts_from == 16 and check_agreement(engine, digits_model) <= 1e-4   # the check covers the parts too
    import numpy as np
    with pytest.raises(Exception):                                    # a part that fails reaches the caller ...
        engine.whole([np.zeros((32, 1, 3, 3), np.float32)])
    for a, b in zip(engine.head_logits(x), _eager(digits_model, x)):  # ... and leaves the parts runner working
        assert (a - b).abs().max() <= 1e-4


def test_a_missing_engine_gives_way_to_the_next_with_one_warning(digits_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)   # import openvino now fails, as when it is not installed
    monkeypatch.setattr(registry, "_warned", set())
    models = [copy.deepcopy(digits_model) for _ in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = [prepare_inference(m, "openvino") for m in models]
    assert [e.name for e in prepared] == ["onnxruntime", "onnxruntime"]
    assert len([w for w in caught if "'openvino'" in str(w.message)]) == 1


def test_an_engine_that_fails_or_disagrees_is_refused(digits_model, monkeypatch):
    import onnxruntime
    from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented
    from boostnet_core.engines import onnx_engines

    def refuses(*args, **kwargs):   # the runtime refuses the graph, as it does an operator it lacks
        raise OrtNotImplemented("unsupported operator")
    real_logits = onnx_engines.OnnxEngine.head_logits

    def off(self, x):   # an engine bug: logits off by 1e-3
        return [f + 1e-3 for f in real_logits(self, x)]
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuses)
    monkeypatch.setattr(onnx_engines.OpenVinoEngine, "head_logits", off)
    monkeypatch.setattr(registry, "_warned", set())
    model = copy.deepcopy(digits_model)
    with pytest.warns(RuntimeWarning) as caught:
        engine = prepare_inference(model, "openvino")
    assert engine.name == "torch-jit"
    messages = " ".join(str(w.message) for w in caught)
    assert "differ from the eager model's by 0.001" in messages and "unsupported operator" in messages


def test_a_runtime_that_fails_at_its_first_run_gives_way(digits_model, monkeypatch):
    """A runtime may accept a graph and refuse only when it runs (an operator at this shape): its own error class at
    the first run (check_agreement) makes the engine unavailable, with the next engine and one warning."""
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException
    from boostnet_core.engines import onnx_engines

    def fails(self, x):
        raise RuntimeException("Non-zero status code returned while running Conv node")
    monkeypatch.setattr(onnx_engines.OnnxRuntimeEngine, "head_logits", fails)
    monkeypatch.setattr(registry, "_warned", set())
    model = copy.deepcopy(digits_model)
    with pytest.warns(RuntimeWarning, match="'onnxruntime' .*its first run failed .*Conv node"):
        assert prepare_inference(model, "onnxruntime").name == "torch-jit"


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "torch-jit", "auto"])
def test_a_bug_inside_an_engine_raises_instead_of_falling_back(digits_model, monkeypatch, engine):
    """Only the failures an engine expects (not installed, a graph its runtime refuses, disagreement) give way to
    the next engine; a bug in the engine's own code raises with its traceback, so that it is seen and fixed."""
    from boostnet_core.engines import onnx_engines, torch_engines

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug in the engine")
    monkeypatch.setattr(onnx_engines.OnnxEngine, "head_logits", bug)
    monkeypatch.setattr(torch_engines, "PreparedBackbone", bug)
    with pytest.raises(ZeroDivisionError, match="a bug in the engine"):
        model = copy.deepcopy(digits_model)   # kept: the registry holds models weakly
        prepare_inference(model, engine).head_logits(torch.randn(1, 1, 8, 8))


def test_a_second_model_with_the_same_weights_reuses_the_exported_graphs(digits_model, monkeypatch):
    """The pieces are traced once per process for the same weights (a model loaded again, deep-copied, or exported
    after an engine was prepared); changed weights are traced anew."""
    from boostnet_core.engines import onnx_graphs
    first = onnx_graphs.export_pieces(digits_model)
    traced = []
    real_export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: traced.append(1) or real_export(*a, **k))
    again = copy.deepcopy(digits_model)
    assert onnx_graphs.export_pieces(again) == first and traced == []
    with torch.no_grad():
        next(again.backbone.parameters()).add_(0.5)
    changed = onnx_graphs.export_pieces(again)
    assert len(traced) == digits_model.num_exits and changed != first


def test_ranet_has_no_onnx_form_and_says_so():
    from boostnet_core.boosting import BoostNet
    from boostnet_core.engines.onnx_graphs import export_pieces
    from boostnet_core.models.ranet import RANet, RANetConfig
    cfg = RANetConfig(n_blocks=1, block_step=1, step=1, n_channels=8, growth_rate=8, scale_list=(1, 2),
                      gr_factor=(2, 1), bn_factor=(2, 1), head_channels=8)
    model = BoostNet(RANet(cfg), meta={"input_size": 16}).eval()
    with pytest.raises(ArgumentError, match="RANet has no ONNX form in this project yet .* 'boostnet predict'"):
        export_pieces(model)


def test_auto_does_not_offer_ranet_to_the_onnx_engines(recwarn):
    """RANet runs on torch with no warning: the ONNX engines are not candidates for a backbone without an ONNX form
    (it printed two RuntimeWarnings, one per ONNX engine, on every first use)."""
    from boostnet_core.boosting import BoostNet
    from boostnet_core.engines import prepare_inference
    from boostnet_core.models.ranet import RANet, RANetConfig
    cfg = RANetConfig(n_blocks=1, block_step=1, step=1, n_channels=8, growth_rate=8, scale_list=(1, 2),
                      gr_factor=(2, 1), bn_factor=(2, 1), head_channels=8)
    model = BoostNet(RANet(cfg), meta={"input_size": 16}).eval()
    engine = prepare_inference(model, "auto")
    assert all(not e.describe().startswith(("onnx", "openvino")) for e in engine.candidates())
    assert not [w for w in recwarn if "ONNX" in str(w.message) or "onnx" in str(w.message)]


def test_re_evaluating_leaves_the_checkpoint_untouched_unless_asked(digits_copy, tmp_path, capsys):
    import os
    from boostnet_core.cli import main
    results, cache = digits_copy / "evaluation.json", digits_copy / "eval_cache.safetensors"
    assert not results.exists()
    assert main(["evaluate", str(digits_copy), "--quiet", "--engine", "torch-fold"]) == 0   # none yet: written
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (results, cache)}
    assert main(["evaluate", str(digits_copy), "--quiet", "--out", str(tmp_path / "e.json")]) == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (results, cache)} == before
    assert json.loads((tmp_path / "e.json").read_text())["anytime"] == json.loads(results.read_text())["anytime"]
    os.utime(results, ns=(0, 0))
    assert main(["evaluate", str(digits_copy), "--quiet", "--write"]) == 0
    assert results.stat().st_mtime_ns != 0
    capsys.readouterr()
