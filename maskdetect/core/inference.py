"""The one inference path: the service, ``maskdetect predict`` and the Lambda handler.

A :class:`Predictor` loads a model file once and answers for image bytes, paths or PIL
images: every input goes through :func:`maskdetect.core.images.preprocess`, the model's compiled
batch call, and :func:`Prediction.as_dict` for the answer's shape. For a photo
(:meth:`Predictor.predict`) it classifies the largest face a face detector finds, cropped as the
training crops are, and the whole photo only when no face is found (or ``face_centred=False``).

Keras models are called with ``predict_on_batch``, which reuses the compiled function
(``model.predict`` builds a dataset and a progress bar on every call).
The model file's suffix picks a *backend* (:data:`BACKENDS`): an object with ``input_size``,
``channels`` and ``predict(batch)``, which gives the three calibrated probabilities of
:data:`~maskdetect.core.constants.LABELS` per image (a two-class model's one sigmoid unit ``p`` is
read as ``(p, 0, 1 - p)``). ``.h5`` / ``.keras`` files run on Keras
(TensorFlow); a ``.tflite`` file (``maskdetect export``) runs on LiteRT's interpreter alone
(``ai-edge-litert``), so a service or handler serving it never imports TensorFlow or Keras:
this module imports neither at the top, and each backend imports its runtime when it loads.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from . import constants
from .constants import LABELS
from .faces import Face, YuNetDetector, crop_face, largest
from .fetch import Limits, fetch_bytes
from .files import sha256_file
from .images import ImageSource, decode_reduced, preprocess
from .weights import WeightsError


class ModelError(RuntimeError):
    """The model file is missing or cannot be loaded; the message says what to do."""


class Backend(Protocol):
    input_size: int
    channels: int

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 (n, size, size, channels) in [0, 1] -> the probabilities of LABELS, shape (n, 3)."""


def label_probabilities(outputs: np.ndarray) -> np.ndarray:
    """A model's outputs as the probabilities of LABELS, shape (n, 3): three softmax units as they are,
    one sigmoid unit p(with_mask) (a two-class model) as (p, 0, 1 - p)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    outputs = outputs.reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return np.concatenate([outputs, np.zeros_like(outputs), 1.0 - outputs], axis=1)
    if outputs.shape[1] != len(LABELS):
        raise ValueError(f"the model gives {outputs.shape[1]} outputs per image, not 1 (p(with_mask)) or {len(LABELS)} ({', '.join(LABELS)})")
    return outputs


class KerasBackend:
    """A Keras model file (.h5 or .keras), called through ``predict_on_batch``."""

    def __init__(self, path: Path):
        import keras

        self.model = keras.models.load_model(path, compile=False)  # no optimizer: inference only
        _, self.input_size, _, self.channels = self.model.input_shape
        self.predict(np.zeros((1, self.input_size, self.input_size, self.channels), np.float32))  # compile now, not on the first request

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return label_probabilities(self.model.predict_on_batch(batch))


class TFLiteBackend:
    """A .tflite file run by LiteRT's interpreter (``ai-edge-litert``): no TensorFlow, no Keras.

    The interpreter is not thread-safe; :class:`Predictor` calls it under its lock.
    """

    def __init__(self, path: Path, num_threads: int | None = constants.TFLITE_THREADS):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs, not one image in and its probabilities out")
        shape = tuple(int(n) for n in inputs[0]["shape_signature"])
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] not in (1, 3) or inputs[0]["dtype"] != np.float32:
            raise ValueError(f"the model's input is {inputs[0]['dtype'].__name__} {shape}, not float32 (batch, size, size, 1 or 3)")
        _, self.input_size, _, self.channels = shape
        self._input, self._output = inputs[0]["index"], outputs[0]["index"]
        # One image per call: a fixed input shape is planned once, and a larger batch would
        # keep its buffers in the worker for good while answering no faster on the CPU.
        self.interpreter.resize_tensor_input(self._input, (1, self.input_size, self.input_size, self.channels))
        self.interpreter.allocate_tensors()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        outputs = []
        for image in batch:
            self.interpreter.set_tensor(self._input, image[np.newaxis])
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self._output).reshape(-1))
        return label_probabilities(np.array(outputs).reshape(len(batch), -1))


KERAS_SUFFIXES = (".h5", ".keras")
BACKENDS: dict[str, type] = {".h5": KerasBackend, ".keras": KerasBackend, ".tflite": TFLiteBackend}


@dataclass(frozen=True)
class Prediction:
    label: str  # the most probable of LABELS: "with_mask" | "incorrect" | "without_mask"
    with_mask: float  # p(a mask over nose and mouth)
    incorrect: float  # p(a mask worn below the nose or on the chin)
    without_mask: float  # p(no mask); the three sum to 1
    model: str
    # The face box classified (xmin, ymin, xmax, ymax in pixels of the photo as displayed), or
    # None when the whole image was classified (no face found, or face-centring off).
    face: list[int] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def model_report(path: Path) -> dict | None:
    """The metrics JSON written beside the model, if it describes this very file, else None.

    The JSON is trusted only when it describes this file, so a model copied next to another
    model's metrics is not served under the wrong name: for the trained Keras file
    its recorded size (``model_bytes``) matches; for an export (``maskdetect export``: a .tflite)
    its entry under ``exports`` gives this file's size and sha256, recorded after the export was
    checked against the Keras file. Retraining rewrites the JSON without ``exports``, so a stale
    export falls back to its file name.
    """
    metrics = path.with_name(constants.METRICS_FILE)
    try:
        report = json.loads(metrics.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or not report.get("model"):
        return None
    if path.suffix.lower() in KERAS_SUFFIXES:
        recorded = report.get("model_bytes")
        if recorded and recorded != path.stat().st_size:
            return None
    else:
        exports = report.get("exports")
        entry = exports.get(path.name) if isinstance(exports, dict) else None
        if not isinstance(entry, dict) or entry.get("bytes") != path.stat().st_size or entry.get("sha256") != sha256_file(path):
            return None
    return report


class Predictor:
    """One loaded model (and, for face-centred answers, a face detector); thread-safe, so one per process is enough."""

    def __init__(self, backend: Backend, name: str, subject_detector=None, second_look=None):
        self.backend = backend
        # maskdetect.core.faces.FaceDetectors: predict() classifies the largest face the first finds, or
        # else the largest the second finds (a slower look for small faces); None: whole images.
        self.subject_detector = subject_detector
        self.second_look = second_look
        self.name = name
        # One call at a time: Keras models are not documented as safe to call concurrently, and
        # LiteRT interpreters are not thread-safe (one set of input and output tensors).
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: Path | str,
        face_centred: bool = True,
        sharing: YuNetDetector | None = None,
        detector_weights: Path | None = None,
    ) -> Predictor:
        """Load the model file at ``path``.

        ``face_centred`` gives the predictor the subject face detector (``SUBJECT_DETECTOR``, and
        ``SECOND_LOOK`` when it finds nothing), loaded now: on the network of ``sharing`` (the service's
        crowd detector) when given, else read from ``detector_weights`` (default: deployment/weights/).
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(
                f"no model at {path}: train one with `make train` (then `make export` for a .tflite), "
                "or point MODEL_PATH at a model file"
            )
        backend = BACKENDS.get(path.suffix.lower())
        if backend is None:
            raise ModelError(f"{path} is not a model file this service reads ({', '.join(sorted(BACKENDS))})")
        try:
            loaded = backend(path)
        except Exception as error:  # noqa: BLE001 - h5py, Keras and TF raise many kinds
            raise ModelError(f"could not load the model {path} ({error.__class__.__name__}: {error})") from error
        detector = second_look = None
        if face_centred:
            try:
                network = sharing or YuNetDetector(detector_weights)
                detector = network.with_settings(**constants.SUBJECT_DETECTOR)
                second_look = network.with_settings(**constants.SECOND_LOOK)
            except WeightsError as error:
                raise ModelError(str(error)) from error
        report = model_report(path)
        return cls(loaded, str(report["model"]) if report else path.name, detector, second_look)

    def predict_batch(self, images: list[ImageSource]) -> list[Prediction]:
        """Answers for several images at once (raises ImageDecodeError for a bad one)."""
        if not images:
            return []
        size, channels = self.backend.input_size, self.backend.channels
        batch = np.stack([preprocess(image, size=size, channels=channels) for image in images])
        with self._lock:
            probabilities = self.backend.predict(batch)
        return [self._answer(row) for row in probabilities]

    def find_subject(self, photo) -> Face | None:
        """The largest face in ``photo``: the quick look first, the second look only when it finds none."""
        face = largest(self.subject_detector.detect(photo))
        if face is None and self.second_look is not None:
            face = largest(self.second_look.detect(photo))
        return face

    def predict(self, image: ImageSource) -> Prediction:
        """The answer for one photo: bytes, a path or a PIL image.

        With a subject detector: the largest face found (:meth:`find_subject`), grown by
        ``constants.FACE_CROP_MARGIN`` per side and squared (the framing of the training crops), is
        what the model sees; the answer's ``face`` is its box. With no face found, or no detector, the whole image.
        """
        if self.subject_detector is None:
            return self.predict_batch([image])[0]
        photo, scale = decode_reduced(image, constants.SUBJECT_DECODE_SIDE)
        face = self.find_subject(photo)
        if face is None:
            return self.predict_batch([photo])[0]
        crop = crop_face(photo, face.box, constants.FACE_CROP_MARGIN)
        return replace(self.predict_batch([crop])[0], face=[round(v * scale) for v in face.box])

    def predict_url(self, url: str, *, allow_private: bool = False, limits: Limits | None = None) -> Prediction:
        """The answer for the image at ``url``, fetched under the address rules of :mod:`maskdetect.core.fetch`."""
        return self.predict(fetch_bytes(url, allow_private=allow_private, limits=limits or Limits()))

    def _answer(self, probabilities: np.ndarray) -> Prediction:
        """The label is the most probable of the probabilities the answer shows (rounded), ties to the earlier label."""
        shown = [round(min(max(float(p), 0.0), 1.0), 6) for p in probabilities]
        label = LABELS[int(np.argmax(shown))]
        return Prediction(label, *shown, model=self.name)
