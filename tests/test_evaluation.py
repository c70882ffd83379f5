"""Threshold fitting and exit assignment against the authors' loop; the budgeted curve; evaluate's outputs."""
import json

import numpy as np
import pytest
import torch

from boostnet_core.cli import main
from boostnet_core.errors import ArgumentError
from boostnet_core.thresholds import (ExitPredictions, budgeted_curve, check_thresholds, exit_fractions,
                                      assign_exits_loop, fit_thresholds_loop, fit_to_budget)
from boostnet_core.evaluation import assign_exits, fit_thresholds, load_cache


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tied", [False, True])
def test_fit_and_assign_equal_the_loop(seed, tied):
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(5, 400, generator=g)
    if tied:
        conf = (conf * 8).round() / 8  # many exact ties
    for p in (1, 7, 20, 39):
        fractions = exit_fractions(p / 20, 5)
        fast, slow = fit_thresholds(conf, fractions), fit_thresholds_loop(conf, fractions)
        assert torch.equal(fast, slow), (p, fast, slow)
        assert torch.equal(assign_exits(conf, fast), assign_exits_loop(conf, fast))


def test_fractions_follow_q_to_the_k():
    f = exit_fractions(0.5, 4)
    assert torch.allclose(f, torch.tensor([8, 4, 2, 1], dtype=torch.float64) / 15)


def test_fitted_thresholds_take_about_the_target_fractions():
    conf = torch.rand(4, 1000, generator=torch.Generator().manual_seed(0))
    fractions = exit_fractions(1.0, 4)
    exits = assign_exits(conf, fit_thresholds(conf, fractions))
    counts = torch.bincount(exits, minlength=4)
    assert counts[0] == 250  # first exit: exactly floor(n * pi_1) without ties


@pytest.mark.parametrize("bad, message", [
    ([0.5, 1.2, 0.1], r"must lie in \[0, 1\]"),
    ([-0.1, 0.5, 0.5], r"must lie in \[0, 1\]"),
    ([0.5, 0.5], "one threshold or 3"),
    ([float("nan"), 0.5, 0.5], r"must lie in \[0, 1\]"),
    ([[0.5] * 3], "is a number or None"),                    # nested lists are not flattened (only tensors are)
    ([[0.5]] * 3, "is a number or None"),
    ([[0.5] * 2, [0.5]], "is a number or None"),             # ragged
    ([0.5, [0.5], 0.5], "is a number or None"),
    (np.array([[0.5] * 3]), "is a number or None"),
    (["0.5", 0.5, 0.5], "is a number or None"),
    ([True, 0.5, 0.5], "is a number or None"),
])
def test_bad_thresholds(bad, message):
    with pytest.raises(ArgumentError, match=message):
        check_thresholds(bad, 3)


def test_bad_fractions():
    conf = torch.rand(3, 10)
    with pytest.raises(ArgumentError, match="sum to 1"):
        fit_thresholds(conf, [0.5, 0.2, 0.2])
    with pytest.raises(ArgumentError, match="one value per exit"):
        fit_thresholds(conf, [0.5, 0.5])


def _fake_predictions(n=600, exits=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    conf = torch.rand(exits, n, generator=g).sort(0).values  # later exits more confident
    right = torch.rand(exits, n, generator=g) < conf
    pred = torch.where(right, labels[None], (labels[None] + 1) % 10)
    return ExitPredictions(conf, pred, right, labels)


def test_budgeted_curve_has_39_points_with_rising_cost():
    val, test = _fake_predictions(seed=1), _fake_predictions(seed=2)
    macs = [1e6, 2e6, 3e6, 4e6]
    curve = budgeted_curve(val, test, macs)
    assert len(curve) == 39
    costs = [p["avg_macs"] for p in curve]
    assert all(b >= a for a, b in zip(costs, costs[1:])) and costs[-1] > costs[0]
    assert all(abs(sum(p["exit_fractions"]) - 1) < 1e-9 for p in curve)
    monotone = budgeted_curve(val, test, macs, monotone=True)
    assert [p["avg_macs"] for p in monotone] == costs


def test_fit_to_budget_stays_within_budget_on_validation():
    val = _fake_predictions(seed=3)
    macs = [1e6, 2e6, 3e6, 4e6]
    t = fit_to_budget(val, macs, 2.2e6)
    exits = assign_exits(val.confidence, t)
    avg = sum(macs[k] for k in exits.tolist()) / len(exits)
    assert avg <= 2.2e6 and avg > 1.8e6
    with pytest.raises(ArgumentError, match="below the cost of the first exit"):
        fit_to_budget(val, macs, 0.5e6)


def test_evaluate_writes_json_and_cache(digits_copy, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(digits_copy), "--out", str(out), "--quiet", "--budget", "400000"]) == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"macs", "anytime", "budgeted"}
    assert len(result["budgeted"]) == 39 and len(result["anytime"]["top1"]) == 4
    costs = [p["avg_macs"] for p in result["budgeted"]]
    assert costs[-1] > costs[0] and all(b >= a for a, b in zip(costs, costs[1:]))
    assert result["budget_fits"][0]["budget_macs"] == 400000
    cache = load_cache(digits_copy)
    assert set(cache) == {"val", "test"} and cache["test"].confidence.shape == (4, 360)
    top1 = (cache["test"].prediction == cache["test"].labels).float().mean(1) * 100
    assert torch.allclose(top1, torch.tensor(result["anytime"]["top1"]), atol=1e-4)
    assert json.loads((digits_copy / "evaluation.json").read_text())["anytime"] == result["anytime"]


def test_budget_without_validation_split(tmp_path, capsys):
    from boostnet_core.training import TrainConfig, train
    out = tmp_path / "noval"
    train(TrainConfig(dataset="digits", out=str(out), epochs=1, val_size=0, train_limit=128, progress=False))
    assert main(["evaluate", str(out), "--quiet", "--budget", "300000"]) == 2
    assert "without a validation split" in capsys.readouterr().err


def test_evaluate_says_on_the_terminal_when_it_skips_the_budgeted_curve(tmp_path, capsys):
    import json as json_
    import shutil
    from conftest import REPO
    folder = tmp_path / "noval"
    shutil.copytree(REPO / "checkpoints" / "mnist5k-joint", folder)
    meta = json_.loads((folder / "model.json").read_text())
    meta["data"]["val_size"] = 0
    (folder / "model.json").write_text(json_.dumps(meta))
    assert main(["evaluate", str(folder), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "note: No validation split was held out" in err and json_.loads(out)["anytime"]["top1"]
