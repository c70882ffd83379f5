"""The boosted early-exit model of BoostNet (Yu et al., AAAI 2023; arXiv 2211.16726, section 3, method; docs/method.md).

Heads 1..N give raw logits f_n. Exit logits are the additive ensemble
    F_1 = f_1,   F_n = f_n + w * F_{n-1}   (unrolled: F_n = sum_{i<=n} w^(n-i) f_i),
so the contribution of head i to exit n is w^(n-i) f_i, and these sum exactly to F_n. The exit prediction and
its confidence always use F_n. With w = 0 the same module is the ordinary joint-training baseline (F_n = f_n).
This module is the one place F_n is computed: `exit_step` (one exit, given F_{n-1}) is called by `ensemble`
(all exits), the loss, real early exit (early_exit.py, through `BoostNet.exit_step`), traces (inference.py) and
attributions (explain.py); `contribution` (head i's share w^(n-i) f_i of F_n) by the traces and attributions. The
ONNX graphs (engines/onnx_graphs.py) and the README's plain ONNX Runtime loop write the same sum in their own
operators; tests/test_exit_rule.py holds every path to the same exits and logits.
How sure an exit is (its score) is an exit criterion's business (criteria.py), not this module's.

Training (one forward pass, all heads): loss = sum_n CE(f_n + stopgrad(w F_{n-1}), y). Only the earlier ensemble
is detached; the shared backbone still learns from every later loss. The authors' training code computes
E_n = w (f_n + E_{n-1}) = w F_n; with a constant w that is the same model, and this module never uses
(f_n + F_{n-1}) * w as an exit prediction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .early_exit import EarlyExit, predict_early
from .errors import ArgumentError
from .macs import exit_macs
from .models.stepwise import StepwiseBackbone, iter_exits

METHODS = ("boostnet", "joint")


class BoostNet(nn.Module):
    """An early-exit network read as an additive ensemble of its heads.

    `backbone` keeps the stepwise contract (models/stepwise.py; MSDNet and RANet do). `reweight` is w (0.5 in every
    published run; 0 for the joint baseline). `meta` is what model.json records; factory.py builds it.
    """

    def __init__(self, backbone: StepwiseBackbone, reweight: float = 0.5, method: str = "boostnet", meta: dict | None = None):
        super().__init__()
        if method not in METHODS:
            raise ArgumentError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
        if method == "joint":
            reweight = 0.0
        elif not 0.0 < reweight <= 1.0:
            raise ArgumentError(f"The BoostNet reweight w must be in (0, 1], got {reweight!r}.")
        if not isinstance(backbone, StepwiseBackbone):
            raise TypeError(f"{type(backbone).__name__} is not a stepwise backbone (see models/stepwise.py).")
        self.backbone = backbone
        self.reweight = float(reweight)
        self.method = method
        self.meta = dict(meta or {})
        self._macs: list[float] | None = list(self.meta["macs"]) if "macs" in self.meta else None

    @property
    def num_exits(self) -> int:
        return self.backbone.num_exits

    @property
    def macs(self) -> list[float]:
        """Cumulative multiply-adds per exit (see macs.py for the convention)."""
        if self._macs is None:
            self._macs = exit_macs(self.backbone, self.input_shape)
        return self._macs

    @property
    def num_classes(self) -> int:
        return self.backbone.cfg.num_classes

    @property
    def classes(self) -> list[str]:
        """Class names, in the order of the logits."""
        return list(self.meta.get("classes") or [str(i) for i in range(self.num_classes)])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        cfg = self.backbone.cfg
        size = self.meta.get("input_size")
        if size is None:
            raise ArgumentError("This model has no input size in its metadata; build it with create_model or load_model.")
        return (cfg.in_channels, size, size)

    def head_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw head outputs f_1..f_N, shape [B, C] each."""
        return [step.head_logits for step in iter_exits(self.backbone, x)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Exit logits F_1..F_N, shape [B, C] each."""
        return ensemble(self.head_logits(x), self.reweight)

    def contributions(self, head_logits: list[torch.Tensor], exit_index: int) -> torch.Tensor:
        """[exit_index + 1, B, C]: w^(n-i) f_i for every head i <= n = exit_index; they sum to F_n."""
        return torch.stack([contribution(head_logits[i], i, exit_index, self.reweight) for i in range(exit_index + 1)])

    def exit_step(self, head_logits: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """F_n from f_n and F_{n-1} (None at the first exit), for code that walks the exits itself (early_exit.py)."""
        return exit_step(head_logits, previous, self.reweight)

    def predict_early(self, x: torch.Tensor, thresholds, fast: bool = True, *, criterion=None,
                      engine=None) -> EarlyExit:
        """Real early exit: blocks run only for the samples still in the batch (see early_exit.py); the model's
        default engine is prepared at the first call and reused while the weights stay the same (engines/)."""
        return predict_early(self, x, thresholds, fast, criterion=criterion, engine=engine)


def exit_step(head_logits: torch.Tensor, previous: torch.Tensor | None, reweight: float) -> torch.Tensor:
    """One exit of the ensemble: F_n = f_n + w F_{n-1} (F_1 = f_1 when `previous` is None)."""
    return head_logits if previous is None else head_logits + reweight * previous


def contribution(head_logits: torch.Tensor, head: int, exit_index: int, reweight: float) -> torch.Tensor:
    """Head `head`'s additive share of F at exit `exit_index` (0-based, head <= exit): w^(n-i) f_i."""
    return reweight ** (exit_index - head) * head_logits


def ensemble(head_logits: list[torch.Tensor], reweight: float) -> list[torch.Tensor]:
    """F_n = f_n + w F_{n-1}, F_1 = f_1, for every exit."""
    exits, previous = [], None
    for f in head_logits:
        previous = exit_step(f, previous, reweight)
        exits.append(previous)
    return exits


def boosting_loss(head_logits: list[torch.Tensor], target: torch.Tensor, reweight: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """sum_n CE(f_n + stopgrad(w F_{n-1}), y). Returns the total and each head's term (detached, for logging).

    With reweight = 0 this is the joint baseline's sum of per-head cross-entropies.
    """
    total, per_head, previous = 0.0, [], None
    for f in head_logits:
        # joint (w = 0): f_n alone, not f_n + 0 * F_{n-1}, so the baseline's loss is exactly sum_n CE(f_n, y)
        exit_logits = exit_step(f, None if previous is None or reweight == 0.0 else previous.detach(), reweight)
        loss = F.cross_entropy(exit_logits, target)
        total = total + loss
        per_head.append(loss.detach())
        previous = exit_logits
    return total, per_head
