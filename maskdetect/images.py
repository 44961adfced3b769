"""The project's one image decoder.

Everything that opens an image (data pipeline, training, services) goes through
:func:`decode_image`, so EXIF orientation and decoding errors are handled once.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = bytes | str | Path | Image.Image


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read."""


def decode_image(source: ImageSource, *, draft: tuple[str, tuple[int, int]] | None = None) -> Image.Image:
    """Open ``source`` (bytes, a path or a PIL image) with EXIF orientation applied.

    ``draft=(mode, size)`` lets the JPEG decoder skip detail that a later resize to
    about ``size`` would throw away anyway (much faster on large photos).
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        try:
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            if draft is not None:
                image.draft(*draft)
            image.load()
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            name = "the given bytes" if isinstance(source, bytes) else str(source)
            raise ImageDecodeError(f"{name} is not a readable image ({error})") from error
    return ImageOps.exif_transpose(image)


# The model input: every caller (training, evaluation, notebooks, services) goes through
# `preprocess`, so train-time and serve-time inputs are the same arrays.
DEFAULT_SIZE = 100
RESAMPLE = Image.Resampling.BILINEAR  # the one interpolation; PIL antialiases when shrinking
BACKGROUND = (255, 255, 255)  # what transparent pixels become


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (transparency composited onto white, 16-bit scaled down)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def preprocess(
    source: ImageSource,
    size: int = DEFAULT_SIZE,
    channels: int = 3,
) -> np.ndarray:
    """Image bytes, path or PIL image -> float32 array (size, size, channels) in [0, 1].

    EXIF orientation applied, every mode converted, resized with one interpolation.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    image = _to_rgb(decode_image(source, draft=("RGB", (size, size))))
    if channels == 1:
        image = image.convert("L")
    array = np.asarray(image.resize((size, size), RESAMPLE), dtype=np.float32) / 255.0
    return array.reshape(size, size, channels)
