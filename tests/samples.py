"""What tests read and make: the shared data, synthetic photos, encoded images, a tiny model, Dockerfile instructions."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdetect.core.constants import PROJECT_ROOT
from maskdetect.settings import Settings

SHARED = Settings.from_env().shared_data
SHARED_MODELS = PROJECT_ROOT.parent / "shared" / "models"


def require(path: Path) -> Path:
    """Real-data tests never skip in CI; elsewhere they say what is missing."""
    if not path.exists():
        message = f"{path} is missing: set MASKDETECT_SHARED_DATA to the folder with the shared data"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def photo(seed: int, size=(120, 160)) -> Image.Image:
    """A synthetic 'photo': smooth background and random ellipses and bars, seeded."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * rng.uniform(0.5, 2) + y * rng.uniform(0.5, 2)) % 255 for _ in range(3)], -1)
    image = base.astype(np.uint8)
    for _ in range(12):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        rx, ry = rng.integers(5, width // 3), rng.integers(5, height // 3)
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        image[inside] = rng.integers(0, 256, 3)
    return Image.fromarray(image)


def encode(image: Image.Image, format: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def brightness_model(path: Path) -> Path:
    """A tiny Keras model saved like the deployment one: p(with_mask) grows with brightness.

    Input (None, 100, 100, 3) in [0, 1], one sigmoid unit named with_mask; a white image
    answers with_mask (p ~ 1), a black one without_mask (p ~ 0), so tests can check that
    the right pixels reach the model and the right label comes back.
    """
    import keras

    inputs = keras.Input((100, 100, 3), name="image")
    mean = keras.layers.GlobalAveragePooling2D(name="mean")(inputs)
    output = keras.layers.Dense(1, activation="sigmoid", name="with_mask")(mean)
    model = keras.Model(inputs, output, name="brightness")
    model.get_layer("with_mask").set_weights([np.full((3, 1), 8.0, np.float32), np.array([-12.0], np.float32)])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path, include_optimizer=False)
    return path


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows
