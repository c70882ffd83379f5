"""The slowdown attack (Hong, Kaya, Modoranu, Dumitras, "A Panda? No, It's a Sloth", ICLR 2021, arXiv 2010.02432).

A small L-infinity perturbation that pushes every exit before the last toward the uniform distribution, so that no
sample is confident early and early exit loses its savings. Loss per image: the sum over exits k < N of the
cross-entropy between softmax(F_k) and the uniform distribution, -(1/C) sum_c log softmax(F_k)_c, minimised. For
BoostNet the attack reads F_k = f_k + w F_{k-1}, the quantity the exit rule sees (boosting.py); for joint training
F_k = f_k. Written on torch autograd: the loss spans every exit, which attack libraries do not take without
contortions.

- `slowdown_attack`: per-image PGD (signed gradient steps, projected on the epsilon ball and on [0, 1]); the authors'
  defaults: epsilon 8/255, step 0.002, 30 steps, no random start.
- `universal_slowdown`: one perturbation for every image, crafted on other images: each iteration is one pass over
  the crafting images in batches, a signed step of `step` per batch on the batch's mean loss (authors: step 0.005,
  20 iterations).
Both work in pixel space [0, 1]; the model's normalisation (mean, std in model.meta) is applied inside, so epsilon is
in pixel units (8/255 = eight grey levels). The attacked images stay float (not rounded to 8 bits), as the authors'.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ArgumentError
from ..models.stepwise import eval_mode

EPSILON, STEP, STEPS = 8 / 255, 0.002, 30
UNIVERSAL_STEP, UNIVERSAL_ITERATIONS = 0.005, 20


def slowdown_loss(exit_logits: list[torch.Tensor]) -> torch.Tensor:
    """[B]: sum over the exits before the last of CE(softmax(F_k), uniform); its least value, (N - 1) log C, is reached
    when every early exit's softmax is uniform."""
    if len(exit_logits) < 2:
        raise ArgumentError("The slowdown attack needs a model with at least two exits.")
    return sum(-F.log_softmax(f.float(), -1).mean(-1) for f in exit_logits[:-1])


def _normaliser(model, device) -> Callable[[torch.Tensor], torch.Tensor]:
    c = model.input_shape[0]
    mean = torch.tensor(model.meta["mean"], dtype=torch.float32, device=device).view(1, c, 1, 1)
    std = torch.tensor(model.meta["std"], dtype=torch.float32, device=device).view(1, c, 1, 1)
    return lambda x: (x - mean) / std


def check_epsilon(epsilon: float) -> float:
    if not 0 < epsilon <= 1:
        raise ArgumentError(f"epsilon (the L-infinity size of the perturbation, in pixel units) must lie in (0, 1], "
                            f"got {epsilon!r}.")
    return float(epsilon)


def _check_pixels(pixels: torch.Tensor) -> torch.Tensor:
    if not torch.is_floating_point(pixels) or pixels.ndim != 4:
        raise ArgumentError(f"Expected float pixels [N, C, H, W] in [0, 1], got {pixels.dtype} {tuple(pixels.shape)}.")
    if pixels.numel() and (pixels.min() < 0 or pixels.max() > 1):
        raise ArgumentError("Pixels must lie in [0, 1] (the attack works before the model's normalisation).")
    return pixels.float()


def _loss_and_grad(model, normalise, x: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    delta = delta.detach().requires_grad_(True)
    loss = slowdown_loss(model(normalise((x + delta).clamp(0, 1))))
    grad, = torch.autograd.grad(loss.sum(), delta)
    return loss.detach(), grad


def slowdown_attack(model, pixels: torch.Tensor, epsilon: float = EPSILON, step: float = STEP, steps: int = STEPS,
                    batch_size: int = 100, progress: Callable[[int, int], None] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PGD on the slowdown loss. pixels: float [N, C, H, W] in [0, 1]. Returns (the attacked pixels, the
    mean loss before the first step and after each step, float [steps + 1]). progress(done, total) after each step
    of each batch."""
    epsilon, pixels = check_epsilon(epsilon), _check_pixels(pixels)
    if steps < 1:
        raise ArgumentError(f"steps must be at least 1, got {steps!r}.")
    normalise = _normaliser(model, pixels.device)
    out, history = torch.empty_like(pixels), torch.zeros(steps + 1, dtype=torch.float64)
    batches = range(0, len(pixels), batch_size)
    total, done = len(batches) * steps, 0
    with eval_mode(model), torch.enable_grad():
        for start in batches:
            x = pixels[start:start + batch_size]
            delta = torch.zeros_like(x)
            for t in range(steps):
                loss, grad = _loss_and_grad(model, normalise, x, delta)
                history[t] += float(loss.sum())
                delta = (delta - step * grad.sign()).clamp(-epsilon, epsilon)
                delta = (x + delta).clamp(0, 1) - x
                done += 1
                if progress:
                    progress(done, total)
            with torch.no_grad():
                history[steps] += float(slowdown_loss(model(normalise(x + delta))).sum())
            out[start:start + batch_size] = x + delta
    return out, history / max(1, len(pixels))


def universal_slowdown(model, crafting: torch.Tensor, epsilon: float = EPSILON, step: float = UNIVERSAL_STEP,
                       iterations: int = UNIVERSAL_ITERATIONS, batch_size: int = 100,
                       progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One perturbation [1, C, H, W] (|.| <= epsilon) crafted on the images `crafting` (float [M, C, H, W] in
    [0, 1]): `iterations` passes, a signed step per batch. Returns (the perturbation, the mean loss over the crafting
    images after each pass, float [iterations]). Apply it as (images + perturbation).clamp(0, 1)."""
    epsilon, crafting = check_epsilon(epsilon), _check_pixels(crafting)
    if iterations < 1 or len(crafting) < 1:
        raise ArgumentError("The universal perturbation needs at least one iteration and one crafting image.")
    normalise = _normaliser(model, crafting.device)
    delta = torch.zeros((1,) + tuple(crafting.shape[1:]), device=crafting.device)
    history = torch.zeros(iterations, dtype=torch.float64)
    batches = range(0, len(crafting), batch_size)
    total, done = iterations * len(batches), 0
    with eval_mode(model), torch.enable_grad():
        for it in range(iterations):
            for start in batches:
                x = crafting[start:start + batch_size]
                loss, grad = _loss_and_grad(model, normalise, x, delta.expand_as(x))
                history[it] += float(loss.sum())
                delta = (delta - step * grad.sum(0, keepdim=True).sign()).clamp(-epsilon, epsilon)
                done += 1
                if progress:
                    progress(done, total)
    return delta, history / len(crafting)
