"""Faces over time: each face keeps an id across video frames, and is labelled from all its frames.

A :class:`FaceTracker` takes the faces :class:`~maskdetect.core.crowd.CrowdAnalyzer` finds in each
processed frame and matches them to the tracks of the frames before (norfair's tracker, with a
Kalman filter per face), predicted on the scene rather than the screen: the camera's own motion
(:class:`~maskdetect.core.motion.CameraMotion`) is taken out, so a pan does not lose a face. A face
lost for longer than the tracker keeps it is known again for ``reid_s`` seconds by how it looks
(:func:`appearance`: the colours of the face and the clothes below it), and keeps its id. A track
is a person once it has been seen in a few frames and the detector was sure of it at least once,
unless its face stayed fixed to the scene (:class:`PictureRule`): a poster or a screen, reported
apart as a picture. Its label is the most probable of its frames' calibrated
probabilities (with_mask, incorrect, without_mask) pooled by :class:`Pooling`: by default each frame
weighs by how well it shows the face (:class:`FrameWeighting`: its size, the detector's score, how
frontal and how sharp it is), so a few clear frames outweigh many tiny or blurred ones and one
blurred frame does not flip a label. Close pairs not masked (:func:`~maskdetect.core.crowd.is_unmasked`)
are counted once per encounter, by track pair, with how long they stood close.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from norfair import Detection, Tracker
from norfair.camera_motion import HomographyTransformation
from norfair.distances import Distance
from PIL import Image

from . import constants
from .constants import LABELS
from .crowd import PICTURE_COLOUR, CrowdAnalyzer, draw_faces, is_unmasked
from .motion import CameraMotion, apply
from .video import VideoSource, video_writer


SHARE_COLUMNS = ("start_s", "end_s", "people", "unmasked", "unmasked_share", "close_unmasked_pairs")  # a share_over_time row
SHARPNESS_SIDE = 32  # px: a face is resampled to this square before its sharpness is measured
SHARPNESS_SMOOTHING = 1.0  # px at that side: a Gaussian taken first, so pixel noise does not pass for detail
LOG_FLOOR = 1e-4  # probabilities are floored here before a log, so a frame's 0 is a strong vote, not a veto
MIN_WEIGHT = 1e-3  # the least a frame weighs: every frame counts a little
LOOKS_UPDATE = 0.1  # how much each frame moves a track's remembered appearance


HUE_BINS, SATURATION_BINS = 12, 4  # the colour histograms of a face and of the clothes below it
CLOTHES = (1.5, 0.3, 2.5)  # the clothes' region: this many face widths either side of the face's centre, from this many
# face heights below the face down to this many


def appearance(hsv: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """How a person looks, to know them again after a gap: the colour histograms (hue x saturation) of the face and
    of the clothes below it, each summing to 1, side by side (``hsv``: the frame in OpenCV's HSV, uint8)."""
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    width, height = max(xmax - xmin, 1), max(ymax - ymin, 1)
    centre = (xmin + xmax) // 2
    regions = [(xmin, ymin, xmax, ymax),
               (int(centre - CLOTHES[0] * width), int(ymax + CLOTHES[1] * height), int(centre + CLOTHES[0] * width), int(ymax + CLOTHES[2] * height))]
    histograms = []
    for x0, y0, x1, y1 in regions:
        patch = hsv[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
        if patch.size == 0:
            histograms.append(np.full(HUE_BINS * SATURATION_BINS, np.nan, np.float32))
            continue
        histogram = cv2.calcHist([patch], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]).ravel()
        histograms.append(histogram / max(float(histogram.sum()), 1.0))
    return np.concatenate(histograms).astype(np.float32)


def appearance_distance(a: np.ndarray, b: np.ndarray) -> float:
    """0 for the same colours, 1 for none in common: the Hellinger distance, averaged over the regions both show."""
    parts = []
    for region in range(2):
        x, y = (v[region * HUE_BINS * SATURATION_BINS:(region + 1) * HUE_BINS * SATURATION_BINS] for v in (a, b))
        if not (np.isnan(x).any() or np.isnan(y).any()):
            parts.append(math.sqrt(max(0.0, 1.0 - float(np.sqrt(x * y).sum()))))
    return float(np.mean(parts)) if parts else 1.0


@dataclass(frozen=True)
class PictureRule:
    """When a face is a picture (a poster, a screen, a print on a bag), fixed to the scene, and not a person.

    Each step between processed frames in which a face is seen, the camera alone would carry it along
    the background's motion; what it moves beyond that is its own motion. Both are summed in face
    sizes: ``camera_path`` (the distance the camera carried it) and its own path, a point whose spread
    (the root-mean-square distance from its mean) is ``own_spread``. A face is a picture when the camera
    carried it ``camera_faces`` face sizes or more and its own spread stayed under ``share`` of that, or,
    with a still camera, when it was seen ``still_s`` seconds or more and its own spread stayed under
    ``still_spread``. A person standing still while the camera pans looks the same: a stated limit.
    """

    camera_faces: float = 5.0
    share: float = 0.06
    still_s: float = 10.0
    still_spread: float = 0.1

    def is_picture(self, camera_path: float, own_spread: float, seen_s: float) -> bool:
        return (camera_path >= self.camera_faces and own_spread <= self.share * camera_path) or (
            seen_s >= self.still_s and own_spread <= self.still_spread)


@dataclass(frozen=True)
class FaceQuality:
    """How well one frame shows a face: what its weight in the track's label is made of."""

    size: float  # px: sqrt(width * height) of the detector's box
    score: float  # the detector's confidence
    sharpness: float  # detail at the face's own scale: var(Laplacian of Gaussian) / var(grey) of the box resampled to SHARPNESS_SIDE
    turn: float | None  # how far the head is turned: the nose tip's offset from the eyes' midpoint along the eye line,
    # in eye distances (0 frontal, 0.5 and beyond a near profile); None without landmarks


def face_quality(grey: np.ndarray, box: Sequence[int], score: float, landmarks=None) -> FaceQuality:
    """The :class:`FaceQuality` of the face in ``box`` of a frame (``grey``: the frame as uint8 grey levels)."""
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    size = math.sqrt(max(xmax - xmin, 1) * max(ymax - ymin, 1))
    patch = grey[max(ymin, 0):max(ymax, 0), max(xmin, 0):max(xmax, 0)]
    sharpness = 0.0
    if patch.shape[0] >= 2 and patch.shape[1] >= 2:
        shrink = patch.shape[0] > SHARPNESS_SIDE and patch.shape[1] > SHARPNESS_SIDE
        square = cv2.resize(patch, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        square = square.astype(np.float32)
        contrast = float(square.var())
        if contrast > 1.0:  # a flat patch (under one grey level of spread) has no detail to judge
            smooth = cv2.GaussianBlur(square, (0, 0), SHARPNESS_SMOOTHING)
            sharpness = float(cv2.Laplacian(smooth, cv2.CV_32F, ksize=1)[1:-1, 1:-1].var()) / contrast
    return FaceQuality(size, float(score), sharpness, _turn(landmarks))


def _turn(landmarks) -> float | None:
    if not landmarks or len(landmarks) < 3:
        return None
    (ex1, ey1), (ex2, ey2), (nx, ny) = landmarks[0], landmarks[1], landmarks[2]
    eye = np.array([ex2 - ex1, ey2 - ey1], np.float64)
    distance = float(np.hypot(*eye))
    if distance < 1.0:
        return None
    offset = np.array([nx - (ex1 + ex2) / 2, ny - (ey1 + ey2) / 2], np.float64)
    return abs(float(offset @ eye)) / distance**2


def _half_at(x, half: float):
    """x^2 / (x^2 + half^2): 0 at 0, 1/2 at ``half``, towards 1 beyond; rises with x (a number or an array)."""
    return x * x / (x * x + half * half) if half > 0 else np.ones_like(x, dtype=np.float64)


@dataclass(frozen=True)
class FrameWeighting:
    """How much one frame's probabilities count towards its track's label:

    ``w = score * h(size, size_px) * h(sharpness, sharpness) * h(turn_half, turn)``, with ``h(x, a) = x^2 / (x^2 + a^2)``,

    each factor the share of the face's information a frame keeps: the pixels on the face (which grow
    as size^2 and stop adding once the classifier's input is filled), the detail at the face's scale
    (blur, an upscaled small face), a face turned away (``turn`` is 0 frontal; without landmarks the
    factor is 1), and the detector's confidence (occluded, dark or odd faces score lower). Each
    ``h`` is half at its setting, and a setting of 0 leaves its factor out. ``w`` lies in [MIN_WEIGHT, 1]
    and rises with size and sharpness.
    """

    # Chosen on clips of held-out training faces (`maskdetect evaluate clips --from-training --count 96`; documentation/crowd.md):
    # the best per-track accuracy there, and a Brier score of the tracks' p(with_mask) within 0.0002 of the lowest (flat there).
    size_px: float = 20.0
    sharpness: float = 0.2  # above most frames' sharpness: the weight grows about as sharpness^2 over the range seen
    turn_half: float = 0.1  # the turn at which a face counts half

    def weight(self, quality: FaceQuality) -> float:
        turn = np.nan if quality.turn is None else quality.turn
        return float(self.weights(np.array([quality.size]), np.array([quality.score]), np.array([quality.sharpness]), np.array([turn]))[0])

    def weights(self, size: np.ndarray, score: np.ndarray, sharpness: np.ndarray, turn: np.ndarray) -> np.ndarray:
        """:meth:`weight` of many frames at once: arrays of their FaceQuality fields (a turn of NaN: no landmarks)."""
        turn = np.asarray(turn, np.float64)
        turned = 1.0 - _half_at(np.nan_to_num(turn, nan=0.0), self.turn_half) if self.turn_half > 0 else 1.0
        w = np.clip(score, 0.0, 1.0) * _half_at(np.asarray(size, np.float64), self.size_px) * _half_at(np.asarray(sharpness, np.float64), self.sharpness) * turned
        return np.clip(w, MIN_WEIGHT, 1.0)


POOLING_RULES = ("mean", "weighted", "weighted-log")


@dataclass(frozen=True)
class Pooling:
    """How a track's frames make its probabilities.

    ``mean``: the plain mean of the frames' probabilities; ``weighted``: their mean weighed by
    :class:`FrameWeighting`; ``weighted-log``: the weighted mean of their logs (a geometric pool,
    renormalised), where a frame sure of a class counts more than a hesitant one.
    """

    rule: str = "weighted"
    weighting: FrameWeighting = field(default_factory=FrameWeighting)

    def __post_init__(self):
        if self.rule not in POOLING_RULES:
            raise ValueError(f"pooling rule {self.rule!r} is not one of {', '.join(POOLING_RULES)}")

    @property
    def log(self) -> bool:
        return self.rule == "weighted-log"

    def weight(self, quality: FaceQuality | None) -> float:
        return 1.0 if self.rule == "mean" or quality is None else self.weighting.weight(quality)


@dataclass(frozen=True)
class TrackedFace:
    """One face in one processed frame."""

    id: int  # the track's id, the same in every frame the person is seen
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax in pixels of the frame
    score: float  # the detector's
    label: str  # this frame's classification
    with_mask: float  # this frame's calibrated probabilities
    incorrect: float
    without_mask: float
    track_label: str  # the track's label from its frames so far
    track_with_mask: float  # the track's pooled probabilities from its frames so far
    track_incorrect: float
    track_without_mask: float
    picture: bool = False  # the track so far is a picture fixed to the scene (PictureRule), not a person
    quality: FaceQuality | None = field(default=None, compare=False)  # how well this frame shows the face (not in the JSON)

    @property
    def probabilities(self) -> tuple[float, float, float]:
        return (self.with_mask, self.incorrect, self.without_mask)


@dataclass(frozen=True)
class FrameResult:
    """What one processed frame shows: its tracked faces and the close pairs among those not masked."""

    index: int  # the frame's number in the source, from 0
    t: float  # seconds from the start
    faces: list[TrackedFace] = field(default_factory=list)
    close_pairs: list[tuple[int, int, float]] = field(default_factory=list)  # (id, id, metres), by track labels so far

    def as_dict(self, people: set[int] | None = None) -> dict:
        """The frame as JSON; given the ids of the tracks that are people, each face says whether it is one."""
        return {
            "frame": self.index,
            "t": round(self.t, 3),
            "faces": [
                {"id": f.id, "box": list(f.box), "score": round(f.score, 4), "label": f.label,
                 "with_mask": f.with_mask, "incorrect": f.incorrect, "without_mask": f.without_mask,
                 "track_label": f.track_label, "track_with_mask": round(f.track_with_mask, 4),
                 "track_incorrect": round(f.track_incorrect, 4), "track_without_mask": round(f.track_without_mask, 4),
                 "picture": f.picture}
                | ({} if people is None else {"person": f.id in people})
                for f in self.faces
            ],
            "close_pairs": [{"a": a, "b": b, "distance_m": distance} for a, b, distance in self.close_pairs],
        }


@dataclass
class Track:
    """What is known of one person: when seen, how sure the detector was, and their frames' probabilities pooled.

    The state stays the same size however long the person is seen: the frames' weights summed, and per
    label the weighted sum of its probability (or of its log, for a log pool).
    """

    id: int
    first_t: float
    last_t: float
    frames: int = 0
    best_score: float = 0.0
    log: bool = False  # sums of log-probabilities (Pooling.log), else of probabilities
    weight: float = 0.0
    sums: list[float] = field(default_factory=lambda: [0.0] * len(LABELS))
    in_zone: bool = False  # its face was inside the counted zone in at least one frame (always, without zones)
    camera_path: float = 0.0  # face sizes the camera's motion carried the face (PictureRule)
    own: tuple[float, float] = (0.0, 0.0)  # the face's own path so far, in face sizes: where it is now
    own_steps: int = 0  # running mean and sum of squares of the own path's points (Welford), for its spread
    own_mean: tuple[float, float] = (0.0, 0.0)
    own_squares: float = 0.0
    last_seen: tuple[int, float, float] | None = None  # (processed frame number, x, y of the face's centre) when last seen
    looks: np.ndarray | None = field(default=None, repr=False)  # its appearance, a running mean over its frames

    def seen_looking(self, looks: np.ndarray) -> None:
        if self.looks is None or np.isnan(self.looks).any():
            self.looks = looks.copy()
        elif not np.isnan(looks).any():
            self.looks = (1 - LOOKS_UPDATE) * self.looks + LOOKS_UPDATE * looks

    def moved(self, frame: int, centre: tuple[float, float], size: float, step: np.ndarray | None) -> None:
        """The face seen at ``centre`` in processed frame ``frame``; ``step`` maps the frame before's pixels to this one's."""
        if step is not None and self.last_seen is not None and self.last_seen[0] == frame - 1:
            before = np.array(self.last_seen[1:])
            carried = apply(step, before)[0]
            self.camera_path += float(np.linalg.norm(carried - before)) / size
            own = np.array(self.own) + (np.array(centre) - carried) / size
            self.own = (float(own[0]), float(own[1]))
        self.own_steps += 1
        mean = np.array(self.own_mean)
        shift = np.array(self.own) - mean
        mean = mean + shift / self.own_steps
        self.own_squares += float(shift @ (np.array(self.own) - mean))
        self.own_mean = (float(mean[0]), float(mean[1]))
        self.last_seen = (frame, *centre)

    @property
    def own_spread(self) -> float:
        return math.sqrt(self.own_squares / self.own_steps) if self.own_steps else 0.0

    def add(self, probabilities: Sequence[float], weight: float = 1.0) -> None:
        """One frame's probabilities (in LABELS order), weighing ``weight``."""
        values = np.log(np.clip(np.asarray(probabilities, np.float64), LOG_FLOOR, 1.0)) if self.log else probabilities
        self.sums = [total + weight * float(value) for total, value in zip(self.sums, values)]
        self.weight += weight

    @property
    def probabilities(self) -> tuple[float, ...]:
        """The pooled probabilities of LABELS, summing to 1 (uniform before any frame)."""
        if self.weight <= 0:
            return tuple(1 / len(LABELS) for _ in LABELS)
        means = np.array(self.sums) / self.weight
        pooled = np.exp(means - means.max()) if self.log else np.clip(means, 0.0, None)
        return tuple(float(p) for p in pooled / pooled.sum())

    @property
    def label(self) -> str:
        """The most probable label; a tie goes to the earlier of LABELS, as a frame's does."""
        return LABELS[int(np.argmax(self.probabilities))]

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "label": self.label,
            **{label: round(p, 4) for label, p in zip(LABELS, self.probabilities)},
            "frames": self.frames,
            "first_s": round(self.first_t, 2),
            "last_s": round(self.last_t, 2),
        }


def _box_points(box) -> np.ndarray:
    return np.array([[box[0], box[1]], [box[2], box[3]]], np.float64)


class _PlaceAndLooks(Distance):
    """How far each face is from each track: from its predicted box, in face sizes (:func:`_scaled_distances`), plus
    ``weight`` times how unlike the track it looks (:func:`appearance_distance`), so that two faces crossing keep their own."""

    def __init__(self, tracker: FaceTracker, weight: float):
        self.tracker, self.weight = tracker, weight

    def get_distances(self, objects, candidates) -> np.ndarray:
        if not objects or not candidates:
            return np.full((len(candidates or ()), len(objects)), np.inf)
        found = np.stack([candidate.points.ravel() for candidate in candidates])
        distances = _scaled_distances(found, np.stack([obj.estimate.ravel() for obj in objects]))
        if self.weight > 0:
            looks = [self.tracker.remembered_looks(obj) for obj in objects]
            distances = distances + self.weight * np.array([
                [1.0 if candidate.embedding is None or remembered is None else appearance_distance(candidate.embedding, remembered)
                 for remembered in looks]
                for candidate in candidates])
        return distances


def _centre(box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def _scaled_distances(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """How far each face (rows of xmin, ymin, xmax, ymax) is from each track's predicted box, in face sizes."""
    def centres_and_sizes(boxes):
        sides = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
        return (boxes[:, :2] + boxes[:, 2:]) / 2, np.sqrt(sides.prod(axis=1))

    (found_at, found_size), (expected_at, expected_size) = centres_and_sizes(found), centres_and_sizes(expected)
    apart = np.linalg.norm(found_at[:, None, :] - expected_at[None, :, :], axis=2)
    return apart / np.maximum(found_size[:, None], expected_size[None, :])


class FaceTracker:
    """Tracks the faces of one video; :meth:`update` per processed frame, :meth:`summary` at any time.

    ``fps`` is the source's frame rate and ``stride`` how many frames one processed frame stands
    for. A track lives ``keep_s`` seconds without being seen (a face hidden behind a passer-by
    keeps its id) and becomes a person after ``confirm_frames`` processed frames in which it was
    found, once the detector scored it at least ``min_score`` in one of them. Two people not masked
    closer than ``close_distance_m`` make one encounter until they part for more than ``encounter_gap_s``.
    ``pooling`` makes a track's label from its frames (:class:`Pooling`). ``zone``, given a face's
    centre (x, y) in frame pixels, says whether it is where people are counted: only tracks whose face was
    there in at least one frame are people (default: everywhere). ``motion`` follows the camera's motion;
    ``pictures`` tells pictures from people (None: every face is a person). A track lost for up to
    ``reid_s`` seconds is joined by a new one that looks like it (appearance distance under ``reid_distance``;
    ``reid_s=0``: never).
    """

    def __init__(
        self,
        analyzer: CrowdAnalyzer,
        fps: float,
        stride: int = 1,
        *,
        keep_s: float = 1.0,
        confirm_frames: int = 3,
        max_distance: float = 1.0,
        min_score: float = constants.SHARE_MIN_SCORE,
        close_distance_m: float = constants.CLOSE_DISTANCE_M,
        encounter_gap_s: float = 1.0,
        interval_s: float = 1.0,
        pooling: Pooling = Pooling(),
        zone: Callable[[tuple[float, float]], bool] | None = None,
        motion: bool = True,
        pictures: PictureRule | None = PictureRule(),
        reid_s: float = 5.0,
        reid_distance: float = 0.35,  # benchmarks/reid_distance.py: joins 97 % of the same person, 0.6 % of others
        looks_weight: float = 1.0,
    ):
        self.analyzer, self.fps, self.stride = analyzer, fps, stride
        self.min_score, self.close_distance_m, self.interval_s = min_score, close_distance_m, interval_s
        self.encounter_gap_s, self.pooling, self.zone, self.picture_rule = encounter_gap_s, pooling, zone, pictures
        self._motion = CameraMotion() if motion else None
        self._tracker = Tracker(
            distance_function="iou",  # replaced below: norfair takes custom vectorised distances only as an object
            distance_threshold=max_distance,
            # Counted in processed frames (update passes period=1); norfair needs the delay below the maximum.
            hit_counter_max=max(confirm_frames, round(keep_s * fps / stride)),
            initialization_delay=max(0, confirm_frames - 1),
            reid_distance_function=self._looks_apart if reid_s > 0 else None,
            reid_distance_threshold=reid_distance,
            reid_hit_counter_max=max(1, round(reid_s * fps / stride)) if reid_s > 0 else None,
        )
        self._tracker.distance_function = _PlaceAndLooks(self, looks_weight)
        self._tracker.distance_threshold = max_distance + looks_weight * reid_distance
        self.tracks: dict[int, Track] = {}
        self._close: dict[tuple[int, int], list[list[float]]] = {}  # (id, id) -> their encounters: [start, end, closest metres]
        self._in_view: dict[int, set[int]] = {}  # interval number -> the track ids seen in it
        self._live: set[int] = set()  # tracks norfair may still match or re-identify; the others are settled
        self.frames = 0
        self.last_t = 0.0
        self.interrupted = False  # analyze_video stopped at Ctrl-C

    def update(self, index: int, image: Image.Image) -> FrameResult:
        """Find, classify and track the faces of frame ``index`` (an RGB image)."""
        t = index / self.fps
        analysis = self.analyzer.analyze(image)
        frame = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV) if analysis.faces else None
        detections = [Detection(_box_points(face.box), np.full(2, face.score), data=(index, face), embedding=appearance(hsv, face.box))
                      for face in analysis.faces]
        step, scene = None, None
        if self._motion is not None:  # the tracks are predicted on the scene, so a pan does not lose them
            scene = HomographyTransformation(self._motion.update(grey, [face.box for face in analysis.faces]))
            step = self._motion.step
        matched = [obj for obj in self._tracker.update(detections, coord_transformations=scene) if obj.last_detection.data[0] == index]
        faces = []
        for obj in matched:
            face = obj.last_detection.data[1]
            quality = face_quality(grey, face.box, face.score, face.landmarks)
            track = self.tracks.setdefault(obj.id, Track(obj.id, t, t, log=self.pooling.log))
            track.last_t, track.frames = t, track.frames + 1
            track.best_score = max(track.best_score, face.score)
            track.in_zone = track.in_zone or self.zone is None or self.zone(_centre(face.box))
            track.moved(self.frames, _centre(face.box), quality.size, step)
            track.seen_looking(obj.last_detection.embedding)
            probabilities = (face.with_mask, face.incorrect, face.without_mask)
            track.add(probabilities, self.pooling.weight(quality))
            faces.append(TrackedFace(obj.id, face.box, face.score, face.label, *probabilities, track.label, *track.probabilities,
                                     self.is_picture(track), quality))
            self._in_view.setdefault(int(t // self.interval_s), set()).add(obj.id)
            self._live.add(obj.id)
        faces.sort(key=lambda face: face.id)
        pairs = []
        for position, a in enumerate(faces):
            for b in faces[position + 1 :]:
                distance = self.analyzer.camera.distance_m(a.box, b.box, analysis.size)
                if distance < self.close_distance_m:
                    runs = self._close.setdefault((a.id, b.id), [])
                    if runs and t - runs[-1][1] <= self.encounter_gap_s:
                        runs[-1][1], runs[-1][2] = t, min(runs[-1][2], distance)
                    else:
                        runs.append([t, t, distance])
                    if is_unmasked(a.track_label) and is_unmasked(b.track_label) and not (a.picture or b.picture):
                        pairs.append((a.id, b.id, round(distance, 2)))
        self.frames += 1
        self.last_t = t
        self._settle()
        return FrameResult(index, t, faces, pairs)

    def _settle(self) -> None:
        """Forget what a track norfair has dropped can no longer need, so that a camera watched for hours keeps its state
        to the people, pictures and encounters it reports: a track that never became a face goes with its close frames
        and intervals, and a face's appearance goes (it is never matched again)."""
        tracked = {obj.id for obj in self._tracker.tracked_objects if obj.id is not None}
        for settled in self._live - tracked:
            self._live.discard(settled)
            track = self.tracks[settled]
            track.looks = None
            if track.best_score < self.min_score or not track.in_zone:
                del self.tracks[settled]
                for number in range(int(track.first_t // self.interval_s), int(track.last_t // self.interval_s) + 1):
                    self._in_view.get(number, set()).discard(settled)
            for pair in [pair for pair in self._close if settled in pair and not self._live.intersection(pair)]:
                if not all(self._unmasked_person(self.tracks.get(other)) for other in pair):  # settled: never an encounter
                    del self._close[pair]

    def _unmasked_person(self, track: Track | None) -> bool:
        return (track is not None and track.best_score >= self.min_score and track.in_zone and not self.is_picture(track)
                and is_unmasked(track.label))

    def remembered_looks(self, obj) -> np.ndarray | None:
        track = self.tracks.get(obj.id) if obj.id is not None else None
        return track.looks if track is not None and track.looks is not None else obj.last_detection.embedding

    def _looks_apart(self, candidate, lost) -> float:
        """How unlike a new track (norfair's, still being confirmed) looks to a lost one: under ``reid_distance``, the same person."""
        remembered = self.tracks[lost.id].looks if lost.id in self.tracks else None
        if remembered is None or candidate.last_detection.embedding is None:
            return 1.0
        return appearance_distance(candidate.last_detection.embedding, remembered)

    def is_picture(self, track: Track) -> bool:
        """Whether the track's face stayed fixed to the scene (:class:`PictureRule`): a picture, not a person."""
        return self.picture_rule is not None and self.picture_rule.is_picture(track.camera_path, track.own_spread, track.last_t - track.first_t)

    def faces(self) -> list[Track]:
        """The tracks that are surely faces: confirmed over ``confirm_frames``, and scored ``min_score`` once, inside the zone."""
        return [track for track in self.tracks.values() if track.best_score >= self.min_score and track.in_zone]

    def people(self) -> list[Track]:
        """The faces that are people: not pictures fixed to the scene."""
        return [track for track in self.faces() if not self.is_picture(track)]

    def pictures(self) -> list[Track]:
        """The faces fixed to the scene (posters, screens): reported apart, never counted as people."""
        return [track for track in self.faces() if self.is_picture(track)]

    def encounters(self) -> list[dict]:
        """Each time two people not masked stood close: from the first close frame to the last, gaps up to ``encounter_gap_s`` joined."""
        unmasked = {track.id for track in self.people() if is_unmasked(track.label)}
        found = []
        for (a, b), runs in sorted(self._close.items()):
            if a not in unmasked or b not in unmasked:
                continue
            for start, end, closest in runs:
                found.append({
                    "people": [a, b],
                    "start_s": round(start, 2),
                    "end_s": round(end, 2),
                    "duration_s": round(end - start + self.stride / self.fps, 2),
                    "closest_m": round(closest, 2),
                })
        return sorted(found, key=lambda encounter: encounter["start_s"])

    def share_over_time(self) -> list[dict]:
        """Per ``interval_s``: the people in view, those not masked among them (by their final labels), the share,
        and the close encounters of people not masked going on."""
        people = {track.id: is_unmasked(track.label) for track in self.people()}
        encounters = self.encounters()
        rows = []
        for number in range(int(self.last_t // self.interval_s) + 1 if self.frames else 0):
            ids = self._in_view.get(number, set()) & people.keys()
            unmasked = sum(people[i] for i in ids)
            start, end = number * self.interval_s, (number + 1) * self.interval_s
            rows.append({
                "start_s": round(start, 2),
                "end_s": round(end, 2),
                "people": len(ids),
                "unmasked": unmasked,
                "unmasked_share": round(unmasked / len(ids), 4) if ids else None,
                "close_unmasked_pairs": sum(e["start_s"] < end and e["end_s"] >= start for e in encounters),
            })
        return rows

    def summary(self) -> dict:
        """The whole video so far: unique people (by label, and those not masked), encounters, the share over time."""
        people = self.people()
        unmasked = [track for track in people if is_unmasked(track.label)]
        return {
            "frames": self.frames,
            "seconds": round(self.last_t + self.stride / self.fps, 2) if self.frames else 0.0,
            "fps": round(self.fps, 3),
            "stride": self.stride,
            "unique_people": len(people),
            "unique_unmasked_people": len(unmasked),
            "unmasked_share": round(len(unmasked) / len(people), 4) if people else None,
            "people_by_label": {label: sum(track.label == label for track in people) for label in LABELS},
            "people": [track.as_dict() for track in sorted(people, key=lambda track: track.id)],
            "pictures": [track.as_dict() for track in sorted(self.pictures(), key=lambda track: track.id)],
            "close_encounters": self.encounters(),
            "share_over_time": self.share_over_time(),
            "model": self.analyzer.predictor.name,
        }


def analyze_video(
    source: VideoSource,
    analyzer: CrowdAnalyzer,
    stride: int = 1,
    *,
    out: Path | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    stop_on_interrupt: bool = False,
    **tracking,
) -> FaceTracker:
    """Track the faces of ``source`` on every ``stride``-th frame; ``out`` (.mp4 or .webm) gets every frame annotated.

    ``on_frame`` is called with each processed frame's result; ``tracking`` goes to :class:`FaceTracker`.
    With ``stop_on_interrupt``, Ctrl-C ends the video there (a camera's way to stop) and keeps what was seen.
    """
    tracker = FaceTracker(analyzer, source.fps, stride, **tracking)
    with contextlib.ExitStack() as stack:
        write = stack.enter_context(video_writer(out, source.fps, source.size)) if out is not None else None
        result = FrameResult(0, 0.0)
        try:
            # Only the processed frames are decoded, unless every frame is written.
            for index, frame in source if write is not None else source.frames(stride):
                if index % stride == 0:
                    result = tracker.update(index, frame)
                    if on_frame is not None:
                        on_frame(result)
                if write is not None:
                    write(annotate_frame(frame, result))  # the frames between processed ones keep the last boxes
        except KeyboardInterrupt:
            if not stop_on_interrupt:
                raise
            tracker.interrupted = True
    return tracker


def annotate_frame(frame: Image.Image, result: FrameResult) -> Image.Image:
    """The frame with each tracked face boxed in its track label's colour (grey: a picture), with its id and pooled p(with_mask)."""
    boxes = {face.id: face.box for face in result.faces}
    faces = [(face.box, PICTURE_COLOUR if face.picture else face.track_label, f"#{face.id} {face.track_with_mask:.2f}") for face in result.faces]
    return draw_faces(frame.copy(), faces, [(boxes[a], boxes[b]) for a, b, _ in result.close_pairs])
