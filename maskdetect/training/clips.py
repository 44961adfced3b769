"""Synthetic labelled clips for measuring the face tracker (``maskdetect watch``).

The real street clips are unlabelled, so a clip here is one labelled crowd photo (``scenes-dev``)
filmed by a virtual camera: a crop window, with the frame's aspect ratio, that pans and/or zooms
smoothly over the photo and never leaves it, each window upscaled to the frame size. Every labelled
face moves with the window, so each frame comes with exact truth: which person is where, and their
label. :func:`evaluate_tracking` compares the tracker's per-frame output with that truth.
"""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..core.files import atomic_path, write_csv
from ..core.crowd import CrowdAnalyzer
from ..core.tracking import FrameResult, analyze_video
from ..core.video import open_video
from .scenes import UNMASKED_LABELS, Labelled, match, read_labels

MOTIONS = ("pan", "zoom", "pan-zoom")
TRUTH_COLUMNS = ("frame", "t", "person", "xmin", "ymin", "xmax", "ymax", "label")
CHECKED_LABELS = ("with_mask", "without_mask")  # "incorrect" has no right answer for a with/without classifier

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TruthFace:
    person: int  # the face's row order among its photo's labels: the same in every frame
    box: Box  # xmin, ymin, xmax, ymax in pixels of the frame, clipped to it
    label: str


@dataclass(frozen=True)
class TruthFrame:
    index: int  # from 0
    t: float  # seconds
    faces: list[TruthFace] = field(default_factory=list)


def _ease(s: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero speed at both ends (no jerk when the camera starts or stops)."""
    return (1 - np.cos(np.pi * s)) / 2


def camera_path(
    photo_size: tuple[int, int],
    size: tuple[int, int],
    frames: int,
    motion: str = "pan",
    seed: int = 0,
    faces: list[Box] = (),
) -> np.ndarray:
    """Per frame, the crop window over the photo: rows of (x0, y0, width), height = width * size's aspect.

    The camera eases from one window to another; both lie inside the photo, so every window between
    does too. It pans across the photo, level with the faces (their mean centre), and zooms towards them.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion {motion!r} is not one of {', '.join(MOTIONS)}")
    rng = np.random.default_rng(seed)
    photo_width, photo_height = photo_size
    aspect = size[1] / size[0]
    widest = min(photo_width, photo_height / aspect)  # the largest window of the frame's shape that fits
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in faces] or [(photo_width / 2, photo_height / 2)]
    focus_x, focus_y = np.mean(centres, axis=0)

    def window(width: float, x: float | None = None, jitter: float = 0.1) -> np.ndarray:
        # x: the window's place across the room the photo leaves it (0..1), None: centred on the faces
        height = width * aspect
        x0 = x * (photo_width - width) if x is not None else focus_x - width / 2 + rng.uniform(-jitter, jitter) * width
        y0 = focus_y - height / 2 + rng.uniform(-jitter, jitter) * height
        return np.array([np.clip(x0, 0, photo_width - width), np.clip(y0, 0, photo_height - height), width])

    side = rng.choice([-1, 1])  # pan left-to-right or right-to-left
    start_x, end_x = 0.5 - side * rng.uniform(0.3, 0.5), 0.5 + side * rng.uniform(0.3, 0.5)
    if motion == "pan":
        width = widest * rng.uniform(0.6, 0.7)
        start, end = window(width, start_x), window(width, end_x)
    elif motion == "zoom":
        start, end = window(widest), window(widest * rng.uniform(0.5, 0.6), jitter=0.2)
    else:
        start, end = window(widest * rng.uniform(0.55, 0.7), start_x), window(widest * rng.uniform(0.8, 0.95), end_x)
    if motion != "pan" and rng.uniform() < 0.5:
        start, end = end, start  # zoom out instead of in
    s = _ease(np.linspace(0, 1, frames))[:, None]
    return start + s * (end - start)


def _frame_box(box: Box, window: np.ndarray, size: tuple[int, int]) -> Box | None:
    """The photo box in the frame's pixels, clipped; None when less than half of it is inside the frame."""
    x0, y0, width = window
    scale = size[0] / width
    xmin, xmax = (box[0] - x0) * scale, (box[2] - x0) * scale
    ymin, ymax = (box[1] - y0) * scale, (box[3] - y0) * scale
    left, top, right, bottom = max(xmin, 0), max(ymin, 0), min(xmax, size[0]), min(ymax, size[1])
    if right <= left or bottom <= top or (right - left) * (bottom - top) < 0.5 * (xmax - xmin) * (ymax - ymin):
        return None
    return tuple(int(round(v)) for v in (left, top, right, bottom))


def clip_truth(faces: list[Labelled], path: np.ndarray, size: tuple[int, int], fps: float) -> list[TruthFrame]:
    """Per frame of a camera path, where each labelled face is (faces mostly outside the frame left out)."""
    frames = []
    for index, window in enumerate(path):
        boxes = [(person, _frame_box(face.box, window, size), face.label) for person, face in enumerate(faces)]
        frames.append(TruthFrame(index, index / fps, [TruthFace(p, b, label) for p, b, label in boxes if b is not None]))
    return frames


def make_clip(
    image_path: Path,
    faces: list[Labelled],
    out_path: Path,
    *,
    size: tuple[int, int] = (640, 360),
    seconds: float = 6.0,
    fps: float = 25.0,
    motion: str = "pan",
    seed: int = 0,
) -> list[TruthFrame]:
    """Film the photo with a moving virtual camera (MP4 at ``out_path``); the labelled faces per frame."""
    photo = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if photo is None:
        raise ValueError(f"cannot read the image {image_path}")
    frames = round(seconds * fps)
    path = camera_path((photo.shape[1], photo.shape[0]), size, frames, motion, seed, [f.box for f in faces])
    with atomic_path(Path(out_path)) as temporary:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write an mp4v video at {temporary} (is this build without video writing?)")
        try:
            for x0, y0, width in path:
                scale = size[0] / width
                # pixel centres sit at +0.5, so the window's edges land exactly on the frame's edges
                shift = [[scale, 0, scale * (0.5 - x0) - 0.5], [0, scale, scale * (0.5 - y0) - 0.5]]
                writer.write(cv2.warpAffine(photo, np.float32(shift), size, flags=cv2.INTER_LINEAR))
        finally:
            writer.release()
    return clip_truth(faces, path, size, fps)


def write_truth(frames: list[TruthFrame], path: Path) -> Path:
    """One row per face per frame; a frame without faces is one row with an empty person, so it reads back."""
    rows = []
    for frame in frames:
        for face in frame.faces:
            rows.append(dict(zip(TRUTH_COLUMNS, (frame.index, frame.t, face.person, *face.box, face.label))))
        if not frame.faces:
            rows.append({"frame": frame.index, "t": frame.t})
    return write_csv(rows, TRUTH_COLUMNS, Path(path))


def read_truth(path: Path) -> list[TruthFrame]:
    frames: dict[int, TruthFrame] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            frame = frames.setdefault(int(row["frame"]), TruthFrame(int(row["frame"]), float(row["t"])))
            if row["person"]:
                box = tuple(int(row[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
                frame.faces.append(TruthFace(int(row["person"]), box, row["label"]))
    return [frames[index] for index in sorted(frames)]


def _longer_side(box: Box) -> int:
    return max(box[2] - box[0], box[3] - box[1])


def make_clips(
    images_dir: Path,
    labels_csv: Path,
    out_dir: Path,
    *,
    count: int = 6,
    min_faces: int = 3,
    min_side: int = 24,
    seed: int = 0,
    size: tuple[int, int] = (640, 360),
    seconds: float = 6.0,
    fps: float = 25.0,
    motions: tuple[str, ...] = MOTIONS,
) -> list[tuple[Path, Path]]:
    """``count`` clips ``<out_dir>/<scene>-<motion>.mp4`` with their truth ``.csv``, motions taken in turn.

    Scenes are drawn in a seeded order; a scene is used when at least ``min_faces`` of its labelled
    faces reach ``min_side`` px in the clip's frames (after the upscaling) in at least one frame.
    """
    scenes = read_labels(Path(labels_csv))
    order = np.random.default_rng(seed).permutation(sorted(name for name in scenes if (Path(images_dir) / name).is_file()))
    frames = round(seconds * fps)
    made, candidates = [], iter(order)
    for clip in range(count):
        motion, clip_seed = motions[clip % len(motions)], seed * 1000 + clip
        for name in candidates:
            with Image.open(Path(images_dir) / name) as image:  # reads the header only
                path = camera_path(image.size, size, frames, motion, clip_seed, [f.box for f in scenes[name]])
            truth = clip_truth(scenes[name], path, size, fps)
            if len(_counted_people(truth, min_side)) >= min_faces:
                break
        else:
            raise ValueError(f"only {len(made)} of {count} scenes in {labels_csv} have {min_faces} faces of {min_side}+ px")
        clip_path = Path(out_dir) / f"{Path(name).stem}-{motion}.mp4"
        options = dict(size=size, seconds=seconds, fps=fps, motion=motion, seed=clip_seed)
        truth = make_clip(Path(images_dir) / name, scenes[name], clip_path, **options)
        made.append((clip_path, write_truth(truth, clip_path.with_suffix(".csv"))))
    return made


def _counted_people(truth: list[TruthFrame], min_side: int) -> set[int]:
    return {face.person for frame in truth for face in frame.faces if _longer_side(face.box) >= min_side}


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def evaluate_tracking(truth: list[TruthFrame], results: list[FrameResult], *, min_side: int = 24, min_iou: float = 0.3) -> dict:
    """The tracker's per-frame output against a clip's truth, on the frames both have.

    Per frame, tracked faces are matched to truth faces greedily by IoU (>= ``min_iou``). A truth
    face counts when its longer side is >= ``min_side`` px; smaller ones are neither required nor
    penalised. A person is counted (``people``) when they count in at least one frame.

    * ``recall_per_track``: mean over people of matched frames / counted frames; ``tracked_people``:
      people matched in at least half of them; ``frame_recall``: all matched / all counted (person, frame)s.
    * ``id_switches_per_track``: per person, how often the matched track id changes from one
      matched frame to the next, averaged over people (``id_switches``: the total).
    * ``per_frame_label_accuracy``: on matched (person, frame)s labelled with_mask or without_mask,
      the share whose frame label is right; ``per_frame_label_accuracy_by_person`` the same averaged
      per person first (each person weighs the same, as in the per-track measure).
      ``per_track_label_accuracy``: per such person, is the final ``track_label`` (at its last
      appearance) of the track id matched to them most often right.
    * ``unique_people_estimated``: the distinct track ids, less those the truth cannot count: ids that
      never matched a counted person and either matched a too-small person in at least half their
      frames or never had a box of ``min_side`` px (``ignored_tracks``). ``false_tracks``: counted ids
      that never matched any truth face (scenes-dev labels are not exhaustive: some of these follow real,
      unlabelled background faces). ``unique_people_error``: |estimated - people| / people.
    * ``tracks_per_person``: distinct track ids matched to each matched person (1: counted once);
      ``tracks_on_people``: the ids that matched a counted person at least once, and
      ``labelled_people_error``: |tracks_on_people - people| / people, the count error on the labelled faces.
    * ``unmasked_people`` (labelled without_mask or incorrect) against ``unmasked_people_estimated``
      (counted ids whose final track label is without_mask).
    """
    by_index = {r.index: r for r in results}
    frames = [f for f in truth if f.index in by_index]
    counted = _counted_people(frames, min_side)
    labels = {face.person: face.label for frame in frames for face in frame.faces}
    visible, found = Counter(), Counter()
    ids_of = defaultdict(list)  # person -> matched track id per matched counted frame
    labels_checked = labels_right = 0
    checked_of, right_of = Counter(), Counter()  # per person
    appearances, on_people, on_small, on_any, large = Counter(), Counter(), Counter(), Counter(), set()
    for frame in frames:
        tracked = by_index[frame.index].faces
        pairs = dict(match([f.box for f in tracked], [f.box for f in frame.faces], min_iou))
        for i, face in enumerate(tracked):
            appearances[face.id] += 1
            if _longer_side(face.box) >= min_side:
                large.add(face.id)
            if i in pairs:
                on_any[face.id] += 1
                person = frame.faces[pairs[i]].person
                (on_people if person in counted else on_small)[face.id] += 1
        matched_to = {frame.faces[j].person: tracked[i] for i, j in pairs.items()}
        for person in (f.person for f in frame.faces if _longer_side(f.box) >= min_side):
            visible[person] += 1
            if person in matched_to:
                found[person] += 1
                ids_of[person].append(matched_to[person].id)
                if labels[person] in CHECKED_LABELS:
                    right = matched_to[person].label == labels[person]
                    labels_checked, labels_right = labels_checked + 1, labels_right + right
                    checked_of[person], right_of[person] = checked_of[person] + 1, right_of[person] + right
    final_label = {face.id: face.track_label for r in sorted(results, key=lambda r: r.index) for face in r.faces}
    switches = {p: sum(a != b for a, b in zip(ids_of[p], ids_of[p][1:])) for p in counted}
    main_track = {p: Counter(ids_of[p]).most_common(1)[0][0] for p in counted if ids_of[p]}
    judged = [p for p in main_track if labels[p] in CHECKED_LABELS]
    ignored = {i for i in appearances if not on_people[i] and (on_small[i] >= appearances[i] / 2 or i not in large)}
    estimated = set(appearances) - ignored
    return {
        "frames": len(frames),
        "truth_frames": len(truth),
        "people": len(counted),
        "recall_per_track": _ratio(sum(found[p] / visible[p] for p in counted), len(counted)),
        "tracked_people": sum(found[p] >= visible[p] / 2 for p in counted),
        "frame_recall": _ratio(sum(found.values()), sum(visible.values())),
        "id_switches": sum(switches.values()),
        "id_switches_per_track": _ratio(sum(switches.values()), len(counted)),
        "per_frame_label_accuracy": _ratio(labels_right, labels_checked),
        "labelled_frames": labels_checked,
        "per_frame_label_accuracy_by_person": _ratio(sum(right_of[p] / checked_of[p] for p in judged if checked_of[p]), sum(1 for p in judged if checked_of[p])),
        "per_track_label_accuracy": _ratio(sum(final_label[main_track[p]] == labels[p] for p in judged), len(judged)),
        "labelled_tracks": len(judged),
        "track_ids": len(appearances),
        "ignored_tracks": len(ignored),
        "false_tracks": sum(not on_any[i] for i in estimated),
        "unique_people_estimated": len(estimated),
        "unique_people_error": _ratio(abs(len(estimated) - len(counted)), len(counted)),
        "tracks_per_person": _ratio(sum(len(set(ids_of[p])) for p in counted if ids_of[p]), sum(1 for p in counted if ids_of[p])),
        "tracks_on_people": sum(1 for i in appearances if on_people[i]),
        "labelled_people_error": _ratio(abs(sum(1 for i in appearances if on_people[i]) - len(counted)), len(counted)),
        "unmasked_people": sum(labels[p] in UNMASKED_LABELS for p in counted),
        "unmasked_people_estimated": sum(final_label[i] == "without_mask" for i in estimated),
    }


def evaluate_clips(clips: list[tuple[Path, Path]], analyzer: CrowdAnalyzer, *, stride: int = 1, progress: bool = True, **tracking) -> dict:
    """:func:`evaluate_tracking` of the tracker on each (clip, truth) pair, with the measures' means over the clips."""
    per_clip = {}
    for clip, truth_path in tqdm(clips, desc="clips", disable=not progress):
        results = []
        started = time.perf_counter()
        tracker = analyze_video(open_video(clip), analyzer, stride, on_frame=results.append, **tracking)
        report = evaluate_tracking(read_truth(truth_path), results)
        per_clip[clip.name] = {**report, "frames_per_second": round(tracker.frames * stride / (time.perf_counter() - started), 1)}
    means = {}
    for key in ("recall_per_track", "id_switches_per_track", "per_frame_label_accuracy", "per_frame_label_accuracy_by_person",
                "per_track_label_accuracy", "tracks_per_person", "unique_people_error", "labelled_people_error"):
        values = [report[key] for report in per_clip.values() if report[key] is not None]
        means[key] = round(sum(values) / len(values), 4) if values else None
    totals = {key: sum(report[key] for report in per_clip.values())
              for key in ("people", "tracks_on_people", "unique_people_estimated", "false_tracks", "id_switches")}
    return {"clips": len(per_clip), "mean": means, "total": totals, "per_clip": per_clip}
