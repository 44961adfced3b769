"""Synthetic labelled clips for measuring the face tracker (``maskdetect watch``).

The real street clips are unlabelled, so a clip here is one labelled crowd photo (``scenes-dev``)
filmed by a virtual camera: a crop window, with the frame's aspect ratio, that pans and/or zooms
smoothly over the photo and never leaves it, each window upscaled to the frame size. Every labelled
face moves with the window, so each frame comes with exact truth: which person is where, and their
label. :func:`evaluate_tracking` compares the tracker's per-frame output with that truth.

The photo is a labelled scene (``scenes-dev``, for evaluation) or one composed of held-out training
faces (:mod:`maskdetect.training.composites`), whose clips a :class:`Degradation` damages frame by
frame; :func:`compare_pooling` and :func:`search_pooling` relabel the same tracks by each way of
pooling a track's frames (:class:`~maskdetect.core.tracking.Pooling`), and the rule is chosen on the
training-source clips only.
"""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..core.constants import LABELS, MASKED
from ..core.crowd import CrowdAnalyzer, is_unmasked
from ..core.files import atomic_path, write_csv
from ..core.tracking import LOG_FLOOR, POOLING_RULES, FaceQuality, FrameResult, FrameWeighting, Pooling, Track, analyze_video
from ..core.video import open_video
from .scenes import UNMASKED_LABELS, Labelled, match, read_labels

MOTIONS = ("pan", "zoom", "pan-zoom")
TRUTH_COLUMNS = ("frame", "t", "person", "xmin", "ymin", "xmax", "ymax", "label")
CHECKED_LABELS = LABELS  # every labelled face is judged masked or not; the three-way measures also by its exact label

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


# Per-frame damage, as real video has it: the kinds that strike one face, and those that strike the whole frame.
FACE_DAMAGE = ("blur", "motion", "lowres", "noise", "dark", "occlude")
FRAME_DAMAGE = ("blur", "noise", "dark")


@dataclass(frozen=True)
class Episode:
    kind: str  # one of FACE_DAMAGE (FRAME_DAMAGE for the whole frame)
    start: int  # the first frame
    end: int  # the frame after the last
    strength: float  # 0..1 at its height
    angle: float = 0.0  # motion blur's direction (radians); an occluder's side (0-3)


@dataclass(frozen=True)
class Degradation:
    """Episodes of damage that come and go over a clip, so each person has clear frames and poor ones.

    Each person meets episodes at ``face_rate`` per second (a kind of FACE_DAMAGE each: defocus or
    motion blur, a coarser sampling as of a far or compressed face, sensor noise, a shadow, something
    in front of part of the face), the whole frame at ``frame_rate`` (camera shake, low light). An
    episode lasts ``seconds`` (a range), rises and falls smoothly, and is ``strength`` strong at its
    height (a range, as a share of the worst: see :func:`damage`).
    """

    face_rate: float = 0.7
    frame_rate: float = 0.2
    seconds: tuple[float, float] = (0.3, 1.6)
    strength: tuple[float, float] = (0.3, 1.0)

    def episodes(self, people: int, frames: int, fps: float, seed: int) -> tuple[list[list[Episode]], list[Episode]]:
        """Per person, and for the whole frame, their episodes over ``frames`` frames (seeded)."""
        rng = np.random.default_rng([seed, 7])

        def draw(rate: float, kinds: tuple[str, ...]) -> list[Episode]:
            found = []
            for _ in range(rng.poisson(rate * frames / fps)):
                length = max(2, round(rng.uniform(*self.seconds) * fps))
                start = int(rng.integers(-length // 2, frames))
                kind = str(rng.choice(kinds))
                angle = float(rng.uniform(0, np.pi)) if kind != "occlude" else float(rng.integers(0, 4))
                found.append(Episode(kind, start, start + length, float(rng.uniform(*self.strength)), angle))
            return found

        return [draw(self.face_rate, FACE_DAMAGE) for _ in range(people)], draw(self.frame_rate, FRAME_DAMAGE)


def _level(episode: Episode, frame: int) -> float:
    """How strong the episode is at ``frame``: rises and falls as a sine arch, 0 outside it."""
    if not episode.start <= frame < episode.end:
        return 0.0
    return episode.strength * float(np.sin(np.pi * (frame - episode.start + 0.5) / (episode.end - episode.start)))


def damage(image: np.ndarray, kind: str, level: float, side: float, angle: float = 0.0, seed=0) -> np.ndarray:
    """``image`` (BGR float32) damaged ``level`` (0..1) of the worst, for a face ``side`` px across.

    blur: Gaussian, sigma up to 15 % of the face; motion: a streak up to 40 % of it at ``angle``;
    lowres: sampled at down to 12 % of its size; noise: up to 32 grey levels; dark: down to 20 % of
    the light, with the noise a darker sensor shows; occlude: up to 60 % of the face hidden from the
    side ``angle`` (0-3) by a flat, blurred patch. ``seed`` (an int or a list of them) draws the noise and the patch's colour.
    """
    if level <= 0:
        return image
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), max(0.3, 0.15 * level * side))
    if kind == "motion":
        length = max(1, int(round(0.4 * level * side)))
        kernel = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
        dx, dy = np.cos(angle) * length, np.sin(angle) * length
        cv2.line(kernel, (int(round(length - dx)), int(round(length - dy))), (int(round(length + dx)), int(round(length + dy))), 1.0, 1)
        return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    if kind == "lowres":
        factor = 1.0 - 0.88 * level
        small = (max(2, round(width * factor)), max(2, round(height * factor)))
        return cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (width, height), interpolation=cv2.INTER_LINEAR)
    if kind == "noise":
        return image + rng.normal(0, 32 * level, image.shape).astype(np.float32)
    if kind == "dark":
        darker = image * (1.0 - 0.8 * level)
        return darker + rng.normal(0, 6 * level, image.shape).astype(np.float32)
    if kind == "occlude":
        share = 0.6 * level
        colour = rng.uniform(20, 220, 3).astype(np.float32)
        mask = np.zeros((height, width), np.float32)
        across, down = max(1, round(width * share)), max(1, round(height * share))
        [mask[:, :across], mask[:, width - across:], mask[height - down:], mask[:down]][int(angle) % 4][...] = 1.0
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.03 * side))[..., None]  # a soft edge, the rest of the face untouched
        return image * (1 - mask) + colour * mask
    raise ValueError(f"unknown damage {kind!r}")


def _feather(height: int, width: int, edge: float) -> np.ndarray:
    """A (height, width, 1) blend mask: 1 inside, falling smoothly to 0 over ``edge`` px at the borders."""
    ys = np.minimum(np.arange(height), np.arange(height)[::-1])[:, None] + 0.5
    xs = np.minimum(np.arange(width), np.arange(width)[::-1])[None, :] + 0.5
    return np.clip(np.minimum(ys, xs) / max(edge, 1.0), 0.0, 1.0)[..., None].astype(np.float32)


def degrade_frame(frame: np.ndarray, truth: TruthFrame, people: list[list[Episode]], whole: list[Episode], seed: int) -> np.ndarray:
    """One frame (BGR uint8) with the episodes at work in it: on each truth face's region, then on the whole frame."""
    image = frame.astype(np.float32)
    height, width = image.shape[:2]
    for face in truth.faces:
        active = [(number, e, _level(e, truth.index)) for number, e in enumerate(people[face.person])]
        active = [(number, e, level) for number, e, level in active if level > 0]
        if not active:
            continue
        xmin, ymin, xmax, ymax = face.box
        side = max(xmax - xmin, ymax - ymin)
        grow = 0.25 * side
        x0, y0 = max(0, int(xmin - grow)), max(0, int(ymin - grow))
        x1, y1 = min(width, int(xmax + grow)), min(height, int(ymax + grow))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = image[y0:y1, x0:x1]
        damaged = region
        for number, episode, level in active:  # an occluder keeps its colour through its episode; noise changes every frame
            draw = [seed, face.person, number] + ([] if episode.kind == "occlude" else [truth.index])
            damaged = damage(damaged, episode.kind, level, side, episode.angle, seed=draw)
        blend = _feather(y1 - y0, x1 - x0, grow)
        image[y0:y1, x0:x1] = blend * damaged + (1 - blend) * region
    for number, episode in enumerate(whole):
        level = _level(episode, truth.index)
        if level > 0:
            image = damage(image, episode.kind, level * 0.5, min(width, height) / 4, episode.angle, seed=[seed, 1 << 20, number, truth.index])
    return np.clip(image, 0, 255).astype(np.uint8)


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
    degradation: Degradation | None = None,
) -> list[TruthFrame]:
    """Film the photo with a moving virtual camera (MP4 at ``out_path``); the labelled faces per frame.

    With ``degradation``, its episodes damage the faces and the frames as they come and go (seeded by ``seed``).
    """
    photo = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if photo is None:
        raise ValueError(f"cannot read the image {image_path}")
    frames = round(seconds * fps)
    path = camera_path((photo.shape[1], photo.shape[0]), size, frames, motion, seed, [f.box for f in faces])
    truth = clip_truth(faces, path, size, fps)
    people, whole = degradation.episodes(len(faces), frames, fps, seed) if degradation is not None else ([], [])
    with atomic_path(Path(out_path)) as temporary:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write an mp4v video at {temporary} (is this build without video writing?)")
        try:
            for (x0, y0, width), frame_truth in zip(path, truth):
                scale = size[0] / width
                # pixel centres sit at +0.5, so the window's edges land exactly on the frame's edges
                shift = [[scale, 0, scale * (0.5 - x0) - 0.5], [0, scale, scale * (0.5 - y0) - 0.5]]
                frame = cv2.warpAffine(photo, np.float32(shift), size, flags=cv2.INTER_LINEAR)
                if degradation is not None:
                    frame = degrade_frame(frame, frame_truth, people, whole, seed)
                writer.write(frame)
        finally:
            writer.release()
    return truth


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
    degradation: Degradation | None = None,
) -> list[tuple[Path, Path]]:
    """``count`` clips ``<out_dir>/<scene>-<motion>.mp4`` with their truth ``.csv``, motions taken in turn.

    Scenes are drawn in a seeded order; a scene is used when at least ``min_faces`` of its labelled
    faces reach ``min_side`` px in the clip's frames (after the upscaling) in at least one frame.
    ``degradation`` damages the faces frame by frame (:func:`make_clip`).
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
        options = dict(size=size, seconds=seconds, fps=fps, motion=motion, seed=clip_seed, degradation=degradation)
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
    * ``per_frame_label_accuracy``: on matched (person, frame)s, the share whose frame label is on the
      right side of masked (with_mask) or not masked (incorrect, without_mask), as
      ``scenes.scene_metrics`` judges ``label_accuracy``; ``per_frame_label_accuracy_by_person`` the
      same averaged per person first (each person weighs the same, as in the per-track measure).
      ``per_track_label_accuracy``: per person, is the final ``track_label`` (at its last appearance)
      of the track id matched to them most often on the right side. ``..._3way``: the same, right only
      when the exact label is; ``per_track_masked_brier``: the mean squared error of that track's
      pooled p(with_mask) against masked (1) or not (0).
    * ``unique_people_estimated``: the distinct track ids, less those the truth cannot count: ids that
      never matched a counted person and either matched a too-small person in at least half their
      frames or never had a box of ``min_side`` px (``ignored_tracks``). ``false_tracks``: counted ids
      that never matched any truth face (scenes-dev labels are not exhaustive: some of these follow real,
      unlabelled background faces). ``unique_people_error``: |estimated - people| / people.
    * ``tracks_per_person``: distinct track ids matched to each matched person (1: counted once);
      ``tracks_on_people``: the ids that matched a counted person at least once, and
      ``labelled_people_error``: |tracks_on_people - people| / people, the count error on the labelled faces.
    * ``unmasked_people`` (labelled without_mask or incorrect) against ``unmasked_people_estimated``
      (counted ids whose final track label is not masked: incorrect or without_mask).
    """
    by_index = {r.index: r for r in results}
    frames = [f for f in truth if f.index in by_index]
    counted = _counted_people(frames, min_side)
    labels = {face.person: face.label for frame in frames for face in frame.faces}
    visible, found = Counter(), Counter()
    ids_of = defaultdict(list)  # person -> matched track id per matched counted frame
    labels_checked = labels_right = 0
    checked_of, right_of, exact_of = Counter(), Counter(), Counter()  # per person
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
                    said = matched_to[person].label
                    right = is_unmasked(said) == is_unmasked(labels[person])
                    labels_checked, labels_right = labels_checked + 1, labels_right + right
                    checked_of[person], right_of[person] = checked_of[person] + 1, right_of[person] + right
                    exact_of[person] += said == labels[person]
    last = {face.id: face for r in sorted(results, key=lambda r: r.index) for face in r.faces}  # each track at its last frame
    final_label = {i: face.track_label for i, face in last.items()}
    switches = {p: sum(a != b for a, b in zip(ids_of[p], ids_of[p][1:])) for p in counted}
    main_track = {p: Counter(ids_of[p]).most_common(1)[0][0] for p in counted if ids_of[p]}
    judged = [p for p in main_track if labels[p] in CHECKED_LABELS]
    seen = [p for p in judged if checked_of[p]]
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
        "per_frame_label_accuracy_by_person": _ratio(sum(right_of[p] / checked_of[p] for p in seen), len(seen)),
        "per_track_label_accuracy": _ratio(sum(is_unmasked(final_label[main_track[p]]) == is_unmasked(labels[p]) for p in judged), len(judged)),
        "per_frame_label_accuracy_by_person_3way": _ratio(sum(exact_of[p] / checked_of[p] for p in seen), len(seen)),
        "per_track_label_accuracy_3way": _ratio(sum(final_label[main_track[p]] == labels[p] for p in judged), len(judged)),
        "per_track_masked_brier": _ratio(sum((last[main_track[p]].track_with_mask - (labels[p] == MASKED)) ** 2 for p in judged), len(judged)),
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
        "unmasked_people_estimated": sum(is_unmasked(final_label[i]) for i in estimated),
    }


def repool(results: list[FrameResult], pooling: Pooling) -> list[FrameResult]:
    """The tracker's frames with each track's label made again from its frames by ``pooling``: how
    another rule would have labelled the same tracks (ids, boxes, frame labels and close pairs as they were)."""
    tracks: dict[int, Track] = {}
    redone = []
    for result in sorted(results, key=lambda r: r.index):
        faces = []
        for face in result.faces:
            track = tracks.setdefault(face.id, Track(face.id, result.t, result.t, log=pooling.log))
            track.add(face.probabilities, pooling.weight(face.quality))
            pooled = dict(zip(("track_with_mask", "track_incorrect", "track_without_mask"), track.probabilities))
            faces.append(replace(face, track_label=track.label, **pooled))
        redone.append(replace(result, faces=faces))
    return redone


LABEL_MEASURES = (
    "per_frame_label_accuracy_by_person",
    "per_track_label_accuracy",
    "per_frame_label_accuracy_by_person_3way",
    "per_track_label_accuracy_3way",
    "per_track_masked_brier",
)
MEAN_MEASURES = ("recall_per_track", "id_switches_per_track", "per_frame_label_accuracy", *LABEL_MEASURES,
                 "tracks_per_person", "unique_people_error", "labelled_people_error")

Run = tuple[list[TruthFrame], list[FrameResult]]  # a clip's truth and the tracker's frames


def _means(reports: list[dict], keys: tuple[str, ...]) -> dict:
    means = {}
    for key in keys:
        values = [report[key] for report in reports if report[key] is not None]
        means[key] = round(sum(values) / len(values), 4) if values else None
    return means


def compare_pooling(runs: list[Run], poolings: dict[str, Pooling]) -> dict[str, dict]:
    """Per named pooling, the label measures of :func:`evaluate_tracking` (means over the clips) with every
    track labelled by it; the frames' own labels, and so the per-frame measures, are the same for all."""
    return {name: _means([evaluate_tracking(truth, repool(results, pooling)) for truth, results in runs], LABEL_MEASURES)
            for name, pooling in poolings.items()}


def rule_poolings(pooling: Pooling = Pooling()) -> dict[str, Pooling]:
    """Each rule of POOLING_RULES, the weighted ones with ``pooling``'s weighting."""
    return {rule: replace(pooling, rule=rule) for rule in POOLING_RULES}


def track_clips(clips: list[tuple[Path, Path]], analyzer: CrowdAnalyzer, *, stride: int = 1, progress: bool = True,
                **tracking) -> tuple[list[Run], dict[str, float]]:
    """The tracker over each (clip, truth) pair: the runs, and the frames per second of each clip."""
    runs, speeds = [], {}
    for clip, truth_path in tqdm(clips, desc="clips", disable=not progress):
        results = []
        started = time.perf_counter()
        tracker = analyze_video(open_video(clip), analyzer, stride, on_frame=results.append, **tracking)
        speeds[clip.name] = round(tracker.frames * stride / (time.perf_counter() - started), 1)
        runs.append((read_truth(truth_path), results))
    return runs, speeds


def evaluate_clips(clips: list[tuple[Path, Path]], analyzer: CrowdAnalyzer, *, stride: int = 1, progress: bool = True, **tracking) -> dict:
    """:func:`evaluate_tracking` of the tracker on each (clip, truth) pair, with the measures' means over the clips,
    and (``pooling``) the label measures had the tracks been labelled by each rule of POOLING_RULES."""
    runs, speeds = track_clips(clips, analyzer, stride=stride, progress=progress, **tracking)
    return clips_report([clip.name for clip, _ in clips], runs, speeds, tracking.get("pooling", Pooling()))


def clips_report(names: list[str], runs: list[Run], speeds: dict[str, float], pooling: Pooling = Pooling()) -> dict:
    per_clip = {name: {**evaluate_tracking(truth, results), "frames_per_second": speeds.get(name)}
                for name, (truth, results) in zip(names, runs)}
    totals = {key: sum(report[key] for report in per_clip.values())
              for key in ("people", "tracks_on_people", "unique_people_estimated", "false_tracks", "id_switches")}
    return {"clips": len(per_clip), "mean": _means(list(per_clip.values()), MEAN_MEASURES), "total": totals,
            "pooling": compare_pooling(runs, rule_poolings(pooling)), "per_clip": per_clip}


def judged_tracks(truth: list[TruthFrame], results: list[FrameResult], *, min_side: int = 24, min_iou: float = 0.3) -> dict[int, tuple[int, str]]:
    """Per person :func:`evaluate_tracking` judges a track label for: (the track id matched to them most often, their label)."""
    by_index = {r.index: r for r in results}
    labels, ids_of = {}, defaultdict(list)
    for frame in (f for f in truth if f.index in by_index):
        tracked = by_index[frame.index].faces
        pairs = match([f.box for f in tracked], [f.box for f in frame.faces], min_iou)
        matched_to = {frame.faces[j].person: tracked[i] for i, j in pairs}
        for face in frame.faces:
            labels[face.person] = face.label
            if _longer_side(face.box) >= min_side and face.person in matched_to:
                ids_of[face.person].append(matched_to[face.person].id)
    return {p: (Counter(ids).most_common(1)[0][0], labels[p]) for p, ids in ids_of.items() if labels[p] in CHECKED_LABELS}


_NEUTRAL = FaceQuality(size=1e6, score=1.0, sharpness=1e6, turn=None)  # a face whose quality is unknown weighs fully

# The settings pooling_search tries: each rule that weighs frames, and each factor of FrameWeighting from off (0) to strong.
POOLING_GRID = {
    "rule": ("weighted", "weighted-log"),
    "size_px": (0.0, 20.0, 40.0, 80.0),
    "sharpness": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
    "turn_half": (0.0, 0.1, 0.2, 0.35),
}


def search_pooling(runs: list[Run], grid: dict[str, tuple] = POOLING_GRID, top: int = 10) -> dict:
    """Every pooling of ``grid`` on the same tracks: per-track accuracy (masked or not, mean over the clips, as
    :func:`evaluate_tracking`) first, then the Brier score of p(with_mask); the ``top`` best, the plain mean and the default."""
    clips = []
    for truth, results in runs:
        frames_of = defaultdict(list)
        for result in sorted(results, key=lambda r: r.index):
            for face in result.faces:
                frames_of[face.id].append(face)
        judged = judged_tracks(truth, results)
        people = []
        for track_id, label in judged.values():
            faces = frames_of[track_id]
            qualities = [face.quality or _NEUTRAL for face in faces]
            people.append((
                label,
                np.array([face.probabilities for face in faces]),
                *(np.array([getattr(q, name) if getattr(q, name) is not None else np.nan for q in qualities], np.float64)
                  for name in ("size", "score", "sharpness", "turn")),
            ))
        if people:
            clips.append(people)

    def measure(pooling: Pooling) -> dict:
        accuracy, exact, brier = [], [], []
        for people in clips:
            right = same = squared = 0.0
            for label, probabilities, size, score, sharpness, turn in people:
                weights = np.ones(len(size)) if pooling.rule == "mean" else pooling.weighting.weights(size, score, sharpness, turn)
                if pooling.log:
                    means = weights @ np.log(np.clip(probabilities, LOG_FLOOR, 1.0)) / weights.sum()
                    pooled = np.exp(means - means.max())
                else:
                    pooled = weights @ probabilities / weights.sum()
                pooled = pooled / pooled.sum()
                said = LABELS[int(np.argmax(pooled))]
                right += is_unmasked(said) == is_unmasked(label)
                same += said == label
                squared += (pooled[0] - (label == MASKED)) ** 2
            accuracy.append(right / len(people))
            exact.append(same / len(people))
            brier.append(squared / len(people))
        return {"per_track_label_accuracy": round(float(np.mean(accuracy)), 4),
                "per_track_label_accuracy_3way": round(float(np.mean(exact)), 4),
                "per_track_masked_brier": round(float(np.mean(brier)), 4)}

    def row(pooling: Pooling) -> dict:
        return {"rule": pooling.rule, **asdict(pooling.weighting), **measure(pooling)}

    rows = [row(Pooling(rule, FrameWeighting(size_px, sharpness, turn_half)))
            for rule in grid["rule"] for size_px in grid["size_px"] for sharpness in grid["sharpness"] for turn_half in grid["turn_half"]]
    rows.sort(key=lambda r: (-r["per_track_label_accuracy"], r["per_track_masked_brier"]))
    return {
        "criterion": "per_track_label_accuracy (masked or not), then per_track_masked_brier",
        "people": sum(map(len, clips)),
        "mean": row(Pooling("mean")),
        "default": row(Pooling()),
        "best": rows[:top],
    }
