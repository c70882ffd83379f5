"""Certified thresholds: p-values by hand, fixed-sequence testing, the validity check catching a broken procedure,
reliability diagrams, and `boostnet calibrate` on a shipped model and with bad values."""
import json
import math

import pytest
import torch

from boostnet_core.calibration import (binomial_p_value, certify, family_exits, fixed_sequence, losses, reliability,
                                       threshold_family, validity)
from boostnet_core.cli import main
from boostnet_core.thresholds import ExitPredictions, assign_exits

from conftest import REPO


def test_binomial_p_values_by_hand():
    # P(Binomial(10, 0.2) <= 1) = 0.8^10 + 10 * 0.2 * 0.8^9
    assert binomial_p_value(1, 10, 0.2) == pytest.approx(0.8 ** 10 + 10 * 0.2 * 0.8 ** 9, rel=1e-12)
    assert binomial_p_value(0, 100, 0.05) == pytest.approx(0.95 ** 100, rel=1e-12)
    assert binomial_p_value(10, 10, 0.3) == pytest.approx(1.0)


def test_fixed_sequence_stops_at_the_first_failure():
    # members 1..4 with 0, 1, 9, 0 losses in 100 images, epsilon 0.05, delta 0.1: p = 0.0059, 0.037, 0.94 -> stop
    chosen, p = fixed_sequence(torch.tensor([0, 0, 1, 9, 0]), 100, 0.05, 0.1)
    assert chosen == 2 and len(p) == 3
    assert p[0] == pytest.approx(0.95 ** 100) and p[1] == pytest.approx(0.95 ** 100 + 100 * 0.05 * 0.95 ** 99)
    assert fixed_sequence(torch.tensor([0, 30]), 100, 0.05, 0.1)[0] == 0   # nothing certified: everyone to the last


def _synthetic(n, exits=3, seed=0):
    """Scores in [0, 1]; an exit is right more often when its score is high; the last exit is right 90% of the time."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    conf = torch.rand(exits, n, generator=g)
    right = torch.rand(exits, n, generator=g) < 0.5 + 0.4 * conf
    right[-1] = torch.rand(n, generator=g) < 0.9
    pred = torch.where(right, labels, (labels + 1 + torch.randint(0, 9, (exits, n), generator=g)) % 10)
    return ExitPredictions(conf, pred, right, labels)


def test_family_runs_from_everyone_at_the_last_exit_to_cheaper_and_exits_agree_with_assign_exits():
    p = _synthetic(400)
    macs = [1.0, 2.0, 3.0]
    family = threshold_family(p.confidence, macs)
    exits = family_exits(p.confidence, family)
    assert (exits[0] == 2).all()
    cost = torch.tensor(macs)[exits].mean(1)
    assert (cost[1:] <= cost[:-1] + 1e-9).all() and cost[-1] < 1.5
    assert torch.equal(exits[5], assign_exits(p.confidence, family[5], (-math.inf, math.inf)))
    risk = losses(p, exits, "disagreement").double().mean(1)
    assert risk[0] == 0 and risk[-1] > 0.2


def test_the_validity_check_passes_the_certified_procedure_and_fails_the_shortcut():
    """Thresholds tuned to the calibration set's own risk, without the test, exceed epsilon on fresh images far more
    often than delta; Learn-then-Test does not."""
    pool, macs = _synthetic(1200), [1.0, 2.0, 3.0]
    sound, broken = validity(pool, macs, [("disagreement", 0.1, 0.05)], splits=20, calibration_size=300)
    assert (sound["procedure"], broken["procedure"]) == ("certified", "uncertified")
    assert not broken["holds"] and broken["violation_rate"] > 0.3
    assert sound["holds"] and sound["mean_cost_ratio"] < 1


def test_reliability_bins_by_hand():
    conf = torch.tensor([[0.05, 0.15, 0.95, 1.0]])
    p = ExitPredictions(conf, torch.tensor([[0, 1, 1, 1]]), torch.ones(1, 4, dtype=torch.bool), torch.tensor([0, 0, 1, 1]))
    (exit0,) = reliability(p, bins=10)
    assert [b["count"] for b in exit0["bins"]] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert exit0["bins"][9]["confidence"] == pytest.approx(0.975) and exit0["bins"][9]["accuracy"] == 1.0
    # ECE = 1/4 |1 - 0.05| + 1/4 |0 - 0.15| + 2/4 |1 - 0.975|
    assert exit0["ece"] == pytest.approx(0.25 * 0.95 + 0.25 * 0.15 + 0.5 * 0.025)


@pytest.mark.parametrize("risk", ["disagreement", "accuracy-drop"])
def test_calibrate_a_shipped_model(risk, capsys):
    folder = REPO / "checkpoints" / "mnist5k-boostnet"
    assert main(["calibrate", str(folder), "--risk", risk, "--epsilon", "0.05", "--delta", "0.1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["calibration"]["images"] == 200 and result["family"]["chosen"] > 0
    assert result["test"]["risk"] <= 0.05 and result["test"]["cost_ratio"] < 1 and len(result["thresholds"]) == 5


@pytest.mark.parametrize("flags, message", [
    (["--risk", "accuracy", "--epsilon", "0.1", "--delta", "0.1"], "invalid choice"),
    (["--risk", "disagreement", "--epsilon", "1.5", "--delta", "0.1"], "strictly between 0 and 1"),
    (["--risk", "disagreement", "--epsilon", "0.1", "--delta", "0"], "strictly between 0 and 1"),
    (["--risk", "disagreement", "--epsilon", "x", "--delta", "0.1"], "expected a number"),
    (["--risk", "disagreement", "--epsilon", "0.1", "--delta", "0.1", "--criterion", "softmax"], "invalid choice"),
])
def test_calibrate_bad_values(flags, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", str(REPO / "checkpoints" / "mnist5k-boostnet"), *flags])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_calibrate_a_cache_without_logits_says_how_to_rebuild_it(tmp_path, capsys):
    import shutil
    from boostnet_core.checkpoint import read_meta
    from boostnet_core.evaluation import load_cache, save_cache
    folder = tmp_path / "old"
    shutil.copytree(REPO / "checkpoints" / "mnist5k-joint", folder)
    save_cache(folder, {k: ExitPredictions(p.confidence, p.prediction, p.top5, p.labels)
                        for k, p in load_cache(folder).items()},
               read_meta(folder)["weights_sha256"])   # a cache written before logits were kept
    flags = ["--risk", "disagreement", "--epsilon", "0.1", "--delta", "0.1", "--criterion"]
    assert main(["calibrate", str(folder), *flags, "margin"]) == 2
    assert capsys.readouterr().err == (f"boostnet: error: The margin criterion needs the per-exit logits, which this "
                                       f"evaluation cache lacks; rebuild the cache with: boostnet evaluate {folder} --write\n")
    assert main(["calibrate", str(folder), *flags, "patience"]) == 0   # patience needs the predictions only
