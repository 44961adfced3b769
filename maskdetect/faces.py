"""Face detection behind a small interface, so another detector can be swapped in.

The default is MTCNN from the ``mtcnn`` package (weights ship inside it, MIT license), with
its three networks fine-tuned on synthetic masked faces (``config.DETECTOR_WEIGHTS``, made by
:mod:`maskdetect.detector_training`). Boxes are in pixels of the image as displayed (EXIF orientation applied).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from .images import ImageSource, decode_image


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax (exclusive)
    score: float

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


class FaceDetector(Protocol):
    def detect(self, image: Image.Image) -> list[Face]:
        """Every face found in an RGB image."""


class MTCNNDetector:
    """MTCNN with settings that can be tuned.

    Images with a longer side over ``max_side`` are shrunk to it first (speed). Images with a
    longer side under ``min_side`` are enlarged to it first: MTCNN's first stage looks at
    12 px windows, so at scale 1 it cannot see faces under about 12 px; enlarging a 400 px
    street scene 2x lets it find 6-12 px faces, at about 4x the time.
    """

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
        max_side: int = 640,
        min_score: float = 0.9,
        min_side: int = 0,
        weights: str | None = None,
    ):
        self._networks = _Networks()  # built by load(), at the latest by the first detect()
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.scale_factor = scale_factor
        self.max_side = max_side
        self.min_score = min_score
        self.min_side = min_side
        self.weights = weights  # an .npz from maskdetect.detector_training; None: the package's own

    @property
    def _mtcnn(self):
        return self._networks.mtcnn

    @_mtcnn.setter
    def _mtcnn(self, mtcnn) -> None:
        self._networks.mtcnn = mtcnn

    @property
    def _lock(self) -> threading.Lock:
        return self._networks.lock

    def with_settings(self, **changes) -> MTCNNDetector:
        """The same networks (built once, called under one lock) with other thresholds or sizes.

        POST /predict looks for one subject with stricter thresholds than POST /detect uses for
        crowds; sharing the networks costs neither memory nor a second build.
        """
        settings = {
            "min_face_size": self.min_face_size,
            "thresholds": self.thresholds,
            "scale_factor": self.scale_factor,
            "max_side": self.max_side,
            "min_score": self.min_score,
            "min_side": self.min_side,
            "weights": self.weights,
            **changes,
        }
        if settings["weights"] != self.weights:
            raise ValueError("with_settings shares the loaded networks, so it cannot change the weights")
        other = MTCNNDetector(**settings)
        other._networks = self._networks
        return other

    def load(self) -> MTCNNDetector:
        """Build MTCNN now, if not built yet.

        MTCNN imports TensorFlow (seconds, hundreds of MB), so it is built when first needed: a
        service serving a .tflite model builds it on its first ``POST /detect``, never before.
        """
        with self._lock:
            if self._mtcnn is None:
                from mtcnn import MTCNN

                mtcnn = MTCNN(device="CPU:0")
                if self.weights:
                    from .detector_training import STAGES, load_weights

                    if not Path(self.weights).is_file():
                        raise FileNotFoundError(
                            f"MTCNN weights {self.weights} are missing: run `make detector`, or "
                            "use weights=None for the mtcnn package's own"
                        )

                    tuned = load_weights(self.weights)
                    for name, stage in zip(STAGES, mtcnn.stages):
                        stage.model.set_weights(tuned[name])
                self._mtcnn = _compiled(mtcnn)
        return self

    def detect(self, image: Image.Image) -> list[Face]:
        rgb = image.convert("RGB")
        longer = max(rgb.size)
        scale = min(1.0, self.max_side / longer)
        if longer < self.min_side:
            scale = self.min_side / longer
        if scale != 1.0:
            # At least 1 px per side: a 10000x1 strip shrunk to 640 px wide would round to 0 px tall.
            size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        self.load()
        with self._lock:
            found = self._mtcnn.detect_faces(
                np.asarray(rgb),
                min_face_size=self.min_face_size,
                scale_factor=self.scale_factor,
                threshold_pnet=self.thresholds[0],
                threshold_rnet=self.thresholds[1],
                threshold_onet=self.thresholds[2],
            )
        faces = []
        for result in found:
            if result["confidence"] < self.min_score:
                continue
            x, y, w, h = result["box"]
            box = (
                max(0, int(round(x / scale))),
                max(0, int(round(y / scale))),
                min(image.width, int(round((x + w) / scale))),
                min(image.height, int(round((y + h) / scale))),
            )
            if box[2] > box[0] and box[3] > box[1]:
                faces.append(Face(box, float(result["confidence"])))
        return faces


class _Networks:
    """MTCNN's networks, once built, and the lock its calls take (one MTCNN per service worker, shared by its threads)."""

    def __init__(self):
        self.mtcnn = None
        self.lock = threading.Lock()


# The input of MTCNN's three networks: PNet sees each pyramid level of the image, RNet and ONet
# batches of 24 px and 48 px candidate crops.
_NETWORK_INPUTS = ((1, None, None, 3), (None, 24, 24, 3), (None, 48, 48, 3))


def _compiled(mtcnn):
    """``mtcnn`` with its three Keras networks run as TensorFlow graphs (``tf.function``).

    The ``mtcnn`` package calls them eagerly, layer by layer, once per pyramid level: on a 400 px
    scene most of the ~400 ms of CPU per detection went to Python and Keras dispatch, not to the
    convolutions (pyinstrument; benchmarks/RESULTS.md). The same layers as graphs give the same
    boxes and scores (tests/test_faces.py compares them) at about a third of the CPU. Each graph
    is traced here, once, for inputs of any size, so no request pays for tracing.
    """
    import tensorflow as tf

    for stage, shape in zip(mtcnn.stages, _NETWORK_INPUTS):
        network = tf.function(stage.model, input_signature=[tf.TensorSpec(shape, tf.float32)])
        network.get_concrete_function()
        stage._model = network  # noqa: SLF001 - the stages call self._model(batch); mtcnn is pinned
    return mtcnn


def largest(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.area) if faces else None


def largest_face(detector: FaceDetector, source: ImageSource) -> Face | None:
    return largest(detector.detect(decode_image(source)))


def crop_face(image: Image.Image, box: tuple[int, int, int, int], margin: float) -> Image.Image:
    """The face in ``box`` as the classifier sees faces: squared, grown by ``margin`` per side (:func:`expand_box`)."""
    return image.crop(expand_box(box, margin, image.width, image.height))


def subject_detector(sharing: MTCNNDetector | None = None) -> MTCNNDetector:
    """The detector that finds the face of a photo's subject (``config.SUBJECT_DETECTOR``).

    With ``sharing`` (the crowd detector of the same process) it shares that detector's networks.
    """
    from . import config

    if sharing is not None and sharing.weights == config.SUBJECT_DETECTOR["weights"]:
        return sharing.with_settings(**config.SUBJECT_DETECTOR)
    return MTCNNDetector(**config.SUBJECT_DETECTOR)


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
