"""Checkpoint folders: round trip, and one clear error for every way a folder can be wrong."""
import json

import pytest
import torch

from boostnet_core import load_model
from boostnet_core.checkpoint import CheckpointError, read_meta


def test_round_trip_gives_identical_outputs(digits_checkpoint, digits_model):
    again = load_model(digits_checkpoint)
    x = torch.randn(4, 1, 8, 8)
    for a, b in zip(digits_model(x), again(x)):
        assert torch.equal(a, b)
    assert again.meta["classes"] == [str(i) for i in range(10)]
    assert again.macs == digits_model.macs


def test_nothing_is_pickled(digits_checkpoint):
    for f in digits_checkpoint.iterdir():
        assert not f.read_bytes().startswith(b"\x80"), f  # pickle protocol header


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
    (lambda d: (d / "model.json").unlink(), "model.json is missing"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]), "truncated, replaced or modified"),
    (lambda d: (d / "model.json").write_text("{not json"), "is not valid JSON"),
    (lambda d: (d / "model.json").write_text(json.dumps({"hello": 1})), "is not a BoostNet checkpoint"),
])
def test_damaged_folder_gives_one_clear_error(digits_copy, damage, message):
    damage(digits_copy)
    with pytest.raises(CheckpointError, match=message):
        load_model(digits_copy)


def test_tampered_weights_are_caught(digits_copy):
    data = bytearray((digits_copy / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (digits_copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_model(digits_copy)


def test_architecture_mismatch_names_the_keys(digits_copy):
    meta = json.loads((digits_copy / "model.json").read_text())
    meta["config"]["growth_rate"] = 8
    (digits_copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit the architecture"):
        load_model(digits_copy)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    f = tmp_path / "file.bin"
    f.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file, not a checkpoint folder"):
        read_meta(f)


def test_foreign_safetensors_file(digits_copy):
    from safetensors.torch import save_file
    from boostnet_core.checkpoint import sha256_of
    save_file({"weight": torch.zeros(3)}, str(digits_copy / "model.safetensors"))
    meta = json.loads((digits_copy / "model.json").read_text())
    meta["weights_sha256"] = sha256_of(digits_copy / "model.safetensors")
    (digits_copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing"):
        load_model(digits_copy)


def test_unknown_config_field_is_one_clear_error(digits_copy):
    meta = json.loads((digits_copy / "model.json").read_text())
    meta["config"]["wings"] = 2
    (digits_copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"cannot build: Unknown msdnet setting\(s\) \['wings'\]"):
        load_model(digits_copy)
