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


class SquareDetector:
    """A face detector for synthetic clips: every bright square (grey > 200, at least ``min_side`` px) is a face, scored 0.95."""

    def __init__(self, min_side: int = 8):
        self.min_side = min_side

    def detect(self, image: Image.Image) -> list:
        import cv2

        from maskdetect.core.faces import Face

        bright = (np.asarray(image.convert("L")) > 200).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(bright)
        return [Face((int(x), int(y), int(x + w), int(y + h)), 0.95) for x, y, w, h, _ in stats[1:count]
                if min(w, h) >= self.min_side]


def squares_frame(size: tuple[int, int], boxes) -> Image.Image:
    """A dark frame with a white square per box (xmin, ymin, xmax, ymax): the faces SquareDetector finds."""
    frame = np.full((size[1], size[0], 3), 30, np.uint8)
    for xmin, ymin, xmax, ymax in boxes:
        frame[ymin:ymax, xmin:xmax] = 255
    return Image.fromarray(frame)


def squares_clip(path: Path, fps: float, boxes_per_frame, size: tuple[int, int] = (160, 120)) -> Path:
    """An MPEG-4 clip (or, for a folder path, PNG frames 0.png, 1.png...) of ``squares_frame`` per list of boxes."""
    from maskdetect.core.video import video_writer

    if path.suffix:
        with video_writer(path, fps, size) as write:
            for boxes in boxes_per_frame:
                write(squares_frame(size, boxes))
        return path
    path.mkdir(parents=True, exist_ok=True)
    for index, boxes in enumerate(boxes_per_frame):
        squares_frame(size, boxes).save(path / f"{index}.png")
    return path


class FixedPredictor:
    """A classifier that answers every crop alike: ``probabilities`` (with_mask, incorrect, without_mask)."""

    name = "fixed"

    def __init__(self, probabilities=(0.1, 0.1, 0.8)):
        self.probabilities = tuple(probabilities)

    def predict_batch(self, crops) -> list:
        from maskdetect.core.constants import LABELS
        from maskdetect.core.inference import Prediction

        label = LABELS[int(np.argmax(self.probabilities))]
        return [Prediction(label, *self.probabilities, self.name) for _ in crops]


def encode(image: Image.Image, format: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def brightness_model(path: Path, classes: int = 3) -> Path:
    """A tiny Keras model saved like the deployment one, whose answer follows the image's mean brightness m.

    Input (None, 100, 100, 3) in [0, 1]. Three classes (a softmax named probabilities, as deployed):
    a white image answers with_mask, a black one without_mask, a mid-grey one (m near 0.5) incorrect,
    so tests can check that the right pixels reach the model and the right label comes back.
    ``classes=2``: one sigmoid unit named with_mask, p(with_mask) growing with m, as two-class models end.
    """
    import keras

    inputs = keras.Input((100, 100, 3), name="image")
    mean = keras.layers.GlobalAveragePooling2D(name="mean")(inputs)
    if classes == 2:
        output = keras.layers.Dense(1, activation="sigmoid", name="with_mask")(mean)
        weights = [np.full((3, 1), 8.0, np.float32), np.array([-12.0], np.float32)]
    else:
        output = keras.layers.Dense(3, activation="softmax", name="probabilities")(mean)
        # logits (10 m - 20/3 per channel summed: 30 m - 20, 0, -30 m + 10): with_mask wins above m = 2/3,
        # without_mask below m = 1/3, incorrect between.
        weights = [np.tile(np.array([[10.0, 0.0, -10.0]], np.float32), (3, 1)), np.array([-20.0, 0.0, 10.0], np.float32)]
    model = keras.Model(inputs, output, name="brightness")
    model.layers[-1].set_weights(weights)
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
