"""The project's one image decoder.

Everything that opens an image (data pipeline, training, services) goes through
:func:`decode_image`, so EXIF orientation and decoding errors are handled once.
"""

from __future__ import annotations

import io
from pathlib import Path

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
