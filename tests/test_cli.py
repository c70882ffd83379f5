"""The command line: exit status 2 and one sentence for every mistake a user can make."""
import json
import runpy
import sys

import pytest

from boostnet_core.cli import main


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "nope", "--out", "x"], "invalid choice: 'nope'"),
    (["train", "--out", "x", "--preset", "big"], "invalid choice: 'big'"),
    (["train", "--out", "x", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["info", "--preset", "nope"], "invalid choice"),
    (["evaluate", "x", "--batch-size", "0"], "must be at least 1"),
    (["train", "--out", "x", "--threads", "0"], "must be at least 1"),
    (["train", "--out", "x", "--workers", "-1"], "must be at least 0"),
    (["evaluate", "x", "--budget", "-5"], "must be positive"),
])
def test_bad_flags_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_errors_are_one_sentence_without_traceback(tmp_path, capsys):
    cases = [
        (["train", "--dataset", "cifar10", "--out", str(tmp_path / "a")], "needs --data-root"),
        (["train", "--dataset", "folder", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")], "does not exist"),
        (["train", "--dataset", "digits", "--out", str(tmp_path / "c"), "--resume"], "Nothing to resume"),
        (["info", str(tmp_path)], "model.json is missing"),
        (["evaluate", str(tmp_path / "none")], "does not exist"),
        (["predict", str(tmp_path / "none"), "x.png"], "does not exist"),
        (["info"], "Give either a checkpoint folder or --preset"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_user_errors_share_one_base_and_bugs_keep_their_traceback(monkeypatch, tmp_path, capsys):
    from boostnet_core import cli
    from boostnet_core.errors import ArgumentError, CheckpointError, DataError, TrainingError, UserError
    from boostnet_core.training import TrainConfig
    # every user error is a UserError and still a ValueError (the app and older callers catch ValueError)
    assert all(issubclass(e, UserError) and issubclass(e, ValueError)
               for e in (ArgumentError, CheckpointError, DataError, TrainingError))
    assert issubclass(TrainingError, RuntimeError)
    with pytest.raises(ArgumentError, match="--schedule"):   # a bad argument of a public function
        TrainConfig(out=str(tmp_path), schedule="linear")
    # a user error raised deep inside a command: one sentence, exit 2
    def user_error(args, argv):
        raise DataError("No data here.")

    def bug(args, argv):
        return int("not a number")

    monkeypatch.setitem(cli.COMMANDS, "info", user_error)
    assert main(["info", "--preset", "digits"]) == 2
    assert capsys.readouterr().err == "boostnet: error: No data here.\n"
    # a ValueError that is no user error is a bug: it propagates with its traceback instead of exit 2
    monkeypatch.setitem(cli.COMMANDS, "info", bug)
    with pytest.raises(ValueError, match="invalid literal"):
        main(["info", "--preset", "digits"])


def test_python_dash_m_is_the_same_program(capsys, monkeypatch):
    """`python -m boostnet_core` (its __main__ module, run as -m runs it) prints what the `boostnet` entry point's
    main() prints and exits with its status. Real `python -m boostnet_core` processes run in tests/test_training.py
    (torchrun's two) and tests/test_study.py (the study runner's)."""
    monkeypatch.setattr(sys, "argv", ["boostnet_core", "info", "--preset", "digits", "--json"])
    with pytest.raises(SystemExit) as ended:
        runpy.run_module("boostnet_core", run_name="__main__", alter_sys=True)
    assert ended.value.code == 0
    printed = capsys.readouterr().out
    assert main(["info", "--preset", "digits", "--json"]) == 0
    assert json.loads(printed) == json.loads(capsys.readouterr().out)


def test_info_of_a_checkpoint(digits_checkpoint, capsys):
    assert main(["info", str(digits_checkpoint), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["exits"] == 4 and info["method"] == "boostnet" and info["num_classes"] == 10


def test_engines_shows_the_picks_with_when_and_where_they_were_measured(tmp_path, monkeypatch, capsys):
    """`boostnet engines CKPT`: the auto engine's table as data, read from the engine cache (measuring itself is
    tested in test_engines.py; --measure takes tens of seconds)."""
    import json
    from boostnet_core import load_model
    from boostnet_core.engines.registry import disk_of
    from conftest import REPO
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path))
    monkeypatch.setenv("BOOSTNET_ENGINE_CACHE", "on")
    checkpoint = str(REPO / "checkpoints" / "mnist5k-boostnet")
    assert main(["engines", checkpoint]) == 0
    assert "Nothing measured yet" in capsys.readouterr().out
    measured = {"at": "2026-12-07T00:00:00+00:00", "host": "here", "torch_threads": 2, "load_average_1min": 0.5}
    model = load_model(checkpoint)   # held: the engine cache holds its model weakly
    disk_of(model).keep_pick("fp32", "image", "whole", "onnxruntime", {"onnxruntime": 0.001, "openvino": 0.002},
                             measured)
    assert main(["engines", checkpoint]) == 0
    out = capsys.readouterr().out
    assert "image/whole    onnxruntime  (onnxruntime 1.00 ms, openvino 2.00 ms)" in out and "load 0.50" in out
    assert main(["engines", checkpoint, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["picks"]["image/whole"]["measured"] == measured
    plan = {"engine": "onnxruntime", "one_graph_by_exit": [0.0005, 0.001, 0.0015, 0.002, 0.0025],
            "whole_then_choose": 0.002}   # what auto.ExitPlan weighs for early exit
    disk_of(model).keep_pick("fp32", "image", "early", "onnxruntime", {"onnxruntime": 0.001}, measured, exit_plan=plan)
    assert main(["engines", checkpoint]) == 0
    assert "one graph 0.50 / 1.00 / 1.50 / 2.00 / 2.50 ms" in capsys.readouterr().out


def test_engines_reads_a_damaged_picks_file_as_nothing_measured(tmp_path, monkeypatch, capsys):
    from boostnet_core import load_model
    from boostnet_core.engines.registry import disk_of
    from conftest import REPO
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path))
    monkeypatch.setenv("BOOSTNET_ENGINE_CACHE", "on")
    checkpoint = str(REPO / "checkpoints" / "mnist5k-boostnet")
    model = load_model(checkpoint)
    disk = disk_of(model)
    disk.keep_pick("fp32", "image", "whole", "onnxruntime", {"onnxruntime": 0.001})
    (path,) = disk.folder.glob("auto-fp32-*.json")
    path.write_text('{"image/whole": "openvino", "batch/whole": {"engine": "torch", "seconds": {"torch": "x"}}, '
                    '"batch/early": {"engine": "onnxruntime", "exit_plan": {"engine": "onnxruntime"}}}')
    assert disk.picks("fp32") == {}
    assert main(["engines", checkpoint]) == 0 and "Nothing measured yet" in capsys.readouterr().out


def test_a_warning_is_one_line_and_main_leaves_the_callers_warnings_as_they_were(monkeypatch, capsys):
    import warnings
    from boostnet_core import cli

    def warns(args, argv):
        warnings.warn("Inference engine 'openvino' (fp32) is not used: not installed; using 'torch-fold' instead.",
                      RuntimeWarning)
        return 0
    monkeypatch.setitem(cli.COMMANDS, "info", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        before = warnings.showwarning
        assert main(["info", "--preset", "digits"]) == 0
        assert warnings.showwarning is before
    assert capsys.readouterr().err == ("boostnet: warning: Inference engine 'openvino' (fp32) is not used: not "
                                       "installed; using 'torch-fold' instead.\n")
