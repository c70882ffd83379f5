"""Attributions with captum: why exit k predicts class c, and what head i added to it.

Targets: the exit logit F_k[c] (what the exit decides on), or one head's contribution w^(k-i) f_i[c] to it
(what that head added). Methods: Integrated Gradients and Saliency on the input pixels, and Grad-CAM on the block
feature map that feeds the head (exit k's own head, or head i for a contribution). Every map comes back as a
float32 numpy array [H, W] at the input resolution, scaled to [0, 1], ready to overlay.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .boosting import contribution, exit_step
from .errors import ArgumentError
from .models.stepwise import eval_mode, iter_exits

METHODS = ("integrated_gradients", "saliency", "grad_cam")


class ExitTarget(nn.Module):
    """x -> F_k (all classes), or -> w^(k-i) f_i when `head` = i; `tap` sees the feature map feeding that head."""

    def __init__(self, model, exit_index: int, head: int | None = None):
        super().__init__()
        n = model.num_exits
        if not 0 <= exit_index < n:
            raise ArgumentError(f"Exit {exit_index} does not exist; this model has exits 0..{n - 1}.")
        if head is not None and not 0 <= head <= exit_index:
            raise ArgumentError(f"Head {head} does not contribute to exit {exit_index}; choose a head in 0..{exit_index}.")
        self.model, self.exit_index, self.head = model, exit_index, head
        self.tap = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        backbone, w = self.model.backbone, self.model.reweight
        tapped = self.exit_index if self.head is None else self.head
        total = None
        for step in iter_exits(backbone, x, last=tapped, heads=False):
            j, feature = step.index, backbone.head_input(step.state)
            f = backbone.head(j)(self.tap(feature) if j == tapped else feature)
            if self.head is not None:
                if j == self.head:
                    return contribution(f, j, self.exit_index, w)
            else:
                total = exit_step(f, total, w)
        return total


def _to_map(attribution: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    a = attribution.detach().float()[0].abs().sum(0)  # [C, h, w] -> [h, w]; Grad-CAM has C = 1
    a = a.reshape(1, 1, *a.shape)
    if tuple(a.shape[-2:]) != tuple(size):
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    a = a[0, 0]
    peak = float(a.max())
    return (a / peak if peak > 0 else a).numpy().astype(np.float32)


def attribute(model, x: torch.Tensor, exit_index: int, target: int, method: str = "integrated_gradients",
              head: int | None = None, steps: int = 32) -> np.ndarray:
    """Attribution map [H, W] in [0, 1] of F_k[target] (or head `head`'s contribution) for one input [C, H, W]."""
    from captum.attr import IntegratedGradients, LayerGradCam, Saliency
    if method not in METHODS:
        raise ArgumentError(f"Unknown attribution method {method!r}; choose one of: {', '.join(METHODS)}.")
    num_classes = model.backbone.cfg.num_classes
    if not 0 <= int(target) < num_classes:
        raise ArgumentError(f"Class {target} does not exist; this model has classes 0..{num_classes - 1}.")
    wrapper = ExitTarget(model, exit_index, head)
    inputs = x[None].clone().requires_grad_(True)
    size = tuple(x.shape[-2:])
    with eval_mode(model), torch.enable_grad():
        if method == "integrated_gradients":
            result = IntegratedGradients(wrapper).attribute(inputs, target=int(target), n_steps=steps,
                                                            internal_batch_size=steps)
        elif method == "saliency":
            result = Saliency(wrapper).attribute(inputs, target=int(target), abs=True)
        else:
            result = LayerGradCam(wrapper, wrapper.tap).attribute(inputs, target=int(target), relu_attributions=True)
    return _to_map(result, size)


def has_evidence(heat: np.ndarray) -> bool:
    """Whether a map holds any evidence. Grad-CAM keeps positive evidence only (its ReLU), so a head whose
    contribution speaks against a class everywhere gives an all-zero map; say so in words rather than draw a blank."""
    return bool(np.any(heat > 0))


def overlay(image_rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a [H, W] map in [0, 1] over an RGB uint8 image of any size (a simple black-red-yellow ramp)."""
    from PIL import Image
    h, w = image_rgb.shape[:2]
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    v = np.asarray(heat_img, dtype=np.float32) / 255
    ramp = np.stack([np.clip(2 * v, 0, 1), np.clip(2 * v - 1, 0, 1), np.zeros_like(v)], -1) * 255
    blended = (1 - alpha * v[..., None]) * image_rgb.astype(np.float32) + alpha * v[..., None] * ramp
    return blended.clip(0, 255).astype(np.uint8)
