"""The 15 common corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) at 5 severities, on numpy and scipy.

Parameters are the CIFAR-10 tables of the authors' generator (hendrycks/robustness, ImageNet-C/create_c/
make_cifar_c.py), not ImageNet-C's, which barely change a 32x32 image at severity 5. Each corruption takes an image
in [0, 255] (float, H x W x C) and returns one in that scale; `corrupt` turns the result into uint8 by truncation,
as CIFAR-10-C was stored (np.uint8 of the float result).

Where we differ from the generator, and why (docs/stress.md says the same):
- Motion blur (and the streaks of snow) used ImageMagick's MotionBlurImage through Wand. `_motion_blur` is our
  reading of that kernel: a one-sided line of 2*ceil(radius)+1 taps along the angle, weights exp(-i^2 / 2 sigma^2),
  offsets rounded to whole pixels, edge pixels repeated. No ImageMagick is needed; results match in kind, not to
  the bit.
- Frost blended a crop of one of six stored photographs of frost. We draw a procedural ice texture instead
  (`_frost_layer`: ridged fractal noise, bluish white) with the generator's blend weights; its statistics are not the
  photographs', so frost numbers are comparable between our models but not with published CIFAR-10-C frost numbers.
- Random numbers come from one numpy Generator per image, seeded by (seed, corruption, image key), so an image is
  corrupted the same way whatever batch it is in and at every severity (the same noise, scaled): a severity slider
  shows one image getting worse, not a new draw.
Other input sizes: parameters measured in pixels (blur radii, motion length, elastic displacements, glass-blur
shuffles, the fog map) scale with the image side / 32; per-pixel ones (noise levels, contrast, brightness, JPEG
quality, zoom and pixelation factors) stay. Grey images (MNIST, digits) go through the same formulas on one channel;
grey's brightness is its HSV value, and snow's lightening uses the grey itself.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from ..errors import ArgumentError

SEVERITIES = (1, 2, 3, 4, 5)


def _scale(x: np.ndarray) -> float:
    """How much larger than CIFAR's 32 pixels this image is (parameters in pixels are multiplied by it)."""
    return min(x.shape[:2]) / 32


def _gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """scikit-image's `gaussian` (its defaults: mode nearest, truncate 4) on H x W (x C), channels not mixed."""
    sigmas = (sigma, sigma) + (0,) * (x.ndim - 2)
    return ndimage.gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


# ---------------------------------------------------------------- noise


def gaussian_noise(x, s, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][s - 1]
    return np.clip(x / 255 + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, s, rng):
    c = [500, 250, 100, 75, 50][s - 1]
    return np.clip(rng.poisson(x / 255 * c) / c, 0, 1) * 255


def impulse_noise(x, s, rng):
    """Salt and pepper on every channel value alone (scikit-image's random_noise, mode s&p, half salt)."""
    c = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    y = x / 255
    hit, salt = rng.random(x.shape) < c, rng.random(x.shape) < 0.5
    y = np.where(hit & salt, 1.0, np.where(hit & ~salt, 0.0, y))
    return np.clip(y, 0, 1) * 255


# ---------------------------------------------------------------- blur


def _gaussian_3x3(kernel: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV's GaussianBlur with a 3x3 window (what the generator smooths its disk with), borders reflected."""
    if sigma <= 0:
        return kernel
    w = np.exp(-np.arange(-1, 2) ** 2 / (2 * sigma ** 2))
    w /= w.sum()
    return ndimage.correlate1d(ndimage.correlate1d(kernel, w, 0, mode="mirror"), w, 1, mode="mirror")


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    side = np.arange(-8, 9) if radius <= 8 else np.arange(-math.ceil(radius), math.ceil(radius) + 1)
    X, Y = np.meshgrid(side, side)
    disk = (X ** 2 + Y ** 2 <= radius ** 2).astype(np.float64)
    return _gaussian_3x3(disk / disk.sum(), alias_blur)


def defocus_blur(x, s, rng):
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    k = _disk(radius * _scale(x), alias * _scale(x))
    y = np.stack([ndimage.correlate(x[..., d] / 255, k, mode="mirror") for d in range(x.shape[2])], -1)
    return np.clip(y, 0, 1) * 255


def glass_blur(x, s, rng):
    """Blur, shuffle each pixel with a neighbour (the generator's offsets: randint(-d, d), so -d..d-1), blur again."""
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    sigma, delta = sigma * _scale(x), max(1, round(delta * _scale(x)))
    h, w = x.shape[:2]
    y = np.uint8(_gaussian(x / 255, sigma) * 255)
    rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
    offsets = rng.integers(-delta, delta, size=(iterations, len(rows), len(cols), 2))
    for it in range(iterations):
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                dx, dy = offsets[it, i, j]
                r2, c2 = r + dy, c + dx
                y[r, c], y[r2, c2] = y[r2, c2].copy(), y[r, c].copy()
    return np.clip(_gaussian(y / 255, sigma), 0, 1) * 255


def _motion_blur(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """Our reading of ImageMagick's MotionBlurImage (see the module docstring) on H x W x C in any scale."""
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width)
    weights = np.exp(-(i ** 2) / (2 * sigma ** 2))
    weights /= weights.sum()
    a = math.radians(angle)
    dx = np.ceil(i * math.cos(a) - 0.5).astype(int)   # columns
    dy = np.ceil(i * math.sin(a) - 0.5).astype(int)   # rows
    p = width
    padded = np.pad(x, ((p, p), (p, p), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    out = np.zeros_like(x, dtype=np.float64)
    for weight, ox, oy in zip(weights, dx, dy):
        out += weight * padded[p + oy:p + oy + h, p + ox:p + ox + w]
    return out


def motion_blur(x, s, rng):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    angle = rng.uniform(-45, 45)
    # ImageMagick works on the 8-bit image and writes 8 bits back
    return np.clip(np.round(_motion_blur(x, radius * _scale(x), sigma * _scale(x), angle)), 0, 255)


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of H x W x C by `factor` (bilinear) and crop back to H x W."""
    h = x.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    y = ndimage.zoom(x[top:top + ch, top:top + ch], (factor, factor, 1), order=1)
    trim = (y.shape[0] - h) // 2
    return y[trim:trim + h, trim:trim + h]


def zoom_blur(x, s, rng):
    top = [1.06, 1.11, 1.16, 1.21, 1.26][s - 1]
    factors = np.arange(1, top, 0.01)
    y = (x / 255).astype(np.float32)
    out = np.zeros_like(y)
    for f in factors:
        out += _clipped_zoom(y, f)
    return np.clip((y + out) / (len(factors) + 1), 0, 1) * 255


# ---------------------------------------------------------------- weather


def _plasma_fractal(size: int, decay: float, rng) -> np.ndarray:
    """A size x size map in [0, 1] by the diamond-square algorithm (size a power of two), as the generator's fog."""
    m = np.zeros((size, size))
    step, wibble = size, 100.0

    def wibbled(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        corners = m[0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=0)
        squares = squares + np.roll(squares, -1, axis=1)
        m[step // 2:size:step, step // 2:size:step] = wibbled(squares)
        centres = m[step // 2:size:step, step // 2:size:step]
        corners = m[0:size:step, 0:size:step]
        m[0:size:step, step // 2:size:step] = wibbled(centres + np.roll(centres, 1, axis=0)
                                                      + corners + np.roll(corners, -1, axis=1))
        m[step // 2:size:step, 0:size:step] = wibbled(centres + np.roll(centres, 1, axis=1)
                                                      + corners + np.roll(corners, -1, axis=0))
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def _power_of_two(n: int) -> int:
    return 1 << max(1, math.ceil(math.log2(n)))


def fog(x, s, rng):
    strength, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    h, w = x.shape[:2]
    y = x / 255
    top = y.max()
    y = y + strength * _plasma_fractal(_power_of_two(max(h, w)), decay, rng)[:h, :w, None]
    return np.clip(y * top / (top + strength), 0, 1) * 255


def _grey(y: np.ndarray) -> np.ndarray:
    """H x W x 1 luma (OpenCV's RGB2GRAY weights); a grey image is its own."""
    if y.shape[2] == 1:
        return y
    return (y @ np.array([0.299, 0.587, 0.114]))[..., None]


def snow(x, s, rng):
    loc, scale, zoom, cut, radius, sigma, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    y = x / 255
    layer = rng.normal(size=x.shape[:2], loc=loc, scale=scale)
    layer = _clipped_zoom(layer[..., None], zoom)
    layer[layer < cut] = 0
    layer = np.clip(layer, 0, 1) * 255
    layer = np.uint8(layer).astype(np.float64)          # the generator's 8-bit grey PNG
    angle = rng.uniform(-135, -45)
    layer = np.clip(np.round(_motion_blur(layer, radius * _scale(x), sigma * _scale(x), angle)), 0, 255) / 255
    y = keep * y + (1 - keep) * np.maximum(y, _grey(y) * 1.5 + 0.5)
    return np.clip(y + layer + np.rot90(layer, k=2), 0, 1) * 255


def _frost_layer(h: int, w: int, rng) -> np.ndarray:
    """H x W x 3 in [0, 255]: ice crystals drawn as ridged fractal noise (bright thin veins where the noise crosses
    its middle), over a faint bluish haze. Stands in for the generator's frost photographs (module docstring)."""
    size = _power_of_two(max(h, w) * 2)
    a, b = _plasma_fractal(size, 1.3, rng), _plasma_fractal(size, 2.0, rng)   # rough veins, a smooth haze
    top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    a, b = a[top:top + h, left:left + w], b[top:top + h, left:left + w]
    veins = (1 - np.abs(2 * a - 1)) ** 4            # ridges of the noise: thin, grainy bright lines
    ice = np.clip(0.3 + 0.6 * veins + 0.3 * b ** 2, 0, 1)
    tint = np.array([0.82, 0.9, 1.0])                # frost photographs are bluish white
    return ice[..., None] * tint * 255


def frost(x, s, rng):
    keep, add = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    layer = _frost_layer(x.shape[0], x.shape[1], rng)
    if x.shape[2] == 1:
        layer = _grey(layer / 255) * 255
    return np.clip(keep * x + add * layer, 0, 255)


def brightness(x, s, rng):
    """HSV value + c. Hue and saturation stay, so RGB scales by the new value over the old (black becomes grey)."""
    c = [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]
    y = x / 255
    v = y.max(axis=2, keepdims=True)
    v2 = np.clip(v + c, 0, 1)
    out = np.where(v > 0, y * v2 / np.where(v > 0, v, 1), v2)
    return np.clip(out, 0, 1) * 255


# ---------------------------------------------------------------- digital


def contrast(x, s, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    y = x / 255
    means = y.mean(axis=(0, 1), keepdims=True)
    return np.clip((y - means) * c + means, 0, 1) * 255


def elastic_transform(x, s, rng):
    """A random affine warp of three points, then a smooth random displacement field (the generator's, sized by the
    image: its parameters are fractions of the image side)."""
    size = x.shape[0]
    alpha, sigma, shift = (np.array([(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                                     (0.1, 0.03, 0.03)][s - 1]) * size)
    y = x / 255
    h, w, c = y.shape
    centre, half = np.array([w, h], dtype=np.float64) // 2, min(h, w) // 3
    src = np.array([centre + half, [centre[0] + half, centre[1] - half], centre - half])        # (x, y) points
    dst = src + rng.uniform(-shift, shift, size=src.shape)
    # the affine map src -> dst; the output pixel at p reads the input at the inverse map of p (OpenCV's warpAffine)
    forward = np.linalg.solve(np.c_[src, np.ones(3)], dst).T      # 2 x 3, (x, y)
    inverse = np.linalg.inv(np.r_[forward, [[0, 0, 1]]])[:2]
    matrix = inverse[::-1, 1::-1]                                  # in (row, col) order
    offset = inverse[::-1, 2]
    y = np.stack([ndimage.affine_transform(y[..., d], matrix, offset, order=1, mode="mirror") for d in range(c)], -1)
    dx = _gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = _gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.stack([ndimage.map_coordinates(y[..., d], [rows + dy, cols + dx], order=1, mode="reflect")
                    for d in range(c)], -1)
    return np.clip(out, 0, 1) * 255


def _pil(x: np.ndarray):
    from PIL import Image
    y = np.uint8(x)
    return Image.fromarray(y[..., 0] if y.shape[2] == 1 else y)


def _from_pil(img) -> np.ndarray:
    y = np.asarray(img, dtype=np.float64)
    return y[..., None] if y.ndim == 2 else y


def pixelate(x, s, rng):
    from PIL import Image
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    h, w = x.shape[:2]
    img = _pil(x).resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX).resize((w, h), Image.BOX)
    return _from_pil(img)


def jpeg_compression(x, s, rng):
    from PIL import Image
    quality = [80, 65, 58, 50, 40][s - 1]
    buffer = io.BytesIO()
    _pil(x).save(buffer, "JPEG", quality=quality)
    return _from_pil(Image.open(buffer))


# ---------------------------------------------------------------- the table and the one entry point


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str
    apply: Callable       # (H x W x C float in [0, 255], severity 1..5, numpy Generator) -> same, in [0, 255]


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in [
    Corruption("gaussian_noise", "noise", gaussian_noise), Corruption("shot_noise", "noise", shot_noise),
    Corruption("impulse_noise", "noise", impulse_noise),
    Corruption("defocus_blur", "blur", defocus_blur), Corruption("glass_blur", "blur", glass_blur),
    Corruption("motion_blur", "blur", motion_blur), Corruption("zoom_blur", "blur", zoom_blur),
    Corruption("snow", "weather", snow), Corruption("frost", "weather", frost), Corruption("fog", "weather", fog),
    Corruption("brightness", "weather", brightness),
    Corruption("contrast", "digital", contrast), Corruption("elastic_transform", "digital", elastic_transform),
    Corruption("pixelate", "digital", pixelate), Corruption("jpeg_compression", "digital", jpeg_compression)]}
NAMES = tuple(CORRUPTIONS)
FAMILIES = ("noise", "blur", "weather", "digital")


def check_corruption(name: str) -> Corruption:
    if name not in CORRUPTIONS:
        raise ArgumentError(f"Unknown corruption {name!r}; choose one of: {', '.join(NAMES)} (or all).")
    return CORRUPTIONS[name]


def check_severity(severity) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ArgumentError(f"Severity must be a whole number from 1 to 5, got {severity!r}.")
    return int(severity)


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0, keys=None) -> np.ndarray:
    """uint8 [N, C, H, W] -> the same images under corruption `name` at `severity` (1-5), uint8 [N, C, H, W].

    Image i draws its random numbers from a Generator seeded by (seed, the corruption's number, keys[i]); keys
    default to 0..N-1 (give test indices so an image looks the same whichever batch it is corrupted in).
    """
    corruption, severity = check_corruption(name), check_severity(severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ArgumentError(f"Expected uint8 images [N, 1 or 3, H, W], got {images.dtype} {tuple(images.shape)}.")
    keys = range(len(images)) if keys is None else [int(k) for k in keys]
    number = NAMES.index(name)
    out = np.empty_like(images)
    for i, (image, key) in enumerate(zip(images, keys, strict=True)):
        rng = np.random.default_rng([int(seed), number, key])
        y = corruption.apply(image.transpose(1, 2, 0).astype(np.float64), severity, rng)
        out[i] = np.uint8(np.clip(y, 0, 255)).transpose(2, 0, 1)   # truncation, as CIFAR-10-C was stored
    return out
