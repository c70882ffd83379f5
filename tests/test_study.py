"""Studies: the grid runner (plan, skip, resume) and the report's statistics, checked against hand computations."""
import json
import math
import sys

import numpy as np
import pytest

from boostnet_core.cli import main
from boostnet_core.errors import ArgumentError
from boostnet_core.study import Variant, commands_for, epochs_done, plan, run_folder_name, run_study
from boostnet_core.study.stats import bootstrap_difference, mcnemar, mean_sd, t_interval
from boostnet_core.study.report import build_report, write_report
from boostnet_core.study.markdown import markdown

from conftest import REPO, TEST_THREADS, built_once, share_apptest_work_once

T_975_1 = 12.706204736174698   # Student t, 97.5% quantile, 1 degree of freedom (tables)
VARIANTS = [Variant("boostnet", True), Variant("boostnet", False), Variant("joint", True), Variant("joint", False)]
GRID_TRAIN_LIMIT = 256   # the grid's recipe: a run compared with it differs in what it names alone


def test_mean_and_sample_sd_by_hand():
    mean, sd = mean_sd([1, 2, 3, 4])
    assert mean == 2.5 and sd == pytest.approx(math.sqrt(5 / 3))
    assert math.isnan(mean_sd([7.0])[1])


def test_t_interval_by_hand():
    mean, low, high = t_interval([1.0, 3.0])   # sd sqrt(2), n = 2: half-width t * sqrt(2) / sqrt(2)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - T_975_1, 2.0 + T_975_1))
    assert all(math.isnan(v) for v in t_interval([5.0])[1:])


def test_mcnemar_exact_by_hand():
    a = np.array([1] * 8 + [0] * 2 + [1] * 5 + [0] * 5, dtype=bool)
    b = np.array([0] * 8 + [1] * 2 + [1] * 5 + [0] * 5, dtype=bool)
    result = mcnemar(a, b)
    # 8 discordant pairs one way, 2 the other: two-sided exact p = 2 * P(X <= 2), X ~ Binomial(10, 1/2).
    assert (result["only_a"], result["only_b"]) == (8, 2)
    assert result["p"] == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar(a, a)["p"] == 1.0


def test_paired_bootstrap_brackets_the_difference():
    a = np.array([1] * 90 + [0] * 10, dtype=bool)
    b = np.array([1] * 80 + [0] * 20, dtype=bool)
    d, low, high = bootstrap_difference(a, b)
    assert d == pytest.approx(10.0) and low < 10.0 < high and high - low < 20
    assert bootstrap_difference(a, a)[1:] == (0.0, 0.0)  # identical predictions: no spread at all


def test_variants_and_plan_checks(tmp_path):
    assert Variant.parse("joint:off") == Variant("joint", False)
    with pytest.raises(ArgumentError, match="METHOD:RESCALE"):
        Variant.parse("boost:yes")
    # one type, every spelling derived from it: flag, folder, report label (read back without parsing prefixes)
    v = Variant.parse("boostnet:on")
    assert (str(v), v.label, run_folder_name(v, 2)) == ("boostnet:on", "boostnet, rescaling on", "boostnet-rescale-on-seed2")
    assert all(Variant.from_label(u.label) == u and Variant.parse(str(u)) == u for u in VARIANTS)
    assert Variant.of_meta({"method": "joint", "grad_rescale": False}) == Variant("joint", False)
    assert [u.label for u in sorted(VARIANTS)] == sorted(u.label for u in VARIANTS)   # the report's order
    from boostnet_core.study.compare import orient
    assert orient(Variant("joint", False), Variant("boostnet", False)) == (Variant("boostnet", False), Variant("joint", False))
    assert orient(Variant("joint", False), Variant("joint", True)) == (Variant("joint", True), Variant("joint", False))
    with pytest.raises(ArgumentError, match="method"):
        Variant("boostnet", "on")
    with pytest.raises(ArgumentError, match="set by the study"):
        plan(tmp_path / "s", VARIANTS[:1], [0], ["--seed", "3"], 1)
    runs = plan(tmp_path / "s", VARIANTS[:2], [0, 1], ["--dataset", "digits", "--epochs", "1"], 1)
    # Seed by seed: a study stopped part-way has whole pairs to compare.
    assert [r.name for r in runs] == ["boostnet-rescale-on-seed0", "boostnet-rescale-off-seed0",
                                      "boostnet-rescale-on-seed1", "boostnet-rescale-off-seed1"]
    with pytest.raises(ArgumentError, match="other training flags"):
        plan(tmp_path / "s", VARIANTS[:2], [0], ["--dataset", "digits", "--epochs", "2"], 2)
    # Where the data lie is not part of what the runs are: another machine continues with its own path.
    plan(tmp_path / "s", VARIANTS[:2], [0], ["--dataset", "digits", "--epochs", "1", "--data-root", "/elsewhere"], 1)
    assert "/elsewhere" not in (tmp_path / "s" / "study.json").read_text()  # the manifest keeps what it first recorded
    # Nor how they execute: compiled or channels-last (value-less switches; the flag after one still counts).
    plan(tmp_path / "s", VARIANTS[:2], [0], ["--compile", "--dataset", "digits", "--channels-last", "--epochs", "1"], 1)
    with pytest.raises(ArgumentError, match="other training flags"):
        plan(tmp_path / "s", VARIANTS[:2], [0], ["--dataset", "digits", "--compile", "--epochs", "3"], 1)
    # A later call may add seeds; the manifest keeps the union.
    plan(tmp_path / "s", VARIANTS[:1], [2], ["--dataset", "digits", "--epochs", "1"], 1)
    assert json.loads((tmp_path / "s" / "study.json").read_text())["seeds"] == [0, 1, 2]


def test_bad_study_flags_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["study", "run", str(tmp_path / "s"), "--", "--frobnicate"])
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
    assert main(["study", "run", str(tmp_path / "s"), "--variants", "joint:maybe"]) == 2
    assert main(["study", "report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("keep")
    assert main(["study", "run", str(tmp_path / "a-file"), "--", "--dataset", "digits"]) == 2
    assert "is a file; a study needs a folder" in capsys.readouterr().err
    assert main(["study", "report", str(REPO / "checkpoints" / "mnist5k-joint"), "--out", str(tmp_path / "a-file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err and (tmp_path / "a-file").read_text() == "keep"
    (tmp_path / "empty").mkdir()
    assert main(["study", "report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "No finished, evaluated run" in capsys.readouterr().err


@pytest.mark.slow
def test_runner_resumes_an_interrupted_run_and_skips_finished_ones(tmp_path, monkeypatch):
    from boostnet_core import training
    root, args = tmp_path / "study", ["--dataset", "digits", "--epochs", "2", "--batch-size", "256", "--train-limit", "300"]
    (run,) = plan(root, [Variant("boostnet", True)], [0], args, 2)
    original = training._train_epoch

    def interrupted(cfg, run_, forward, epoch, *rest):
        if epoch == 1:
            raise KeyboardInterrupt  # the session stopped during epoch 2
        return original(cfg, run_, forward, epoch, *rest)
    monkeypatch.setattr(training, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.train(training.TrainConfig(dataset="digits", epochs=2, batch_size=256, grad_rescale="on",
                                            train_limit=300, out=str(run.folder), progress=False))
    assert epochs_done(run.folder) == 1
    (command,) = commands_for(run, args, threads=1)
    assert command[3] == "train" and "--resume" in command and "--evaluate" in command
    # The threads this test's own process has (conftest.py): a run on every core of the machine, beside the other
    # pytest worker, spent twice the CPU waiting on its threads.
    assert run_study([run], args, jobs=1, progress_every=600, threads=TEST_THREADS) == []
    assert epochs_done(run.folder) == 2 and (run.folder / "evaluation.json").is_file()
    assert commands_for(run, args, threads=1) == []   # finished and evaluated: nothing left to do


def test_runner_refuses_no_jobs_or_no_threads_in_one_sentence(tmp_path):
    (run,) = plan(tmp_path / "study", [Variant("boostnet", True)], [0], ["--dataset", "digits"], 1)
    with pytest.raises(ArgumentError, match="--jobs must be at least 1, got 0"):
        run_study([run], ["--dataset", "digits"], jobs=0)
    with pytest.raises(ArgumentError, match="threads must be at least 1, got 0"):
        run_study([run], ["--dataset", "digits"], threads=0)
    assert not run.folder.exists()   # refused before any run was started


@pytest.fixture(scope="module")
def digits_grid(tmp_path_factory):
    """A 2x2 grid (method x rescaling), two seeds, one epoch on digits, laid out as the runner lays it out."""
    from boostnet_core.evaluation import evaluate_checkpoint
    from boostnet_core.training import TrainConfig, train

    def build(root):
        for v in VARIANTS:
            for seed in (0, 1):
                out = root / run_folder_name(v, seed)
                train(TrainConfig(dataset="digits", epochs=1, batch_size=128, method=v.method, grad_rescale=v.rescale,
                                  seed=seed, train_limit=GRID_TRAIN_LIMIT, out=str(out), progress=False))
                evaluate_checkpoint(out)
    return built_once(tmp_path_factory, "digits-grid", build)


@pytest.fixture(scope="module")
def grid_report(digits_grid):
    return build_report(digits_grid)


@pytest.mark.slow   # builds the shared grid early, while the other worker has work of its own
def test_report_statistics_match_hand_computations(digits_grid, grid_report):
    report = grid_report
    (recipe,) = report["recipes"]
    assert set(recipe["variants"]) == {"boostnet, rescaling on", "boostnet, rescaling off",
                                       "joint, rescaling on", "joint, rescaling off"}
    assert len(recipe["comparisons"]) == 6

    def top1(name):
        return np.array(json.loads((digits_grid / name / "evaluation.json").read_text())["anytime"]["top1"])

    a0, a1 = top1("boostnet-rescale-on-seed0"), top1("boostnet-rescale-on-seed1")
    b0, b1 = top1("joint-rescale-off-seed0"), top1("joint-rescale-off-seed1")
    v = recipe["variants"]["boostnet, rescaling on"]
    assert v["top1_mean"] == pytest.approx((a0 + a1) / 2)
    assert v["top1_sd"] == pytest.approx(np.abs(a0 - a1) / math.sqrt(2))
    pair = next(c for c in recipe["comparisons"] if (c["a"], c["b"]) == ("boostnet, rescaling on", "joint, rescaling off"))
    assert pair["seeds"] == [0, 1]
    d0, d1 = a0 - b0, a1 - b1
    for k, e in enumerate(pair["exits"]):
        mean, half = (d0[k] + d1[k]) / 2, T_975_1 * abs(d0[k] - d1[k]) / 2   # sd |d0-d1|/sqrt(2), /sqrt(2)
        assert (e["difference"], e["low"], e["high"]) == pytest.approx((mean, mean - half, mean + half))
        expected = "A above B" if e["low"] > 0 else "A below B" if e["high"] < 0 else "not distinguishable"
        assert e["verdict"] == expected
    # McNemar of seed 0 at the last exit, by hand from the cached predictions.
    from boostnet_core.evaluation import load_cache
    ca, cb = load_cache(digits_grid / "boostnet-rescale-on-seed0")["test"], load_cache(digits_grid / "joint-rescale-off-seed0")["test"]
    a_ok, b_ok = ca.correct()[-1].numpy(), cb.correct()[-1].numpy()
    n01, n10 = int((a_ok & ~b_ok).sum()), int((~a_ok & b_ok).sum())
    n = n01 + n10
    tail = sum(math.comb(n, i) for i in range(min(n01, n10) + 1)) / 2 ** n
    assert pair["exits"][-1]["per_seed"][0]["mcnemar_p"] == pytest.approx(min(1.0, 2 * tail))
    assert pair["budgeted"] and all(row["share"] in (0.3, 0.4, 0.5, 0.6, 0.8) for row in pair["budgeted"])


def test_t_intervals_alone_equal_the_full_comparison(digits_grid):
    """The app's light comparison (no per-seed tests) gives the report's t-intervals; with one seed it keeps the
    bootstrap interval, which is then the only one there is."""
    from boostnet_core.study.compare import compare
    from boostnet_core.study.runs import load_runs
    runs = load_runs(digits_grid)
    a = {r.seed: r for r in runs if r.variant == Variant("boostnet", True)}
    b = {r.seed: r for r in runs if r.variant == Variant("joint", False)}
    full, light = compare(a, b), compare(a, b, per_seed_tests=False)
    keys = ("difference", "low", "high", "verdict")
    assert [[e[k] for k in keys] for e in light["exits"]] == [[e[k] for k in keys] for e in full["exits"]]
    assert [light["mean_over_exits"][k] for k in keys] == [full["mean_over_exits"][k] for k in keys]
    assert all(not e["per_seed"] for e in light["exits"]) and not light["budgeted"]
    assert all(len(e["per_seed"]) == 2 for e in full["exits"])
    one = compare({0: a[0]}, {0: b[0]}, per_seed_tests=False)
    assert one["exits"][0]["interval"] == "bootstrap over test images" and len(one["exits"][0]["per_seed"]) == 1


def test_runs_of_different_recipes_are_never_compared(digits_grid, tmp_path):
    """Same data, epochs and schedule but another learning rate: a recipe of its own, named apart."""
    from boostnet_core.evaluation import evaluate_checkpoint
    from boostnet_core.training import TrainConfig, train
    other = tmp_path / "boostnet-rescale-on-seed0-lr"
    train(TrainConfig(dataset="digits", epochs=1, batch_size=128, grad_rescale="on", lr=0.05,
                      train_limit=GRID_TRAIN_LIMIT, out=str(other), progress=False))
    evaluate_checkpoint(other)
    report = build_report([digits_grid, other])
    assert len(report["recipes"]) == 2
    lone = next(r for r in report["recipes"] if list(r["variants"]) == ["boostnet, rescaling on"])
    assert lone["variants"]["boostnet, rescaling on"]["seeds"] == [0] and "lr 0.05" in lone["recipe"]
    grid = next(r for r in report["recipes"] if r is not lone)
    assert grid["variants"]["boostnet, rescaling on"]["seeds"] == [0, 1] and "lr 0.1" in grid["recipe"]


def test_report_files(digits_grid, grid_report, tmp_path):
    written = write_report(digits_grid, tmp_path)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["recipes"][0]["comparisons"][0]["exits"][0]["verdict"]
    text = (tmp_path / "report.md").read_text()
    assert "boostnet, rescaling on − joint, rescaling off" in text and "± " in text
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert markdown(written) == text
    # the written report also compares the exit criteria, for the paper's pair, over the seeds both ran
    criteria = saved["recipes"][0]["criteria"]
    assert (criteria["a"], criteria["b"], criteria["seeds"]) == ("boostnet, rescaling on", "joint, rescaling off", [0, 1])
    assert {row["criterion"] for row in criteria["rows"]} == {"max_softmax", "entropy", "margin", "patience", "learned"}
    assert all(row["boostnet_minus_joint"]["interval"] == "seeds (n = 2)" for row in criteria["rows"])
    assert "Exit criteria on the budgeted curve, boostnet, rescaling on against joint, rescaling off" in text
    assert "criteria" not in grid_report["recipes"][0]   # build_report alone leaves it out (seconds per run)
    # each seed's own test over test images has a row: difference, bootstrap interval and McNemar's p per exit
    pair = grid_report["recipes"][0]["comparisons"][0]
    for i, seed in enumerate(pair["seeds"]):
        row = next(line for line in text.splitlines() if line.startswith(f"| {pair['a']} − {pair['b']} | {seed} |"))
        first = pair["exits"][0]["per_seed"][i]
        assert row.split(" | ")[2].startswith(f"{first['difference']:+.2f} [{first['bootstrap_low']:+.2f}, ")
        assert (" p < 0.001" if first["mcnemar_p"] < 0.001 else f" p {first['mcnemar_p']:.2g}") in row.split(" | ")[2]


# ---------------------------------------------------------------- the app draws what the seeds say


def _app_page(name: str):
    sys.path.insert(0, str(REPO / "app"))
    from streamlit.testing.v1 import AppTest
    share_apptest_work_once()
    return AppTest.from_file(str(REPO / "app" / "views" / f"{name}.py"), default_timeout=120)


def _app_figure(at, key: str) -> dict:
    import plotly.io
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}"))
    return plotly.io.from_json(chart.proto.spec).to_plotly_json()


def test_curves_draw_a_seed_band_when_a_model_has_siblings(digits_grid):
    at = _app_page("accuracy_cost")
    at.session_state["extra_checkpoints"] = [str(p) for p in sorted(digits_grid.iterdir()) if p.is_dir()]
    at.run()
    at.multiselect(key="curve_models").set_value([str(digits_grid / "boostnet-rescale-on-seed0"), str(REPO / "checkpoints" / "mnist5k-boostnet")]).run()
    assert not at.exception
    names = [t.get("name", "") for t in _app_figure(at, "curves_digits")["data"]]
    assert "boostnet-rescale-on-seed0: mean ± sd over 2 seeds" in names
    names = [t.get("name", "") for t in _app_figure(at, "curves_mnist5k")["data"]]   # another data set, another chart
    assert not any(n.startswith("mnist5k-boostnet: mean") for n in names)   # a model alone: no band, as before


def test_compare_shows_the_interval_over_seeds(digits_grid):
    at = _app_page("compare_models")
    at.session_state["extra_checkpoints"] = [str(p) for p in sorted(digits_grid.iterdir()) if p.is_dir()]
    at.run()
    at.selectbox(key="compare_a").set_value(str(digits_grid / "boostnet-rescale-on-seed0"))
    at.selectbox(key="compare_b").set_value(str(digits_grid / "joint-rescale-off-seed0")).run()
    assert not at.exception
    fig = _app_figure(at, "cmp_seeds")
    assert any("over seeds 0, 1" in m.value for m in at.markdown) and len(fig["data"][0]["x"]) == 4
