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
    with pytest.raises(CheckpointError, match=r"cannot be built: Unknown msdnet setting\(s\) \['wings'\]"):
        load_model(digits_copy)


def _edited(folder, **changes):
    """`folder` with its model.json's config (and top-level fields, prefixed meta_; None removes one) changed."""
    meta = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        if key.startswith("meta_") and value is None:
            del meta[key[5:]]
        elif key.startswith("meta_"):
            meta[key[5:]] = value
        else:
            meta["config"][key] = value
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("changes, message", [
    ({"n_blocks": 100_000}, "n_blocks must be a whole number from 1 to 32, got 100000"),
    ({"num_classes": 10 ** 8}, "num_classes must be a whole number from 2 to 25000"),
    ({"n_channels": 10 ** 7}, "n_channels must be a whole number from 1 to 1024"),
    ({"growth_rate": -6}, "growth_rate must be a whole number from 1 to 512, got -6"),
    ({"growth_rate": 6.5}, "growth_rate must be a whole number"),
    ({"gr_factor": [1, 2, 4, 8, 16, 16, 16], "bn_factor": [1] * 7}, "gr_factor must list 1 to 6"),
    ({"n_blocks": 32, "step": 32}, "over the limit of 256"),
    ({"meta_input_size": 10 ** 6}, "input_size must be a whole number of pixels from 8 to 1024, got 1000000"),
    ({"meta_mean": [0.5, 0.5, 0.5], "meta_std": [0.2, 0.2, 0.2]}, "mean and std have 3 values but the network takes 1"),
    ({"meta_std": [0.0]}, "std positive"),
    ({"meta_classes": ["a"] * 11}, "classes must name the network's 10 classes"),
])
def test_absurd_configs_are_refused_before_anything_is_built_or_read(digits_copy, monkeypatch, changes, message):
    """Every size model.json records is bounded: the refusal comes from the numbers alone; no layer is built and
    the weights file is never read."""
    from boostnet_core import checkpoint
    from boostnet_core.models.msdnet import MSDNet
    monkeypatch.setattr(MSDNet, "__init__", lambda *a, **k: pytest.fail("a backbone was built"))
    monkeypatch.setattr(checkpoint, "sha256_of", lambda *a: pytest.fail("the weights were read"))
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(_edited(digits_copy, **changes))
    assert "cannot be built" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("changes", [{"growth_rate": 4}, {"n_blocks": 3, "meta_macs": None},
                                     {"num_classes": 12, "meta_classes": None},
                                     {"head_channels": 16}, {"meta_mean": [0.5] * 3, "meta_std": [0.2] * 3,
                                                             "in_channels": 3}])
def test_a_config_that_disagrees_with_the_weights_is_refused_from_the_header(digits_copy, monkeypatch, changes):
    """Plausible sizes that are not the weights' own: the tensor names and shapes in the safetensors header tell,
    before any weight is read; the network was only laid out on the meta device (no memory)."""
    from boostnet_core import checkpoint
    monkeypatch.setattr(checkpoint, "load_tensors", lambda *a: pytest.fail("the weights were read"))
    with pytest.raises(CheckpointError, match="does not fit the architecture in model.json"):
        load_model(_edited(digits_copy, **changes))


def test_a_hostile_safetensors_header_is_one_clear_error(digits_copy):
    from boostnet_core.checkpoint import read_header, sha256_of
    assert read_header(digits_copy / "model.safetensors")  # the real header: names -> (dtype, shape)
    (digits_copy / "model.safetensors").write_bytes((2 ** 40).to_bytes(8, "little") + b"{}")
    _edited(digits_copy, meta_weights_sha256=sha256_of(digits_copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match="is not a readable safetensors file"):
        load_model(digits_copy)


def test_loaded_weights_become_the_models_own_tensors(digits_model):
    """Loading lays the network out on the meta device and takes the file's tensors: none is left without memory."""
    import itertools
    tensors = list(itertools.chain(digits_model.parameters(), digits_model.buffers()))
    assert tensors and not any(t.is_meta for t in tensors)
    assert all(p.requires_grad for p in digits_model.parameters())
