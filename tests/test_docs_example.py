"""The Python training example of docs/core.md, run as written (in a temporary folder) but for one epoch of three."""
import re

import torch

from conftest import REPO


def test_the_python_training_example_runs_and_saves_a_loadable_checkpoint(tmp_path, monkeypatch, capsys):
    text = (REPO / "docs" / "core.md").read_text()
    section = re.search(r"<!-- python training: start -->(.*?)<!-- python training: end -->", text, re.S).group(1)
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 30
    assert code.count("for epoch in range(3):") == 1
    code = code.replace("for epoch in range(3):", "for epoch in range(1):")   # as written, but one epoch of three
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/core.md (python training)", "exec"), namespace)
    model = namespace["model"]
    assert model.backbone.cfg.num_classes == 10 and (tmp_path / "runs" / "digits-python" / "model.json").is_file()
    assert torch.isfinite(namespace["loss"])
    assert model.meta["grad_rescale"] is True and model.meta["data"]["val_size"] > 0   # the CLI's recipe
    shares = re.findall(r"'(\d+\.\d)%'", capsys.readouterr().out)
    assert len(shares) == model.num_exits
