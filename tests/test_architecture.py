"""The shape of the core: imports point one way, every walk over the exits is the same walk, modes come back."""
import ast

import pytest
import torch

from boostnet_core import create_model
from boostnet_core.models.stepwise import StepwiseBackbone, eval_mode, iter_exits
from boostnet_core.errors import ArgumentError

from conftest import REPO

CORE = REPO / "boostnet_core"


def _module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, name: str) -> set[str]:
    """Every boostnet_core module that `path` imports, at module level or inside functions (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            module = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # `from . import checkpoint`
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in CORE.rglob("*.py")}
    return {name: {m for m in _imports(path, name) if m in files and m != name} for name, path in files.items()}


def test_the_core_has_no_import_cycle():
    graph = _graph()
    # Package __init__ files re-export their children; the children must not import them back.
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_the_core_does_not_import_the_app_and_models_know_nothing_of_training():
    for path in CORE.rglob("*.py"):
        mods = _imports(path, _module_name(path))
        assert not any(m == "app" or m.startswith(("app.", "common", "streamlit")) for m in mods), path
        if path.parent.name == "models":
            assert not any(m.startswith(("boostnet_core.training", "boostnet_core.data", "boostnet_core.checkpoint"))
                           for m in mods), path


def test_no_private_name_is_imported_across_modules():
    """The core, the app, the benchmarks and the scripts use each other's public names only."""
    for folder in ("boostnet_core", "app", "bench", "scripts"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("boostnet_core")):
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    assert not private, f"{path.relative_to(REPO)} imports {private} from {node.module}"


@pytest.mark.parametrize("preset", ["digits", "cifar100-ranet"])
def test_backbones_keep_the_stepwise_contract(preset):
    model = create_model(preset).eval()
    backbone = model.backbone
    assert isinstance(backbone, StepwiseBackbone)
    x = torch.randn(2, backbone.cfg.in_channels, model.meta["input_size"], model.meta["input_size"])
    steps = list(iter_exits(backbone, x))
    assert [s.index for s in steps] == list(range(model.num_exits))
    for step, f in zip(steps, model.head_logits(x)):
        assert torch.equal(step.head_logits, f)
    # A walk of one exit resumes from the state handed on by the exit before it.
    state = x
    for i in range(model.num_exits):
        (step,) = iter_exits(backbone, state, first=i, last=i)
        assert torch.equal(step.head_logits, steps[i].head_logits)
        state = step.state
    first = next(iter_exits(backbone, x))
    assert torch.equal(backbone.head(0)(backbone.head_input(first.state)), first.head_logits)


def test_a_walk_can_drop_samples_between_exits():
    model = create_model("digits").eval()
    x = torch.randn(4, 1, 8, 8)
    full = model.head_logits(x)
    kept = []
    for step in iter_exits(model.backbone, x):
        kept.append(step.head_logits)
        if step.index == 0:
            step.state = [s[2:] for s in step.state]  # the first two samples leave here
    assert kept[1].shape[0] == 2 and torch.allclose(kept[-1], full[-1][2:], atol=1e-6)


def test_walking_past_the_last_exit_is_an_error():
    model = create_model("digits")
    with pytest.raises(ArgumentError, match="exits 0..3"):
        next(iter_exits(model.backbone, torch.zeros(1, 1, 8, 8), last=4))


def test_eval_mode_restores_training_mode_also_on_error():
    model = create_model("digits").train()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            assert not model.training
            raise RuntimeError("boom")
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training


def test_inference_paths_leave_a_training_model_in_training_mode():
    from boostnet_core.data import load_dataset
    from boostnet_core.evaluation import predict_split
    from boostnet_core.explain import attribute
    from boostnet_core.inference import trace
    model = create_model("digits").train()
    x = torch.randn(3, 1, 8, 8)
    model.predict_early(x, 0.5)
    trace(model, x[0])
    attribute(model, x[0], 1, 0, "saliency")
    predict_split(model, load_dataset("digits", val_size=0).test, batch_size=400)
    model.macs  # measured in eval mode
    assert all(m.training for m in model.modules())
    with pytest.raises(ArgumentError):
        predict_split(model, load_dataset("digits", val_size=0).test, batch_size=0)
    assert model.training
