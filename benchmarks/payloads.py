"""What the benchmark sends: camera-like JPEGs from 20 KB to 1 MB with a person in them, and crowd scenes.

The JPEGs are generated at run time (nothing is ever written into the repository or the report): a
smooth background, a few dozen flat shapes, one portrait (``FACE``, a photo of the pinned
observations dataset in the shared data) standing in the middle at 45 % of the height, and
sensor-like grain, at a resolution that grows with the target size (about 1.7 bits per pixel, like a
phone photo at quality 85), encoded at the JPEG quality that lands closest to the target. /predict
finds that face in its first look, as in most photos people send; what a photo without a face costs
(the second look) is benchmarks/second_look.py's. Seeded: the same bytes on every machine with the
same Pillow and numpy.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Upload sizes (bytes): the spread a phone, a web page and a thumbnail send.
SIZES = (20_000, 50_000, 100_000, 250_000, 500_000, 1_000_000)
TOLERANCE = 0.06  # every JPEG is within 6% of its target size
FACE = Path("observations") / "without_mask" / "10.jpg"  # under the shared data: the person in every upload


@dataclass(frozen=True)
class Payload:
    tag: str  # "100KB"
    path: Path
    bytes: int
    width: int
    height: int


def tag(size: int) -> str:
    return f"{size // 1000_000}MB" if size >= 1_000_000 else f"{size // 1000}KB"


def _photo(width: int, height: int, seed: int, grain: float, person: Image.Image | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    unit = width / 800  # the same picture at every resolution
    y, x = np.ogrid[0:height, 0:width]
    x, y = (x / unit).astype(np.float32), (y / unit).astype(np.float32)
    background = np.stack(np.broadcast_arrays((x * 0.3 + y * 0.2) % 255, (x * 0.1 + y * 0.4) % 255, (x * 0.25 + 40) % 255 + 0 * y), -1)
    image = Image.fromarray(background.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(15, 140) * unit, rng.uniform(15, 140) * unit
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    if person is not None:
        tall = round(height * 0.45)
        shown = person.convert("RGB").resize((round(person.width * tall / person.height), tall), Image.Resampling.BILINEAR)
        image.paste(shown, ((width - shown.width) // 2, (height - tall) // 2))
    noisy = np.asarray(image, np.float32) + rng.standard_normal((height, width, 3), dtype=np.float32) * grain
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def synthetic_jpeg(target: int, seed: int = 0, person: Image.Image | None = None) -> bytes:
    """A camera-like JPEG of about ``target`` bytes (within TOLERANCE), with ``person`` in the middle, the same bytes every time."""
    width = max(64, round(800 * math.sqrt(target / 100_000)))
    height = round(width * 3 / 4)
    best = b""
    for grain in (8.0, 4.0, 14.0, 2.0, 22.0):
        image = Image.fromarray(_photo(width, height, seed, grain, person))
        low, high = 20, 97  # JPEG size grows with quality: bisect it
        while low <= high:
            quality = (low + high) // 2
            data = _encode(image, quality)
            if abs(len(data) - target) < abs(len(best) - target):
                best = data
            if len(data) < target:
                low = quality + 1
            else:
                high = quality - 1
        if abs(len(best) - target) <= TOLERANCE * target:
            return best
    raise RuntimeError(f"could not encode a JPEG within {TOLERANCE:.0%} of {target} bytes (closest {len(best)})")


def write_jpegs(folder: Path, sizes: tuple[int, ...] = SIZES, shared: Path | None = None) -> list[Payload]:
    """The upload JPEGs, written to ``folder`` (created) as upload-100KB.jpg ..., each with the portrait
    ``shared``/FACE in it (without ``shared``: no person)."""
    folder.mkdir(parents=True, exist_ok=True)
    person = None
    if shared is not None:
        if not (shared / FACE).is_file():
            raise FileNotFoundError(f"{shared / FACE} is missing: set MASKDETECT_SHARED_DATA to the folder with the shared data")
        with Image.open(shared / FACE) as photo:
            person = photo.convert("RGB")  # loaded once; the file is closed
    payloads = []
    for size in sizes:
        data = synthetic_jpeg(size, person=person)
        path = folder / f"upload-{tag(size)}.jpg"
        path.write_bytes(data)
        with Image.open(path) as image:
            payloads.append(Payload(tag(size), path, len(data), image.width, image.height))
    return payloads


def scenes(folder: Path, count: int, max_side: int = 450) -> list[Payload]:
    """The first ``count`` scenes (by name) in ``folder`` whose longer side is at most ``max_side``.

    scenes-dev holds 411 street and crowd photos, 399 of them 400-499 px on the longer side.
    """
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: the /detect scenario needs scenes-dev/images; set MASKDETECT_SHARED_DATA "
            "to the folder with the shared data (or pass --scenes DIR)"
        )
    found = []
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as image:
            if max(image.size) <= max_side:
                found.append(Payload(path.stem, path, path.stat().st_size, image.width, image.height))
        if len(found) == count:
            return found
    raise FileNotFoundError(f"{folder} has {len(found)} JPEG scenes of at most {max_side} px, not the {count} asked for")
