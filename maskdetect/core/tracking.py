"""Faces over time: each face keeps an id across video frames, and is labelled from all its frames.

A :class:`FaceTracker` takes the faces :class:`~maskdetect.core.crowd.CrowdAnalyzer` finds in each
processed frame and matches them to the tracks of the frames before (norfair's tracker, with a
Kalman filter per face). A track is a person once it has been seen in a few frames and the
detector was sure of it at least once; its label comes from the mean calibrated p(with_mask)
over its frames, so one blurred frame does not flip it. Close unmasked pairs are counted once per
encounter, by track pair, with how long they stood close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from norfair import Detection, Tracker
from norfair.distances import VectorizedDistance
from PIL import Image

from . import constants
from .crowd import UNMASKED, CrowdAnalyzer, draw_faces
from .video import VideoSource, video_writer


SHARE_COLUMNS = ("start_s", "end_s", "people", "unmasked", "unmasked_share", "close_unmasked_pairs")  # a share_over_time row


@dataclass(frozen=True)
class TrackedFace:
    """One face in one processed frame."""

    id: int  # the track's id, the same in every frame the person is seen
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax in pixels of the frame
    score: float  # the detector's
    label: str  # this frame's classification
    with_mask: float  # this frame's calibrated p(with_mask)
    track_label: str  # the track's label from its frames so far
    track_with_mask: float  # the mean p(with_mask) over its frames so far


@dataclass(frozen=True)
class FrameResult:
    """What one processed frame shows: its tracked faces and the close pairs among the unmasked."""

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
                {"id": f.id, "box": list(f.box), "score": round(f.score, 4), "label": f.label, "with_mask": f.with_mask,
                 "track_label": f.track_label, "track_with_mask": round(f.track_with_mask, 4)}
                | ({} if people is None else {"person": f.id in people})
                for f in self.faces
            ],
            "close_pairs": [{"a": a, "b": b, "distance_m": distance} for a, b, distance in self.close_pairs],
        }


@dataclass
class Track:
    """What is known of one person: when seen, how sure the detector was, and their p(with_mask) per frame."""

    id: int
    first_t: float
    last_t: float
    frames: int = 0
    best_score: float = 0.0
    with_mask_sum: float = 0.0

    @property
    def with_mask(self) -> float:
        return self.with_mask_sum / self.frames

    def label(self, threshold: float) -> str:
        return constants.CLASSES[0] if self.with_mask >= threshold else UNMASKED

    def as_dict(self, threshold: float) -> dict:
        return {
            "id": self.id,
            "label": self.label(threshold),
            "with_mask": round(self.with_mask, 4),
            "frames": self.frames,
            "first_s": round(self.first_t, 2),
            "last_s": round(self.last_t, 2),
        }


def _box_points(box) -> np.ndarray:
    return np.array([[box[0], box[1]], [box[2], box[3]]], np.float64)


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
    found, once the detector scored it at least ``min_score`` in one of them. Two unmasked people
    closer than ``close_distance_m`` make one encounter until they part for more than ``encounter_gap_s``.
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
    ):
        self.analyzer, self.fps, self.stride = analyzer, fps, stride
        self.min_score, self.close_distance_m, self.interval_s = min_score, close_distance_m, interval_s
        self.encounter_gap_s = encounter_gap_s
        self.threshold = analyzer.predictor.threshold
        self._tracker = Tracker(
            distance_function="iou",  # replaced below: norfair takes custom vectorised distances only as an object
            distance_threshold=max_distance,
            hit_counter_max=max(1, round(keep_s * fps / stride)),
            initialization_delay=max(0, confirm_frames - 1),
        )
        self._tracker.distance_function = VectorizedDistance(_scaled_distances)
        self.tracks: dict[int, Track] = {}
        self._close: dict[tuple[int, int], list[tuple[float, float]]] = {}  # (id, id) -> [(t, metres)] for every close frame
        self._in_view: dict[int, set[int]] = {}  # interval number -> the track ids seen in it
        self.frames = 0
        self.last_t = 0.0
        self.interrupted = False  # analyze_video stopped at Ctrl-C

    def update(self, index: int, image: Image.Image) -> FrameResult:
        """Find, classify and track the faces of frame ``index`` (an RGB image)."""
        t = index / self.fps
        analysis = self.analyzer.analyze(image)
        detections = [Detection(_box_points(face.box), np.full(2, face.score), data=(index, face)) for face in analysis.faces]
        matched = [obj for obj in self._tracker.update(detections, period=self.stride) if obj.last_detection.data[0] == index]
        faces = []
        for obj in matched:
            face = obj.last_detection.data[1]
            track = self.tracks.setdefault(obj.id, Track(obj.id, t, t))
            track.last_t, track.frames = t, track.frames + 1
            track.best_score = max(track.best_score, face.score)
            track.with_mask_sum += face.with_mask
            faces.append(TrackedFace(obj.id, face.box, face.score, face.label, face.with_mask, track.label(self.threshold), track.with_mask))
            self._in_view.setdefault(int(t // self.interval_s), set()).add(obj.id)
        faces.sort(key=lambda face: face.id)
        pairs = []
        for position, a in enumerate(faces):
            for b in faces[position + 1 :]:
                distance = self.analyzer.camera.distance_m(a.box, b.box, analysis.size)
                if distance < self.close_distance_m:
                    self._close.setdefault((a.id, b.id), []).append((t, distance))
                    if a.track_label == b.track_label == UNMASKED:
                        pairs.append((a.id, b.id, round(distance, 2)))
        self.frames += 1
        self.last_t = t
        return FrameResult(index, t, faces, pairs)

    def people(self) -> list[Track]:
        """The tracks that are people: once surely a face (every track was confirmed over ``confirm_frames`` first)."""
        return [track for track in self.tracks.values() if track.best_score >= self.min_score]

    def encounters(self) -> list[dict]:
        """Each time two unmasked people stood close: from the first close frame to the last, gaps up to ``encounter_gap_s`` joined."""
        unmasked = {track.id for track in self.people() if track.label(self.threshold) == UNMASKED}
        found = []
        for (a, b), moments in sorted(self._close.items()):
            if a not in unmasked or b not in unmasked:
                continue
            runs: list[list[tuple[float, float]]] = []
            for moment in moments:
                if runs and moment[0] - runs[-1][-1][0] <= self.encounter_gap_s:
                    runs[-1].append(moment)
                else:
                    runs.append([moment])
            for run in runs:
                found.append({
                    "people": [a, b],
                    "start_s": round(run[0][0], 2),
                    "end_s": round(run[-1][0], 2),
                    "duration_s": round(run[-1][0] - run[0][0] + self.stride / self.fps, 2),
                    "closest_m": round(min(m for _, m in run), 2),
                })
        return sorted(found, key=lambda encounter: encounter["start_s"])

    def share_over_time(self) -> list[dict]:
        """Per ``interval_s``: the people in view, the unmasked among them (by their final labels), the share,
        and the close encounters of unmasked people going on."""
        people = {track.id: track.label(self.threshold) for track in self.people()}
        encounters = self.encounters()
        rows = []
        for number in range(int(self.last_t // self.interval_s) + 1 if self.frames else 0):
            ids = self._in_view.get(number, set()) & people.keys()
            unmasked = sum(people[i] == UNMASKED for i in ids)
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
        """The whole video so far: unique people, unique unmasked people, encounters, the share over time."""
        people = self.people()
        unmasked = [track for track in people if track.label(self.threshold) == UNMASKED]
        return {
            "frames": self.frames,
            "seconds": round(self.last_t + self.stride / self.fps, 2) if self.frames else 0.0,
            "fps": round(self.fps, 3),
            "stride": self.stride,
            "unique_people": len(people),
            "unique_unmasked_people": len(unmasked),
            "unmasked_share": round(len(unmasked) / len(people), 4) if people else None,
            "people": [track.as_dict(self.threshold) for track in sorted(people, key=lambda track: track.id)],
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
            for index, frame in source:
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
    """The frame with each tracked face boxed in its track's colour, its id and mean p(with_mask)."""
    boxes = {face.id: face.box for face in result.faces}
    faces = [(face.box, face.track_label, f"#{face.id} {face.track_with_mask:.2f}") for face in result.faces]
    return draw_faces(frame.copy(), faces, [(boxes[a], boxes[b]) for a, b, _ in result.close_pairs])
