"""Transforms: normalisation, the training augmentation of decoded batches (on the training device), and the
ImageNet transforms of images streamed from disk (random-resized crop + flip for training, resize + centre crop
for testing)."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from .images import open_image
from .sets import FileSet


def normalize(images_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    x = images_uint8.float().div_(255)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def augment_batch(images: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """Random zero-padded crop (+ horizontal flip for natural images) of a uint8 batch [B, C, H, W].

    `cifar`: 4-pixel padding and flips (the paper's CIFAR augmentation); `digits`: 1/8 of the side padding, no
    flips (a mirrored digit is another symbol). Random numbers come from `generator` (CPU) so that a resumed run
    draws the same ones.
    """
    if policy == "none":
        return images
    b, _, h, w = images.shape
    pad = 4 if policy == "cifar" else max(1, h // 8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    flip = torch.rand(b, generator=generator).to(images.device) < 0.5 if policy == "cifar" else None
    if flip is not None:
        cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class FileImages(torch.utils.data.Dataset):
    """Streams a FileSet with the ImageNet transforms: random-resized crop + flip (train) or resize + centre crop."""

    def __init__(self, files: FileSet, size: int, in_channels: int, mean, std, train: bool):
        self.files, self.size, self.in_channels, self.train = files, size, in_channels, train
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        img = open_image(self.files.paths[i], "L" if self.in_channels == 1 else "RGB")
        img = random_resized_crop(img, self.size) if self.train else resize_center_crop(img, self.size)
        if self.train and torch.rand(1).item() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.uint8)
        x = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
        return normalize(x[None], self.mean, self.std)[0], self.files.labels[i]


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """The ImageNet test transform: shorter side to size * 256/224, then the centre size x size."""
    short = round(size * 256 / 224) if size >= 64 else size
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def random_resized_crop(img: Image.Image, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> Image.Image:
    w, h = img.size
    for _ in range(10):
        area = w * h * float(torch.empty(1).uniform_(*scale))
        log_r = torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]))
        r = float(torch.exp(log_r))
        cw, ch = round(math.sqrt(area * r)), round(math.sqrt(area / r))
        if 0 < cw <= w and 0 < ch <= h:
            left = int(torch.randint(0, w - cw + 1, (1,)))
            top = int(torch.randint(0, h - ch + 1, (1,)))
            return img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    return resize_center_crop(img, size)
