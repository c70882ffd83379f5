"""Exit criteria: each on hand-made outputs, patience's edge cases, the learned score's split, and the same exits in
real early exit as in the cache maths on a shipped model."""
import functools
import math

import pytest
import torch

from boostnet_core.criteria import (CRITERIA, MissingOutputs, fit_learned, get_criterion, prepare, run_length,
                                    score_cache, validation_parts)
from boostnet_core.thresholds import ExitPredictions, assign_exits, check_thresholds
from boostnet_core.errors import ArgumentError

from conftest import REPO


def _logits_with_top(tops, classes=4):
    """Exit logits [E, B, C] whose top class is tops[e][b] (probability 0.7 there, the rest shared)."""
    tops = torch.tensor(tops)
    logits = torch.zeros(*tops.shape, classes)
    logits.scatter_(-1, tops[..., None], math.log(0.7 / 0.1))
    return logits


def test_scores_on_hand_made_logits():
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 5.0]]])   # one exit, two samples: p = (1/4, 3/4), (1/2, 1/2)
    assert torch.allclose(get_criterion().scores(logits)[0], torch.tensor([0.75, 0.5]))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert torch.allclose(get_criterion("entropy").scores(logits)[0], torch.tensor([1 - h / math.log(2), 0.0]), atol=1e-6)
    assert torch.allclose(get_criterion("margin").scores(logits)[0], torch.tensor([0.5, 0.0]), atol=1e-6)
    assert torch.equal(get_criterion("patience").scores(logits)[0], torch.tensor([0.0, 0.0]))


def test_patience_counts_the_run_of_the_same_top_class():
    tops = [[1, 1, 3], [1, 2, 3], [1, 2, 2], [1, 1, 2]]           # exits x samples: columns (1,1,1,1) (1,2,2,1) (3,3,2,2)
    scores = get_criterion("patience").scores(_logits_with_top(tops))
    assert scores.T.tolist() == [[0, 1, 2, 3], [0, 0, 1, 0], [0, 1, 0, 1]]
    assert assign_exits(scores, [1.0] * 4, (0, math.inf)).tolist() == [1, 2, 1]
    assert assign_exits(scores, [2.0] * 4, (0, math.inf)).tolist() == [2, 3, 3]
    # t larger than the exits left: nobody leaves early, the last exit takes everyone
    assert assign_exits(scores, [5.0] * 4, (0, math.inf)).tolist() == [3, 3, 3]
    check_thresholds([7.0] * 4, 4, get_criterion("patience").score_range)


def test_patience_ties_take_the_first_class_in_both_paths():
    logits = torch.tensor([[[1.0, 1.0, 0.0]], [[2.0, 0.0, 2.0]], [[0.0, 3.0, 3.0]]])  # tied tops: 0, 0, 1
    crit = get_criterion("patience")
    assert crit.scores(logits)[:, 0].tolist() == [0, 1, 0]
    conf, pred = logits.softmax(-1).max(-1)
    cached = ExitPredictions(conf, pred, torch.ones_like(pred, dtype=torch.bool), torch.zeros(1, dtype=torch.long),
                             logits.half())
    assert torch.equal(crit.cache_scores(cached), crit.scores(logits))
    assert run_length(torch.tensor([4]), torch.zeros(1, 0, dtype=torch.long)).tolist() == [0]


def test_registry_and_ranges():
    assert set(CRITERIA) == {"max_softmax", "entropy", "margin", "patience", "learned"}
    with pytest.raises(ArgumentError, match="max_softmax, entropy, margin, patience, learned"):
        get_criterion("confidence")
    with pytest.raises(ArgumentError, match=r"must lie in \[0, 1\]"):
        check_thresholds([0.5, 1.5], 2, get_criterion("margin").score_range)
    with pytest.raises(ArgumentError, match=r"must lie in \[0, inf\]"):
        check_thresholds([-1.0, 1.0], 2, get_criterion("patience").score_range)


def _fake_cache(n=400, exits=3, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("val", "test"):
        labels = torch.randint(0, classes, (n,), generator=g)
        logits = torch.randn(exits, n, classes, generator=g) * 2
        logits[:, torch.arange(n), labels] += torch.linspace(0.5, 3, exits)[:, None]  # later exits more often right
        conf, pred = logits.softmax(-1).max(-1)
        out[name] = ExitPredictions(conf, pred, torch.ones_like(pred, dtype=torch.bool), labels, logits.half())
    return out


def test_learned_score_fits_on_one_part_of_val_and_rebuilds_from_its_params():
    cache = _fake_cache()
    crit, scored = prepare(cache, "learned")
    fit_part, rest = validation_parts(400)
    assert len(fit_part) + len(rest) == 400 and not set(fit_part.tolist()) & set(rest.tolist())
    assert torch.equal(scored["val"].labels, cache["val"].labels[rest]) and scored["test"].labels.numel() == 400
    s = scored["test"].confidence
    assert s.shape == (3, 400) and (s >= 0).all() and (s <= 1).all() and scored["test"].criterion == "learned"
    # higher score, more often right: the top half of scores is more accurate than the bottom half at every exit
    right = scored["test"].correct()
    for k in range(3):
        order = s[k].argsort()
        assert right[k][order[200:]].float().mean() > right[k][order[:200]].float().mean()
    again = get_criterion("learned", params=crit.params)
    assert torch.equal(score_cache(cache, again)["test"].confidence, s)
    assert torch.allclose(again.scores(cache["test"].logits.float()), s, atol=1e-3)


def test_max_softmax_leaves_the_cache_as_it_is_and_missing_logits_say_how_to_rebuild():
    cache = _fake_cache()
    assert score_cache(cache)["test"].confidence is cache["test"].confidence
    bare = {k: ExitPredictions(p.confidence, p.prediction, p.top5, p.labels) for k, p in cache.items()}
    assert score_cache(bare, "patience")["test"].confidence.shape == (3, 400)  # patience needs the predictions only
    with pytest.raises(MissingOutputs, match="boostnet evaluate checkpoints/x"):
        score_cache(bare, "entropy", checkpoint="checkpoints/x")
    with pytest.raises(MissingOutputs, match="boostnet evaluate"):
        fit_learned(bare["val"])


def _gap_thresholds(scores, margin):
    """Per exit, the middle of the widest gap between sample scores that leaves a tenth of them on each side; no
    score lies within margin[k] of it (the fp16 rounding of the cached logits)."""
    t = []
    for k in range(scores.shape[0]):
        v = scores[k].double().unique().sort().values
        lo, hi = len(v) // 10, len(v) - len(v) // 10 - 1
        gaps = v[lo + 1:hi + 1] - v[lo:hi]
        i = int(gaps.argmax()) + lo
        assert gaps.max() > 2 * margin[k]
        t.append(float((v[i] + v[i + 1]) / 2))
    return t


@functools.lru_cache(maxsize=1)
def _shipped_slice():
    """mnist5k-boostnet, 48 test images (normalised: half of them ones whose exits disagree) and their outputs in the
    cache's form."""
    from boostnet_core import load_model
    from boostnet_core.data import load_dataset, normalize
    from boostnet_core.evaluation import load_cache, predict_split
    folder = REPO / "checkpoints" / "mnist5k-boostnet"
    model, pred = load_model(folder), load_cache(folder)["test"].prediction
    disagree = (pred != pred[-1]).any(0)
    index = torch.cat([disagree.nonzero()[:24, 0], (~disagree).nonzero()[:24, 0]])
    data = load_dataset("mnist5k").test.subset(index)
    return model, normalize(data.images, model.meta["mean"], model.meta["std"]), predict_split(model, data, batch_size=48)


@pytest.mark.parametrize("name", list(CRITERIA))
def test_real_early_exit_takes_the_exits_the_cache_maths_gives(name):
    """mnist5k-boostnet, 48 test images: scores from the cached form (fp16 logits, stored predictions) and thresholds
    between them give the exits that predict_early takes running the model with the same criterion."""
    from boostnet_core.early_exit import predict_early, predict_early_stream
    model, x, cached = _shipped_slice()
    crit, scored = prepare({"val": cached, "test": cached}, name)   # learned: fitted on half of these images
    scores = scored["test"].confidence
    with torch.no_grad():
        rounding = (crit.scores(torch.stack(model(x))) - scores).abs().amax(1)  # fp32 logits against the cached fp16
    if name == "patience":   # whole numbers, the same in both paths: patience 1 (two exits in a row agree)
        t = [1.0] * model.num_exits
    else:
        t = _gap_thresholds(scores[:-1], rounding + 1e-6) + [0.0]
    expected = assign_exits(scores, t, crit.score_range)
    real = predict_early(model, x, t, criterion=crit)
    assert torch.equal(real.exit_index, expected)
    assert len(set(expected.tolist())) > 1
    seen = real.exit_scores[:, 0]
    assert torch.allclose(seen[~seen.isnan()], scores[: int(real.exit_index[0]) + 1, 0], atol=float(rounding.max()) + 1e-6)
    if name == "patience":  # the earlier exits' top classes travel with pooled samples too
        stream = predict_early_stream(model, x.split(16), t, batch_size=12, criterion=crit)
        assert torch.equal(stream.exit_index, expected)


def test_criteria_comparison_labels_its_intervals():
    """One run per method: paired bootstrap over test images; two seed-paired runs: a t-interval over seeds."""
    from boostnet_core.study.criteria_compare import compare_criteria
    boost, joint = REPO / "checkpoints" / "mnist5k-boostnet", REPO / "checkpoints" / "mnist5k-joint"
    macs = [2060810.0, 3169404.0, 4058902.0, 4741972.0, 5339618.0]
    one = compare_criteria([boost], [joint], macs, criteria=("max_softmax", "margin"), shares=(0.3, 0.6))
    assert [r["share"] for r in one["rows"]] == [0.6, 0.6]   # 30% is below the first exit's cost
    ms, margin = one["rows"]
    assert ms["boostnet_minus_joint"]["interval"] == "bootstrap over test images"
    assert "against_max_softmax" not in ms["boostnet"]
    d = margin["boostnet"]["against_max_softmax"]
    assert d["low"] <= d["difference"] <= d["high"]
    assert d["difference"] == pytest.approx(margin["boostnet"]["top1"] - ms["boostnet"]["top1"])
    two = compare_criteria([boost, boost], [joint, joint], macs, criteria=("max_softmax",), shares=(0.6,))
    row = two["rows"][0]["boostnet_minus_joint"]
    assert row["interval"] == "seeds (n = 2)" and row["low"] == pytest.approx(row["high"])   # identical seeds: no spread


@pytest.mark.parametrize("name", ["mnist5k-boostnet", "mnist5k-joint"])
def test_max_softmax_path_gives_the_shipped_budgeted_curve_exactly(name):
    """The default criterion through score_cache reproduces every threshold, accuracy and cost of evaluation.json."""
    import json
    from boostnet_core.thresholds import budgeted_curve
    from boostnet_core.evaluation import load_cache
    folder = REPO / "checkpoints" / name
    shipped = json.loads((folder / "evaluation.json").read_text())
    scored = score_cache(load_cache(folder), None)
    assert budgeted_curve(scored["val"], scored["test"], shipped["macs"]) == shipped["budgeted"]
