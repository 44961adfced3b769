"""The project's one image decoder.

Everything that opens an image (data pipeline, training, services) goes through
:func:`decode_image`, so EXIF orientation and decoding errors are handled once.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from .constants import MAX_IMAGE_PIXELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")  # what a folder of images is read for
# The only formats Pillow may parse (the error message promises these): its other ~30 decoders
# (EPS runs Ghostscript; ICO, PSD, TGA, PCX...) never see untrusted bytes.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

ImageSource = bytes | str | Path | Image.Image


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read."""


class ImageTooLarge(ImageDecodeError):
    """The image declares more pixels than the cap: refused before its pixels are decoded."""


def decode_image(
    source: ImageSource,
    *,
    draft: tuple[str, tuple[int, int] | int] | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> Image.Image:
    """Open ``source`` (bytes, a path or a PIL image) with EXIF orientation applied.

    A PIL image that needs no turning is returned itself: callers that draw on it copy it first.

    ``draft=(mode, size)`` lets the JPEG decoder skip detail that a later resize to
    about ``size`` (a (width, height), or an int for the longer side) would throw away anyway
    (much faster on large photos). An image whose
    header declares more than ``max_pixels`` is refused before decoding: a few kilobytes
    of PNG can otherwise expand to gigabytes (a decompression bomb). Only IMAGE_FORMATS are
    parsed; any other is an ImageDecodeError.
    """
    if isinstance(source, Image.Image):
        turned = source.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9)
        return ImageOps.exif_transpose(source) if turned else source  # an upright image is returned as is, not copied
    name = "the given bytes" if isinstance(source, bytes) else str(source)
    try:
        with warnings.catch_warnings():
            # Our own cap below is lower than PIL's warning threshold; PIL's hard limit stays.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=IMAGE_FORMATS)
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise ImageTooLarge(
                f"{name} is {image.width}x{image.height} pixels, over the {max_pixels / 1e6:.0f}-megapixel "
                "limit; send a smaller image"
            )
        if draft is not None:
            mode, size = draft
            if isinstance(size, int):  # the longer side at least `size`, the aspect kept
                scale = min(1.0, size / max(image.size))
                size = (math.ceil(image.width * scale), math.ceil(image.height * scale))
            full_size = image.size
            if image.draft(mode, size) is not None and image.size != full_size:
                image.info["full_size"] = full_size
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # our own image: turned without a copy
        return image
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"{name} has too many pixels ({error}); send a smaller image") from error
    except Exception as error:  # noqa: BLE001 - malformed files raise OSError, SyntaxError,
        # ValueError, EOFError, struct.error, IndexError... from PIL's many decoders: for
        # untrusted bytes every one of them means "not an image we can read".
        raise ImageDecodeError(f"{name} is not a readable image ({error.__class__.__name__}: {error})") from error


def decode_reduced(source: ImageSource, side: int) -> tuple[Image.Image, float]:
    """The image as displayed, JPEGs decoded at a reduced size still at least ``side`` px on each side.

    Returns the image and the factor from its pixels to the full-size image's (1.0 when not reduced).
    """
    if isinstance(source, Image.Image):
        return decode_image(source), 1.0
    image = decode_image(source, draft=("RGB", side))
    full = image.info.get("full_size")
    return image, (max(full) / max(image.size)) if full else 1.0


# The model input: every caller (training, evaluation, notebooks, services) goes through
# `preprocess`, so train-time and serve-time inputs are the same arrays.
DEFAULT_SIZE = 100
RESAMPLE = Image.Resampling.BILINEAR  # the one interpolation; PIL antialiases when shrinking
BACKGROUND = (255, 255, 255)  # what transparent pixels become


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (transparency composited onto white, 16-bit scaled down, a float image
    read as 0-1 when its values are, else as 0-255 or 0-65535; NaN and infinities black)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)  # non-finite: black
        peak = values.max(initial=0)
        if image.mode == "F" and peak <= 1.0:
            top = 1.0  # a float image in [0, 1]
        else:
            top = 65535.0 if image.mode.startswith("I;16") or peak > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


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
    decoded = decode_image(source, draft=("RGB", (size, size)))
    try:
        image = _to_rgb(decoded)
        if channels == 1:
            image = image.convert("L")
        image = image.resize((size, size), RESAMPLE)
    except (ValueError, OSError) as error:  # a mode PIL reads but cannot convert
        raise ImageDecodeError(f"cannot convert a {decoded.mode} image to RGB ({error})") from error
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array.reshape(size, size, channels)
