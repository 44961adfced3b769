"""``maskdetect export``: the trained Keras model as TFLite (and ONNX), checked against it.

The TFLite file (``deployment/maskdetect.tflite`` beside ``maskdetect.h5``) is what the lean
runtime serves: :class:`maskdetect.core.inference.TFLiteBackend` runs it on LiteRT's interpreter
without TensorFlow. The ONNX file is for other runtimes (onnxruntime, ...); it is not committed.

The TFLite file stores its weights as 8-bit integers (dynamic-range quantization: activations
stay float32), which makes the classifier call faster on a CPU and the file smaller;
the ONNX file is a plain float32 conversion. Each must give the Keras model's probabilities:
every export is run, before it is kept, on real images of the test split (``data/test``, through
:func:`maskdetect.core.images.preprocess`, like every other input) next to the Keras model, and
refused when any of the probabilities differs anywhere by more than its format's ``TOLERANCES`` entry.

- TFLite: ``tf.lite.TFLiteConverter.from_keras_model``, which exports the Keras 3 model to a
  temporary SavedModel and converts that.
- ONNX: ``tf2onnx.convert.from_keras`` fails on Keras 3 models, so the model is wrapped in a
  ``tf.function`` with an input signature (input ``image``, output ``probabilities``) and converted
  with ``tf2onnx.convert.from_function``.

Every file is written atomically (a temporary file beside the target, then a rename), and only
once every requested export has passed its check: a refused export leaves no file and keeps any
previous one. The checks are recorded in ``metrics.json`` beside the model, under ``exports``
(every other key kept): per file its bytes, sha256, max_abs_diff and the number of images
checked. :func:`maskdetect.core.inference.model_report` reads that entry to serve the export under the
Keras model's name.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ..core.constants import CLASSES, METRICS_FILE
from ..core.files import atomic_path, class_files, sha256_file, write_json
from ..core.images import preprocess
from ..core.inference import KERAS_SUFFIXES, Predictor, TFLiteBackend, label_probabilities
from ..settings import Settings

# The largest |p_export - p_keras| accepted for any label on any checked image, per format: 8-bit
# weights move the probabilities a little, a float32 conversion not at all.
TOLERANCES = {"tflite": 0.02, "onnx": 1e-5}
DEFAULT_IMAGES = 256  # the whole test split
CHUNK = 64  # images per call when checking (bounds the memory of a large check)
ONNX_OPSET = 17


class ExportError(RuntimeError):
    """An export was refused or cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Export:
    """One export that passed its check."""

    format: str  # "tflite" | "onnx"
    path: Path
    bytes: int
    sha256: str
    max_abs_diff: float
    images: int
    converter: str

    def entry(self, source: Path) -> dict:
        """The record kept in metrics.json under ``exports[<file name>]``."""
        return {
            "format": self.format,
            "source": source.name,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "max_abs_diff": self.max_abs_diff,
            "images": self.images,
            "tolerance": TOLERANCES[self.format],
            "converter": self.converter,
        }


def check_images(n: int, root: Path | None = None) -> list[Path]:
    """The first ``n`` images of the test split, alternating with_mask / without_mask."""
    root = root or Settings.from_env().data_dir / "test"
    per_class = [class_files(root, label) for label in CLASSES]
    if not any(per_class):
        raise ExportError(f"no test images under {root}: lay out the split first with `make data` (or `maskdetect data`)")
    mixed = [p for pair in itertools.zip_longest(*per_class) for p in pair if p is not None]
    return mixed[:n]


# ---------------------------------------------------------------------------- converters


def to_tflite(model) -> bytes:
    """A Keras model as a .tflite flatbuffer with 8-bit weights (dynamic-range quantization)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # with no representative data: weights only
    # Keras prints where it wrote its temporary SavedModel: not something the caller can use.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def to_onnx(model) -> bytes:
    """A Keras model as an ONNX model: input ``image`` (n, size, size, channels), output ``probabilities``."""
    import tensorflow as tf
    import tf2onnx

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")

    @tf.function(input_signature=[spec])
    def serve(image):
        return {"probabilities": model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=[spec], opset=ONNX_OPSET)
    return proto.SerializeToString()


def onnx_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The probabilities of LABELS from an ONNX file, by onnxruntime (the check's runner; the service reads .tflite)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        return label_probabilities(session.run(None, {name: batch.astype(np.float32)})[0])

    return predict


def tflite_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The probabilities of LABELS from a .tflite file, by the backend the service uses."""
    return TFLiteBackend(path).predict


def _version(package: str) -> str:
    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return package


# format -> (convert(keras model) -> bytes, runner(path) -> predict(batch), converter description)
FORMATS: dict[str, tuple[Callable, Callable, Callable[[], str]]] = {
    "tflite": (to_tflite, tflite_predictor, lambda: _version("tensorflow")),
    "onnx": (to_onnx, onnx_predictor, lambda: f"{_version('tf2onnx')}, opset {ONNX_OPSET}"),
}


# ---------------------------------------------------------------------------- export


def _in_chunks(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    return np.concatenate([predict(batch[i : i + CHUNK]) for i in range(0, len(batch), CHUNK)])


def _read_metrics(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ExportError(f"{path} is not readable JSON ({error}); fix or remove it, then export again") from error
    if not isinstance(report, dict):
        raise ExportError(f"{path} holds no JSON object; fix or remove it, then export again")
    return report


def export_model(
    model_path: Path | str | None = None,
    *,
    formats: tuple[str, ...] = ("tflite",),
    images: int = DEFAULT_IMAGES,
    say: Callable[[str], None] = lambda message: None,
) -> list[Export]:
    """Convert the Keras model at ``model_path`` (default: the deployment model) and keep each export
    (``<model>.tflite``, ``<model>.onnx`` beside it) only if it gives the model's probabilities
    within its :data:`TOLERANCES` entry on ``images`` test images. Raises ExportError (nothing written) if not,
    or if the model is missing; ModelError if it cannot be loaded. ``say`` receives progress lines.
    """
    path = Path(model_path or Settings.from_env().trained_model)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"cannot export to {', '.join(unknown) or 'nothing'}; the formats are {', '.join(FORMATS)}")
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ExportError(f"{path} is not a Keras model file ({', '.join(KERAS_SUFFIXES)}): export converts the trained model")
    if not path.is_file():
        raise ExportError(f"no model at {path}: train one with `make train`, or give --model FILE.h5")
    if images < 1:
        raise ExportError(f"--images must be at least 1, not {images}")
    metrics_path = path.with_name(METRICS_FILE)
    report = _read_metrics(metrics_path)  # before converting: a broken file stops the export early
    files = check_images(images)

    started = time.perf_counter()
    say(f"loading {path}")
    backend = Predictor.load(path, face_centred=False).backend  # ModelError when missing or unreadable
    say(f"checking on {len(files)} test images from {files[0].parent.parent}")
    batch = np.stack([preprocess(f, size=backend.input_size, channels=backend.channels) for f in files])
    expected = _in_chunks(backend.predict, batch)

    checked: list[Export] = []
    with contextlib.ExitStack() as keep:  # every export replaces its file only once all have passed
        for name in formats:
            convert, runner, converter = FORMATS[name]
            target = path.with_suffix(f".{name}")
            say(f"converting to {name}")
            temporary = keep.enter_context(atomic_path(target))
            temporary.write_bytes(convert(backend.model))
            got = _in_chunks(runner(temporary), batch)
            difference = float(np.max(np.abs(got - expected)))
            if not difference <= TOLERANCES[name]:  # NaN fails too
                raise ExportError(
                    f"refused: the {name} export differs from {path.name} by up to {difference:.3g} in a probability "
                    f"on {len(files)} test images (tolerance {TOLERANCES[name]:g}); no file written"
                )
            content = temporary.stat().st_size
            checked.append(Export(name, target, content, sha256_file(temporary), difference, len(files), converter()))
            say(f"  {name}: {content / 1e6:.2f} MB, max |p - p_keras| = {difference:.2g} on {len(files)} images")

    exports = report.get("exports") if isinstance(report.get("exports"), dict) else {}
    exports.update({export.path.name: export.entry(path) for export in checked})
    write_json({**report, "exports": exports}, metrics_path)
    say(f"recorded the checks in {metrics_path} ({time.perf_counter() - started:.1f} s)")
    return checked
