"""Crowd analysis: every face in a photo, who is unmasked, the unmasked share, who stands close.

A :class:`CrowdAnalyzer` runs a :class:`~maskdetect.core.faces.FaceDetector` over the image (as
displayed: EXIF orientation applied), crops each face with a margin (the same
:func:`~maskdetect.core.faces.crop_face` framing the classifier's training crops use), and classifies
all crops in one :meth:`~maskdetect.core.inference.Predictor.predict_batch` call, so every crop goes
through the shared :func:`~maskdetect.core.images.preprocess`.

Distances come from a pinhole camera model and these assumptions (stated in
``documentation/crowd.md`` too; each is a setting in :mod:`maskdetect.core.constants`):

* every face is ``FACE_WIDTH_M`` (15 cm) wide, so a face ``w`` pixels wide stands
  ``Z = f * 0.15 / w`` metres from the camera;
* the camera's horizontal field of view is ``CAMERA_FOV_DEG`` (60 degrees, a typical phone or
  street camera), so the focal length in pixels is ``f = (image width / 2) / tan(fov / 2)``;
* the optical centre is the image centre, and the detector's box is the face's width
  (the detector's boxes are roughly face-wide; a profile face is narrower and looks farther away).

Each face becomes a point ``((cx - W/2) Z / f, (cy - H/2) Z / f, Z)`` in camera coordinates, and
two faces not masked (``without_mask``, or ``incorrect``: a mask below the nose) closer than
``CLOSE_DISTANCE_M`` (1.5 m) are listed in ``close_pairs``. These
are rough estimates: a child's face, a cropped photo or a zoom lens changes them by tens of percent.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

from . import constants
from .faces import FaceDetector, crop_face
from .images import ImageSource, decode_image
from .inference import Predictor

COLOURS = {"with_mask": (30, 170, 80), "incorrect": (235, 140, 0), "without_mask": (220, 40, 40)}  # green / amber / red boxes
PICTURE_COLOUR = (140, 145, 150)  # grey: a face fixed to the scene in a video (a poster), not a person


def is_unmasked(label: str) -> bool:
    """Not masked: no mask, or one worn below the nose (``incorrect``), as the scene labels count it."""
    return label != constants.MASKED


@dataclass(frozen=True)
class CrowdFace:
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax in displayed pixels (exclusive)
    score: float  # the detector's confidence
    label: str  # the most probable of LABELS
    with_mask: float  # the classifier's probabilities, as /predict answers them
    incorrect: float
    without_mask: float
    landmarks: tuple | None = field(default=None, compare=False)  # the detector's eyes, nose tip, mouth corners; not in the JSON

    def as_dict(self) -> dict:
        return {
            "box": list(self.box),
            "score": round(self.score, 4),
            "label": self.label,
            "with_mask": self.with_mask,
            "incorrect": self.incorrect,
            "without_mask": self.without_mask,
        }


@dataclass(frozen=True)
class ClosePair:
    a: int  # indices into CrowdAnalysis.faces, a < b
    b: int
    distance_m: float

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "distance_m": round(self.distance_m, 2)}


@dataclass(frozen=True)
class CrowdAnalysis:
    faces: list[CrowdFace]
    close_pairs: list[ClosePair]
    model: str
    size: tuple[int, int]  # width, height of the image as displayed

    @property
    def counted(self) -> list[CrowdFace]:
        """The faces the unmasked share counts (:func:`counted_faces`)."""
        return counted_faces(self.faces)

    @property
    def unmasked_ratio(self) -> float | None:
        """The share of counted faces not masked (without a mask or wearing it wrong); None when no face was found."""
        counted = self.counted
        return sum(is_unmasked(face.label) for face in counted) / len(counted) if counted else None

    def as_dict(self) -> dict:
        ratio = self.unmasked_ratio
        return {
            "faces": [face.as_dict() for face in self.faces],
            "total": len(self.faces),
            **{label: sum(face.label == label for face in self.faces) for label in constants.LABELS},
            "unmasked_ratio": None if ratio is None else round(ratio, 4),
            "counted": len(self.counted),
            "close_pairs": [pair.as_dict() for pair in self.close_pairs],
            "model": self.model,
        }


def counted_faces(faces: list, min_score: float = constants.SHARE_MIN_SCORE) -> list:
    """The faces scored at least ``min_score`` by the detector; every face when none is (anything with a ``score``)."""
    sure = [face for face in faces if face.score is not None and face.score >= min_score]
    return sure or list(faces)


@dataclass(frozen=True)
class Camera:
    """The pinhole model's assumptions (see the module docstring)."""

    face_width_m: float = constants.FACE_WIDTH_M
    fov_deg: float = constants.CAMERA_FOV_DEG

    def focal_px(self, image_width: int) -> float:
        return (image_width / 2) / math.tan(math.radians(self.fov_deg) / 2)

    def position(self, box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[float, float, float]:
        """The face's centre in camera coordinates (metres): x right, y down, z away."""
        width, height = size
        focal = self.focal_px(width)
        face_px = max(box[2] - box[0], 1)
        z = focal * self.face_width_m / face_px
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return ((cx - width / 2) * z / focal, (cy - height / 2) * z / focal, z)

    def distance_m(self, box_a, box_b, size: tuple[int, int]) -> float:
        return math.dist(self.position(box_a, size), self.position(box_b, size))


def close_pairs(
    faces: list[CrowdFace], size: tuple[int, int], threshold_m: float = constants.CLOSE_DISTANCE_M, camera: Camera = Camera()
) -> list[ClosePair]:
    """Every pair of faces not masked (:func:`is_unmasked`) estimated closer than ``threshold_m``, nearest first."""
    unmasked = [i for i, face in enumerate(faces) if is_unmasked(face.label)]
    pairs = []
    for position, a in enumerate(unmasked):
        for b in unmasked[position + 1 :]:
            distance = camera.distance_m(faces[a].box, faces[b].box, size)
            if distance < threshold_m:
                pairs.append(ClosePair(a, b, distance))
    return sorted(pairs, key=lambda pair: pair.distance_m)


@dataclass
class CrowdAnalyzer:
    """A detector and a classifier, loaded once; :meth:`analyze` answers for one image."""

    detector: FaceDetector
    predictor: Predictor
    crop_margin: float = constants.FACE_CROP_MARGIN
    close_distance_m: float = constants.CLOSE_DISTANCE_M
    camera: Camera = field(default_factory=Camera)

    def crops(self, image: Image.Image, boxes: list[tuple[int, int, int, int]]) -> list[Image.Image]:
        """What the classifier sees of each box: the framing of its training crops."""
        return [crop_face(image, box, self.crop_margin) for box in boxes]

    def analyze(self, source: ImageSource) -> CrowdAnalysis:
        image = decode_image(source).convert("RGB")
        found = self.detector.detect(image)
        predictions = self.predictor.predict_batch(self.crops(image, [face.box for face in found]))
        faces = [
            CrowdFace(face.box, face.score, p.label, p.with_mask, p.incorrect, p.without_mask, face.landmarks)
            for face, p in zip(found, predictions)
        ]
        return CrowdAnalysis(
            faces=faces,
            close_pairs=close_pairs(faces, image.size, self.close_distance_m, self.camera),
            model=self.predictor.name,
            size=image.size,
        )


def capped_size(size: tuple[int, int], max_side: int | None = None, max_pixels: int | None = None) -> tuple[int, int]:
    """``size`` shrunk, aspect kept, until its longer side is at most ``max_side`` and its area at most ``max_pixels``."""
    width, height = size
    scale = min(1.0, max_side / max(size) if max_side else 1.0, math.sqrt(max_pixels / (width * height)) if max_pixels else 1.0)
    if scale >= 1.0:
        return size
    return max(1, math.floor(width * scale + 1e-9)), max(1, math.floor(height * scale + 1e-9))  # 1e-9: 2048 * (1920 / 2048) is 1920


def annotate(
    source: ImageSource, analysis: CrowdAnalysis, *, max_side: int | None = None, max_pixels: int | None = None
) -> Image.Image:
    """The image as displayed with each face boxed in its label's colour and its p(with_mask).

    With ``max_side`` or ``max_pixels`` the image is shrunk first (:func:`capped_size`) and the boxes
    scaled to it, so lines and labels are sized for the picture answered, not lost in the shrinking.
    """
    image = decode_image(source)
    image = image if image.mode == "RGB" else image.convert("RGB")
    size = capped_size(image.size, max_side, max_pixels)
    sx, sy = size[0] / image.width, size[1] / image.height
    image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0) if size != image.size else image.copy()

    def scaled(box):
        return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))

    faces = [(scaled(face.box), face.label, f"{index}: {face.with_mask:.2f}") for index, face in enumerate(analysis.faces)]
    lines = [(scaled(analysis.faces[pair.a].box), scaled(analysis.faces[pair.b].box)) for pair in analysis.close_pairs]
    return draw_faces(image, faces, lines)


def annotated_photo(source: ImageSource, analysis: CrowdAnalysis, answer_format: str) -> tuple[bytes, str]:
    """POST /detect's annotated answer: the bytes and media type of ``answer_format`` (a key of ANNOTATED_FORMATS), capped."""
    pillow_format, media_type, options = constants.ANNOTATED_FORMATS[answer_format]
    max_pixels = constants.ANNOTATED_PNG_MAX_PIXELS if pillow_format == "PNG" else None
    buffer = io.BytesIO()
    annotate(source, analysis, max_side=constants.ANNOTATED_MAX_SIDE, max_pixels=max_pixels).save(buffer, pillow_format, **options)
    return buffer.getvalue(), media_type


def draw_faces(image: Image.Image, faces: list[tuple[tuple, str | tuple, str]], lines: list[tuple[tuple, tuple]]) -> Image.Image:
    """``image`` with each (box, label or RGB colour, text) boxed in its label's colour, and a red line between each pair of boxes."""
    draw = ImageDraw.Draw(image)
    line = max(1, round(max(image.size) / 400))
    font = ImageFont.load_default(size=max(10, round(max(image.size) / 40)))
    for box, label, text in faces:
        colour = COLOURS[label] if isinstance(label, str) else label
        draw.rectangle(box, outline=colour, width=line)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        x, y = box[0], max(0, box[1] - (bottom - top) - 2 * line)
        draw.rectangle((x, y, x + right - left + 2, y + bottom - top + 2), fill=colour)
        draw.text((x + 1 - left, y + 1 - top), text, fill="white", font=font)
    for a, b in lines:
        draw.line((((a[0] + a[2]) / 2, (a[1] + a[3]) / 2), ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)), fill=COLOURS["without_mask"], width=line)
    return image
