"""One threshold format and the certificate file: what calibrate certifies reaches predict, export and Python intact,
and is refused for other weights."""
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from boostnet_core import load_model
from boostnet_core.calibration import calibrate_checkpoint
from boostnet_core.certificate import read_certificate
from boostnet_core.checkpoint import read_meta, save_model
from boostnet_core.cli import main
from boostnet_core.errors import ArgumentError, CertificateError, CheckpointError
from boostnet_core.evaluation import load_cache
from boostnet_core.inference import preprocess_image
from boostnet_core.thresholds import assign_exits, check_thresholds, format_thresholds, parse_thresholds

from conftest import REPO

SETTING = ["--risk", "disagreement", "--epsilon", "0.05", "--delta", "0.1"]


def strict(text: str):
    """json.loads that refuses NaN and Infinity, as JavaScript's and Go's parsers do."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def mnist(tmp_path):
    folder = tmp_path / "mnist5k-boostnet"
    shutil.copytree(REPO / "checkpoints" / "mnist5k-boostnet", folder)
    return folder


@pytest.fixture
def digit_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


# ---------------------------------------------------------------- the threshold format


def test_threshold_text_round_trips_exactly():
    values = [math.inf, 0.1 + 0.2, 0.9007123112678528, 1.0, 0.0]
    text = format_thresholds(torch.tensor(values, dtype=torch.float64))
    assert text.split(",")[0] == "none"
    assert parse_thresholds(text) == values                       # bit for bit, not to 4 digits
    assert parse_thresholds("None, INF ,0.5") == [math.inf, math.inf, 0.5]


@pytest.mark.parametrize("text", ["abc", "0.5,,0.7", "nan", "-inf"])
def test_bad_threshold_text_is_one_sentence(text):
    with pytest.raises(ArgumentError, match="each a number or 'none'"):
        parse_thresholds(text)


def test_none_means_no_exit_here_in_every_spelling():
    expected = torch.tensor([math.inf, 0.5, 0.0], dtype=torch.float64)
    for spelling in ([None, 0.5, 0.0], (math.inf, 0.5, 0.0), np.array([np.inf, 0.5, 0.0]), expected):
        assert torch.equal(check_thresholds(spelling, 3), expected)
    with pytest.raises(ArgumentError, match=r"must lie in \[0, 1\] or be none"):
        check_thresholds([1.01, 0.5, 0.0], 3)
    with pytest.raises(ArgumentError, match="a number or None"):
        check_thresholds(["0.5", 0.5, 0.0], 3)


# ---------------------------------------------------------------- calibrate -> predict / export / Python


def test_printed_thresholds_reproduce_the_certified_exits_and_predict_takes_them(mnist, digit_files, capsys):
    assert main(["calibrate", str(mnist), *SETTING]) == 0
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("thresholds: "))
    text = printed.removeprefix("thresholds: ")
    certified = calibrate_checkpoint(mnist, "disagreement", 0.05, 0.1)["thresholds"]
    val = load_cache(mnist)["val"].confidence
    assert torch.equal(assign_exits(val, parse_thresholds(text)), assign_exits(val, certified))
    assert parse_thresholds(text) == [math.inf if t is None else t for t in certified]
    assert main(["predict", str(mnist), *digit_files, "--threshold", text, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model = load_model(mnist)
    x = torch.stack([preprocess_image(p, model.meta) for p in digit_files])
    direct = model.predict_early(x, certified)            # the JSON list, None included, as is
    assert [r["exit_index"] for r in rows] == direct.exit_index.tolist()


def test_certificate_file_is_strict_json_and_predict_uses_it(mnist, digit_files, tmp_path, capsys):
    cert = tmp_path / "cert.json"
    assert main(["calibrate", str(mnist), *SETTING, "--out", str(cert), "--json"]) == 0
    printed = strict(capsys.readouterr().out)
    record = strict(cert.read_text())
    assert record == printed and record["format"] == "boostnet-certificate/1"
    assert record["weights_sha256"] == read_meta(mnist)["weights_sha256"] and len(record["cache_sha256"]) == 64
    assert record["calibration"]["images"] > 0 and "probability" in record["guarantee"]
    assert main(["predict", str(mnist), *digit_files, "--certificate", str(cert), "--json"]) == 0
    by_file = [json.loads(line)["exit_index"] for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", str(mnist), *digit_files, "--threshold", format_thresholds(record["thresholds"]),
                 "--json"]) == 0
    assert by_file == [json.loads(line)["exit_index"] for line in capsys.readouterr().out.splitlines()]


def test_learned_certificate_carries_its_fitted_score(mnist, tmp_path, capsys):
    cert = tmp_path / "learned.json"
    assert main(["calibrate", str(mnist), *SETTING, "--criterion", "learned", "--out", str(cert)]) == 0
    certificate = read_certificate(cert)
    assert certificate.criterion == "learned" and len(certificate.criterion_params["coef"]) == 5
    model = load_model(mnist)
    x = torch.randn(3, *model.input_shape)
    result = model.predict_early(x, certificate)
    assert result.criterion == "learned"
    with pytest.raises(ArgumentError, match="certificate is for the learned criterion"):
        model.predict_early(x, certificate, criterion="entropy")


def test_a_certificate_for_other_weights_is_refused(mnist, digit_files, tmp_path, capsys):
    cert = tmp_path / "cert.json"
    assert main(["calibrate", str(mnist), *SETTING, "--out", str(cert)]) == 0
    old = read_meta(mnist)["weights_sha256"]
    model = load_model(mnist)
    certificate = read_certificate(cert)
    model.predict_early(torch.randn(1, 1, 28, 28), certificate)   # its own weights: accepted
    with torch.no_grad():
        model.backbone.head(0).linear.bias += 0.01         # new weights, as a resumed epoch would give
    with pytest.raises(CertificateError, match="calibrate this model again"):   # in memory, before any file changes
        model.predict_early(torch.randn(1, 1, 28, 28), certificate)
    save_model(model, mnist)
    assert model.meta["weights_sha256"] == read_meta(mnist)["weights_sha256"] != old
    new = read_meta(mnist)["weights_sha256"]
    capsys.readouterr()
    assert main(["predict", str(mnist), *digit_files, "--certificate", str(cert)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and old[:12] in err and new[:12] in err
    with pytest.raises(CertificateError):
        load_model(mnist).predict_early(torch.randn(1, 1, 28, 28), read_certificate(cert))
    # The cache was computed from the old weights: calibrate refuses it, and says what to run.
    assert main(["calibrate", str(mnist), *SETTING]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"boostnet evaluate {mnist} --write" in err and old[:12] in err
    with pytest.raises(CheckpointError, match="computed from weights"):
        load_cache(mnist)


def test_a_cache_that_records_no_weights_is_refused_beside_weights(mnist):
    from safetensors.torch import load_file, save_file
    path = mnist / "eval_cache.safetensors"
    save_file(load_file(path), path, metadata={"splits": "test,val", "confidence": "max_softmax"})
    with pytest.raises(CheckpointError, match="records no weights"):
        load_cache(mnist)


EDITS = [{"epsilon": "x"}, {"epsilon": None}, {"delta": 1.5}, {"weights_sha256": "abc"}, {"risk": "other"},
         {"criterion": "learned", "criterion_params": {}}, {"thresholds": [0.5, "x"]}, {"thresholds": []},
         {"criterion": ["max_softmax"]}]


@pytest.mark.parametrize("content", ["{", '{"format": "other"}', '{"format": "boostnet-certificate/1"}',
                                     '{"format": "boostnet-certificate/1", "thresholds": [NaN]}', *EDITS])
def test_a_file_that_is_not_a_certificate_is_one_sentence(mnist, digit_files, tmp_path, capsys, content):
    bad = tmp_path / "bad.json"
    if isinstance(content, dict):   # a real certificate, edited by hand
        record = calibrate_checkpoint(mnist, "disagreement", 0.05, 0.1)
        bad.write_text(json.dumps(dict(record, **content)))
    else:
        bad.write_text(content)
    assert main(["predict", str(mnist), *digit_files, "--certificate", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(CertificateError):
        read_certificate(bad)
    with pytest.raises(CertificateError, match="does not exist"):
        read_certificate(tmp_path / "missing.json")


def test_export_takes_printed_thresholds_and_certificates_as_strict_json(mnist, tmp_path, capsys):
    cert = tmp_path / "cert.json"
    assert main(["calibrate", str(mnist), *SETTING, "--out", str(cert), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    out = tmp_path / "onnx"
    printed = format_thresholds(record["thresholds"])
    assert "none" in printed   # this model's certified thresholds have exits nobody leaves at
    old = os.umask(0o022)
    try:
        assert main(["export", str(mnist), "--out", str(out), "--threshold", printed]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755   # the umask's, not mkdtemp's private 0o700
    assert strict((out / "manifest.json").read_text())["thresholds"] == [
        None if t == math.inf else t for t in parse_thresholds(printed)]
    assert main(["export", str(mnist), "--out", str(out), "--certificate", str(cert)]) == 0
    manifest = strict((out / "manifest.json").read_text())
    assert manifest["thresholds"] == record["thresholds"]
    assert manifest["certificate"]["guarantee"] == record["guarantee"]
    assert manifest["certificate"]["weights_sha256"] == record["weights_sha256"]


def test_export_refuses_a_certificate_of_another_criterion(mnist, tmp_path, capsys):
    cert = tmp_path / "entropy.json"
    assert main(["calibrate", str(mnist), *SETTING, "--criterion", "entropy", "--out", str(cert)]) == 0
    assert main(["export", str(mnist), "--out", str(tmp_path / "onnx"), "--certificate", str(cert)]) == 2
    assert "for the entropy criterion" in capsys.readouterr().err


# ---------------------------------------------------------------- calibrate's sentences


def test_calibrate_says_what_is_wrong_with_the_folder(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path / "nowhere"), *SETTING]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_calibrate_a_model_without_a_validation_split(mnist, capsys):
    meta = json.loads((mnist / "model.json").read_text())
    meta["data"]["val_size"] = 0
    (mnist / "model.json").write_text(json.dumps(meta))
    assert main(["calibrate", str(mnist), *SETTING]) == 2
    err = capsys.readouterr().err
    assert "trained without a validation split" in err and "evaluate" not in err


def test_the_weights_hash_in_memory_is_the_files():
    """weights.weights_sha256 hashes the tensors as save_model writes them, so a loaded model's hash is its file's."""
    from boostnet_core.weights import weights_sha256
    for name in ("mnist5k-boostnet", "cifar10-joint"):
        assert weights_sha256(load_model(REPO / "checkpoints" / name)) == read_meta(REPO / "checkpoints" / name)["weights_sha256"]


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_certified_exits_are_reproduced_by_real_early_exit_on_the_validation_split(engine):
    """The certified thresholds lie between scores, so real early exit on the validation images (any engine, its own
    float rounding) takes exactly the exits the certificate was computed from."""
    from boostnet_core.data import load_dataset, normalize
    folder = REPO / "checkpoints" / "mnist5k-boostnet"
    model = load_model(folder)
    data = model.meta["data"]
    val = load_dataset("mnist5k", None, model.meta["input_size"], 1, data["val_size"], data["split_seed"]).val
    record = calibrate_checkpoint(folder, "disagreement", 0.02, 0.1)
    cached = load_cache(folder)["val"]
    assert torch.equal(val.labels, cached.labels)
    x = normalize(val.images, model.meta["mean"], model.meta["std"])
    got = model.predict_early(x, record["thresholds"], engine=engine).exit_index
    assert torch.equal(got, assign_exits(cached.confidence, record["thresholds"]))
    assert len(set(got.tolist())) >= 2
