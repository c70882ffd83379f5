"""What every inference engine is: a stepwise backbone (models/stepwise.py) prepared once, plus whole-network logits.

An engine runs a trained backbone without gradients. It keeps the stepwise contract (run_block, run_head,
head_input, head, continue_state, num_exits, cfg), so `iter_exits`, real early exit and the traces walk it as they
walk the eager model, and adds `head_logits(x)`: every head's raw logits f_1..f_N for a batch in one call (one fused
graph where the engine has one). Preparing checks the engine against the eager model (`check_agreement`).

What an engine can do beyond the contract is declared here, with the answer of an engine that cannot, and
overridden by those that can (nothing is found by probing for attributes):
- `fused_whole`: `head_logits` runs one fused graph (not the block walk);
- `fused_early_exit(batch)`: max-softmax early exit as one graph, or None;
- `exit_decisions(x)`: every exit's F_k and confidence from the whole-network graph, or None;
- `parts_from`: the batch size from which the whole network runs another way (OpenVINO's parts), or None;
- `runtime_errors`: the exception classes of its runtime that mean "cannot do this here".
A failure an engine expects (its runtime not installed, a graph its runtime refuses, logits that disagree with the
eager model) is an `EngineUnavailable`; anything else is a bug and raises (engines/registry.py).
"""
from __future__ import annotations

import torch

from ..models.stepwise import eval_mode, iter_exits

# fp32: an engine whose logits differ from the eager model's by more than 1e-4 (plus 1e-6 of the largest logit: an
# untrained network's logits reach 1e2-1e5, and fp32 rounding grows with them) is refused.
AGREEMENT_TOLERANCE = 1e-4


class EngineUnavailable(RuntimeError):
    """An engine that is not installed, cannot run this model, or disagrees with the eager model."""


class InferenceEngine:
    """Base of every engine: the stepwise contract over a backbone, for inference only.

    Subclasses implement run_block and run_head; head_input, head and continue_state come from the eager backbone
    (the heads' modules are what Grad-CAM taps). `name` and `precision` say what runs.
    """

    name = "engine"
    grad_rescale = False
    fused_whole = False             # head_logits is one fused graph
    # The exception classes by which this engine's runtime reports what it cannot do (a graph it refuses, an operator
    # or a platform it lacks), at preparation or at the first run: they make the engine unavailable, not a crash.
    runtime_errors: tuple[type[BaseException], ...] = ()
    parts_from: int | None = None   # the batch size from which the whole network runs another way (OpenVINO's parts)

    def __init__(self, backbone, precision: str = "fp32"):
        self.backbone = backbone     # the eager backbone (read-only here)
        self.cfg = backbone.cfg
        self.precision = precision
        self.agreement: float | None = None   # largest |logit - eager logit| seen when prepared

    @property
    def num_exits(self) -> int:
        return self.backbone.num_exits

    def run_block(self, i: int, state):
        raise NotImplementedError

    def run_head(self, i: int, state) -> torch.Tensor:
        raise NotImplementedError

    def head_input(self, state) -> torch.Tensor:
        return self.backbone.head_input(state)

    def head(self, i: int):
        return self.backbone.head(i)

    def continue_state(self, i: int, state):
        return state   # inference: no gradient rescaling between blocks

    def head_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw logits f_1..f_N of every head for a batch (the walk over the blocks; fused engines override)."""
        return [step.head_logits for step in iter_exits(self, x)]

    def exit_decisions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Every exit's F_k [N, B, C] and max-softmax confidence [N, B] for a batch, computed inside the engine's own
        whole-network graph, or None: this engine has none (the caller computes them from `head_logits`)."""
        return None

    def fused_early_exit(self, batch: int):
        """The function (x, thresholds) -> (exit index, F at the exit, confidence at the exit, confidence at every
        exit computed) running max-softmax early exit as one graph for batches of this size, or None: this engine
        has none (early exit then walks its blocks)."""
        return None

    def describe(self) -> str:
        """What runs, as results report it."""
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.precision}>"


def check_agreement(engine: InferenceEngine, model, tolerance: float | None = AGREEMENT_TOLERANCE) -> float:
    """The largest difference between the engine's logits (whole network and stepwise) and the eager model's on
    a few random inputs; raises EngineUnavailable beyond `tolerance` (None: measure only, as for bf16)."""
    g = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    x = torch.randn(2, *model.input_shape, generator=g).to(device)
    with torch.inference_mode(), eval_mode(model):
        reference = [s.head_logits for s in iter_exits(model.backbone, x)]
        pairs = [([s.head_logits for s in iter_exits(engine, x)], reference)]   # (engine's logits, eager logits)
        if engine.fused_whole:   # a fused whole-network graph too
            pairs.append((engine.head_logits(x), reference))
        if engine.parts_from:   # a large batch runs another way (OpenVINO's parts): compare it too
            big = torch.randn(engine.parts_from, *model.input_shape, generator=g).to(device)
            pairs.append((engine.head_logits(big), [s.head_logits for s in iter_exits(model.backbone, big)]))
    worst = max(float((a.float() - r).abs().max()) for got, ref in pairs for a, r in zip(got, ref))
    engine.agreement = worst
    if tolerance is not None:
        allowed = tolerance + 1e-6 * max(float(r.abs().max()) for _, ref in pairs for r in ref)
        if not worst <= allowed:
            raise EngineUnavailable(f"its logits differ from the eager model's by {worst:.2g} (more than {allowed:.2g})")
    return worst
