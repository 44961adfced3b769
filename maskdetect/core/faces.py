"""Face detection behind a small interface, so another detector can be swapped in.

The detector is YuNet (OpenCV's ``cv2.FaceDetectorYN``; weights obtained by
:mod:`maskdetect.core.weights`, never committed), run at one or more scales and merged with NMS.
Boxes are in pixels of the image as displayed (EXIF orientation applied).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from .images import ImageSource, decode_image
from .weights import find_detector_weights, verify_weights

Point = tuple[float, float]


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax (exclusive)
    score: float
    landmarks: tuple[Point, ...] | None = None  # eyes, nose tip, mouth corners, when the detector gives them

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


class FaceDetector(Protocol):
    def detect(self, image: Image.Image) -> list[Face]:
        """Every face found in an RGB image."""


class YuNetDetector:
    """YuNet (OpenCV's ``cv2.FaceDetectorYN``) run at one or more scales, merged with NMS.

    ``scales`` multiply the image's size after it is fitted within ``max_side`` (shrunk, never
    enlarged); a pass whose longer side would exceed ``max_pass_side`` is capped there. Upscaled
    passes find small faces that the network's stride misses at 1x. The smallest pass runs last, so
    the network keeps the buffers of a small input between calls.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        scales: tuple[float, ...] = (1.0,),
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 640,
        max_pass_side: int = 1280,
        top_k: int = 5000,
    ):
        self.weights = str(weights) if weights is not None else None
        self.scales = tuple(scales)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.max_pass_side = max_pass_side
        self.top_k = top_k
        self._shared = _Network()

    def load(self) -> YuNetDetector:
        """Read the ONNX file now (once): a missing or wrong file is reported here, not per request."""
        with self._shared.lock:
            if self._shared.network is None:
                path = verify_weights(Path(self.weights)) if self.weights else find_detector_weights()
                level = cv2.utils.logging.getLogLevel()
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 warns that YuNet ignores a target it never set
                try:
                    self._shared.network = cv2.FaceDetectorYN.create(str(path), "", (320, 320))
                finally:
                    cv2.utils.logging.setLogLevel(level)
        return self

    def with_settings(self, **changes) -> YuNetDetector:
        """A detector with other settings on this one's network: one model in memory, one lock."""
        unknown = sorted(set(changes) - {"scales", "score_threshold", "nms_threshold", "max_side", "max_pass_side", "top_k"})
        if unknown:
            raise TypeError(f"YuNetDetector has no setting {', '.join(unknown)}")
        other = copy.copy(self.load())
        for name, value in changes.items():
            setattr(other, name, tuple(value) if name == "scales" else value)
        return other

    def _pass(self, bgr: np.ndarray) -> np.ndarray:
        """One YuNet call, under the lock: rows of x, y, w, h, five (x, y) landmarks, score."""
        network = self._shared.network
        network.setScoreThreshold(self.score_threshold)
        network.setNMSThreshold(self.nms_threshold)
        network.setTopK(self.top_k)
        network.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = network.detect(bgr)
        return np.zeros((0, 15), np.float32) if found is None else found

    def detect(self, image: Image.Image) -> list[Face]:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        width, height = rgb.size
        base = min(1.0, self.max_side / max(width, height))
        self.load()
        bgr = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)  # YuNet's channel order, once at 1x
        rows = []
        for factor in sorted(self.scales, reverse=True):
            scale = min(base * factor, self.max_pass_side / max(width, height))
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            # Shrinking by half or more averages areas (no aliasing); by less, bilinear reads every pixel anyway, far cheaper.
            resized = bgr if size == (width, height) else cv2.resize(
                bgr, size, interpolation=cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR
            )
            with self._shared.lock:
                found = self._pass(resized)
            found[:, :14] /= np.array([size[0] / width, size[1] / height] * 7, np.float32)
            rows.append(found)
        found = np.concatenate(rows)
        if len(self.scales) > 1 and len(found):
            keep = cv2.dnn.NMSBoxes(found[:, :4].tolist(), found[:, 14].tolist(), self.score_threshold, self.nms_threshold)
            found = found[np.asarray(keep, int).reshape(-1)]
        faces = []
        for row in sorted(found, key=lambda r: -r[14]):
            x, y, w, h = row[:4]
            box = (max(0, int(round(x))), max(0, int(round(y))), min(width, int(round(x + w))), min(height, int(round(y + h))))
            if box[2] > box[0] and box[3] > box[1]:
                landmarks = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
                faces.append(Face(box, float(row[14]), landmarks))
        return faces


class _Network:
    """YuNet's network once read, and the lock its calls take (one per worker, shared by its detectors and threads)."""

    def __init__(self):
        self.network = None
        self.lock = threading.Lock()


def largest(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.area) if faces else None


def largest_face(detector: FaceDetector, source: ImageSource) -> Face | None:
    return largest(detector.detect(decode_image(source)))


def crop_face(image: Image.Image, box: tuple[int, int, int, int], margin: float) -> Image.Image:
    """The face in ``box`` as the classifier sees faces: squared, grown by ``margin`` per side (:func:`expand_box`)."""
    return image.crop(expand_box(box, margin, image.width, image.height))


def expand_box(
    box: tuple[int, int, int, int], margin: float, width: int, height: int, square: bool = True
) -> tuple[int, int, int, int]:
    """Grow a box by ``margin`` of its size on every side (squared first), clipped to the image."""
    xmin, ymin, xmax, ymax = box
    w, h = xmax - xmin, ymax - ymin
    if square:
        side = max(w, h)
        cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
        w = h = side
        xmin, ymin = cx - side / 2, cy - side / 2
    grow_w, grow_h = w * margin, h * margin
    return (
        max(0, int(round(xmin - grow_w))),
        max(0, int(round(ymin - grow_h))),
        min(width, int(round(xmin + w + grow_w))),
        min(height, int(round(ymin + h + grow_h))),
    )
