"""Opening one image file or upload safely: any format Pillow reads, first frame, EXIF orientation, a pixel limit
checked from the header before decoding, and one sentence naming the source when it cannot be used."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
# open_image refuses larger images from their header, before decoding (a decompression bomb). Pillow's own limit,
# a process-wide setting, is left as it is.
MAX_IMAGE_PIXELS = 50_000_000


def open_image(source, mode: str | None = None, name: str | None = None) -> Image.Image:
    """A decoded PIL image (first frame, EXIF orientation applied) or a DataError naming the source (`name`, the
    path, or "the uploaded file")."""
    from PIL import ImageOps
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the uploaded file")
    try:
        with Image.open(source) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DataError(f"{name} is {img.width}x{img.height} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit.")
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            img.load()
            return img.convert(mode) if mode else img
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(f"{name} is a decompression bomb (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels); it was not decoded.") from None
    except UnidentifiedImageError:
        raise DataError(f"{name} is not a readable image: its content is not in an image format this program reads "
                        "(JPEG, PNG, WebP, BMP, GIF or TIFF).") from None
    except (OSError, SyntaxError, ValueError) as e:
        if "truncated" in str(e):  # Pillow's "image file is truncated (3 bytes not processed)": no nested brackets
            raise DataError(f"{name} is truncated: the file ends before the image does.") from None
        raise DataError(f"{name} is not a readable image ({e}).") from None


def decode_to_array(img: Image.Image, size: int, in_channels: int) -> np.ndarray:
    """uint8 [C, size, size]: grey or RGB, resized (bilinear) to a square of `size`."""
    img = img.convert("L" if in_channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
