"""Training: accuracy on digits, exact resume, a 2-process torchrun run, and its failure modes."""
import json

import pytest
import torch

from boostnet_core import load_model
from boostnet_core.checkpoint import CheckpointError
from boostnet_core.training import TrainConfig, TrainingError, train
from boostnet_core.errors import ArgumentError

from conftest import REPO


def test_digits_three_epochs_reach_90_percent(digits_checkpoint):
    log = [json.loads(l) for l in (digits_checkpoint / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert log[-1]["val_top1"][-1] >= 90.0
    assert len(log[-1]["loss_per_head"]) == 4 and log[-1]["images_per_s"] > 0


def test_loaded_model_exit_logits_are_sum_of_weighted_heads(digits_model):
    x = torch.randn(5, 1, 8, 8)
    heads, exits = digits_model.head_logits(x), digits_model(x)
    w = digits_model.reweight
    assert w == 0.5
    for n, F in enumerate(exits):
        assert torch.allclose(F, sum(w ** (n - i) * heads[i] for i in range(n + 1)), atol=1e-5)
        assert torch.allclose(digits_model.contributions(heads, n).sum(0), F, atol=1e-5)


def test_model_json_records_recipe_split_and_command(digits_checkpoint):
    meta = json.loads((digits_checkpoint / "model.json").read_text())
    assert meta["method"] == "boostnet" and meta["grad_rescale"] is True
    assert meta["data"]["val_size"] == 144 and meta["data"]["split_seed"] == 0
    assert meta["train"]["epochs"] == 3 and meta["command"].startswith("boostnet train")
    assert len(meta["macs"]) == meta["num_exits"] == 4


def _weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    common = dict(dataset="digits", epochs=2, progress=False, batch_size=128, train_limit=384)   # 3 steps an epoch
    train(TrainConfig(out=str(tmp_path / "straight"), **common))
    # Interrupted after one epoch: a one-epoch run of a 2-epoch schedule is what an interruption leaves.
    interrupted = TrainConfig(out=str(tmp_path / "resumed"), **common)
    _train_one_epoch_then_stop(interrupted)
    train(TrainConfig(out=str(tmp_path / "resumed"), resume=True, **common))
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in log] == [1, 2]


def _train_one_epoch_then_stop(cfg):
    """Run `cfg` but stop (as a killed process would) right after the first epoch's checkpoint is written."""
    from boostnet_core import training

    original = training._save_epoch

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    training._save_epoch = save_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    finally:
        training._save_epoch = original


def test_resume_with_nothing_to_resume(tmp_path):
    with pytest.raises(CheckpointError, match="Nothing to resume"):
        train(TrainConfig(dataset="digits", out=str(tmp_path / "none"), resume=True, progress=False))


def test_existing_run_is_not_overwritten(digits_copy):
    before = (digits_copy / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a training run"):
        train(TrainConfig(dataset="digits", out=str(digits_copy), progress=False))
    assert (digits_copy / "model.safetensors").read_bytes() == before


def test_resume_with_different_settings_is_refused(digits_copy):
    with pytest.raises(TrainingError, match="differ from the saved run"):
        train(TrainConfig(dataset="digits", out=str(digits_copy), epochs=5, lr=0.05, resume=True, progress=False))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from boostnet_core import training
    out = tmp_path / "nan"
    calls = {"n": 0}
    original = training.boosting_loss

    def poisoned(head_logits, target, reweight):
        calls["n"] += 1
        total, per_head = original(head_logits, target, reweight)
        if calls["n"] > 3:  # second epoch (3 steps per epoch: 384 images at batch 128)
            total = total * float("nan")
            per_head = [p * float("nan") for p in per_head]
        return total, per_head

    monkeypatch.setattr(training, "boosting_loss", poisoned)
    with pytest.raises(TrainingError, match="non-finite in epoch 2; the checkpoint of epoch 1 is kept"):
        train(TrainConfig(dataset="digits", out=str(out), epochs=3, batch_size=128, train_limit=384, progress=False))
    model = load_model(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert json.loads((out / "model.json").read_text())["train"]["epochs_done"] == 1


def test_joint_training_records_method(tmp_path):
    out = tmp_path / "joint"
    train(TrainConfig(dataset="digits", out=str(out), epochs=1, method="joint", train_limit=128, progress=False))
    model = load_model(out)
    assert model.method == "joint" and model.reweight == 0.0
    assert json.loads((out / "model.json").read_text())["grad_rescale"] is False


@pytest.mark.slow
def test_two_process_torchrun_on_cpu(tmp_path, monkeypatch):
    """`torchrun --standalone --nproc_per_node 2 -m boostnet_core train ...`: torchrun's own main() runs here (the
    launcher that `python -m torch.distributed.run` starts, without a third Python importing torch) and starts the
    two training processes."""
    import signal
    from torch.distributed.run import main as torchrun
    out = tmp_path / "ddp"
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # torchrun forwards the signals it handles to its workers, through handlers it installs in this process and an
    # environment variable it sets: the two signals only, both put back afterwards (monkeypatch restores the variable).
    monkeypatch.setenv("TORCHELASTIC_SIGNALS_TO_HANDLE", "SIGTERM,SIGINT")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        torchrun(["--standalone", "--nproc_per_node", "2", "--signals-to-handle", "SIGTERM,SIGINT", "-m", "boostnet_core",
                  "train", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--quiet"])   # raises on failure
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    model = load_model(out)
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and log[-1]["val_top1"][-1] > 50
    assert model.num_exits == 4


@pytest.mark.slow
def test_large_images_stream_from_disk_with_imagenet_transforms(tmp_path, monkeypatch):
    """Inputs over 64 px are not decoded into memory: they stream through a DataLoader (random-resized crop + flip
    for training, resize + centre crop for evaluation). One short epoch of the ImageNet step-5 layout at 224 px,
    narrowed (8 channels, growth 4: 2.3 M parameters instead of 36 M, whose run folder alone is 415 MB to write)."""
    import numpy as np
    from PIL import Image
    from boostnet_core.data import FileSet, load_dataset
    from boostnet_core.evaluation import evaluate_checkpoint
    from boostnet_core.models.presets import PRESETS, get_preset
    monkeypatch.setenv("BOOSTNET_CACHE", str(tmp_path / "cache"))
    step5 = get_preset("imagenet-msdnet-step5")
    monkeypatch.setitem(PRESETS, "imagenet-step5-narrow", dict(step5, config=dict(step5["config"], n_channels=8, growth_rate=4)))
    root = tmp_path / "big"
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (90 + 10 * i, 120, 3), dtype=np.uint8)).save(root / split / c / f"{i}.jpg")
    bundle = load_dataset("folder", str(root), input_size=224, in_channels=3, val_size=2)
    assert isinstance(bundle.train, FileSet) and len(bundle.train) == 4 and len(bundle.val) == 2
    out = tmp_path / "run"
    train(TrainConfig(dataset="folder", data_root=str(root), preset="imagenet-step5-narrow", out=str(out), epochs=1,
                      batch_size=2, val_size=2, workers=0, progress=False))
    model = load_model(out)
    assert model.backbone.cfg.num_classes == 2 and model.meta["input_size"] == 224
    result = evaluate_checkpoint(out, batch_size=2)
    assert len(result["anytime"]["top1"]) == 5 and len(result["budgeted"]) == 39


def test_multistep_schedule_divides_by_ten_at_each_milestone():
    from boostnet_core.training import learning_rate
    cfg = TrainConfig(epochs=300, lr=0.1, schedule="multistep", milestones=(0.5, 0.75))
    steps = 10  # per epoch
    assert learning_rate(cfg, 149 * steps + 9, steps) == pytest.approx(0.1)     # last step of epoch 150
    assert learning_rate(cfg, 150 * steps, steps) == pytest.approx(0.01)        # the paper's epoch 150
    assert learning_rate(cfg, 225 * steps - 1, steps) == pytest.approx(0.01)
    assert learning_rate(cfg, 225 * steps, steps) == pytest.approx(0.001)       # and 225


def test_cosine_schedule_starts_at_lr_and_ends_near_zero():
    from boostnet_core.training import learning_rate
    cfg = TrainConfig(epochs=2, lr=0.1)
    assert learning_rate(cfg, 0, 5) == pytest.approx(0.1)
    assert learning_rate(cfg, 5, 5) == pytest.approx(0.05)
    assert learning_rate(cfg, 9, 5) < 0.003


def test_sync_bn_converts_every_batch_norm_of_the_backbone():
    from boostnet_core import create_model
    from boostnet_core.training import sync_batch_norm
    model = sync_batch_norm(create_model("digits"))
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.SyncBatchNorm in kinds and torch.nn.BatchNorm2d not in kinds


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "model.txt"
    f.write_text("keep me")
    with pytest.raises(CheckpointError, match="is a file; choose a folder"):
        train(TrainConfig(dataset="digits", out=str(f), progress=False))
    assert f.read_text() == "keep me"


def test_resuming_a_finished_run_is_refused(digits_copy):
    with pytest.raises(TrainingError, match="already finished its 3 epochs"):
        train(TrainConfig(dataset="digits", out=str(digits_copy), epochs=3, resume=True, progress=False,
                          command="boostnet train --dataset digits --epochs 3"))


def test_corrupt_training_state_is_one_clear_error(digits_copy):
    (digits_copy / "train_state.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="is not a readable training state"):
        train(TrainConfig(dataset="digits", out=str(digits_copy), epochs=4, resume=True, progress=False))


def test_ranet_with_gradient_rescaling_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="defined for MSDNet only"):
        train(TrainConfig(dataset="digits", preset="cifar100-ranet", grad_rescale="on", out=str(tmp_path / "r"),
                          progress=False))
    assert not (tmp_path / "r").exists()


def test_every_train_config_field_has_a_flag():
    from dataclasses import fields
    from boostnet_core.cli import build_parser
    args = build_parser().parse_args(["train", "--out", "x"])
    missing = [f.name for f in fields(TrainConfig) if f.name not in ("progress", "command") and not hasattr(args, f.name)]
    assert not missing


def test_out_that_holds_other_files_is_refused(tmp_path):
    """One rule for every folder the project writes (export's too): new, empty, or its own earlier output; a data
    root given as --out by mistake is left alone."""
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="holds other files; choose a new or empty folder"):
        train(TrainConfig(dataset="digits", out=str(tmp_path), progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_create_model_gives_the_clis_recipe():
    from boostnet_core import create_model
    assert create_model("digits").backbone.grad_rescale is True                    # BoostNet on MSDNet: on
    assert create_model("digits", method="joint").backbone.grad_rescale is False
    assert create_model("digits", grad_rescale=False).backbone.grad_rescale is False
