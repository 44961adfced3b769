"""Synthetic labelled clips for measuring the face tracker (``maskdetect watch``).

The real street clips are unlabelled, so a clip here is one labelled crowd photo (``scenes-dev``)
filmed by a virtual camera: a crop window, with the frame's aspect ratio, that pans and/or zooms
smoothly over the photo and never leaves it, each window upscaled to the frame size. The labelled
people move against the background meanwhile (``people_motion``, :func:`move_people`): each person's
head (a soft-edged ellipse around the face box, with hair and neck) is cut out of the photo, the
holes they leave are filled once with a soft blur of what is around them (the "clean plate",
:func:`clean_plate`), and every frame pastes each person, farther (smaller) ones first, where their
smooth drift and sway have taken them. Faces in ``pictures`` stay fixed to the background, as a
poster's would. Each frame comes with exact truth: which person is where (a face more than half out
of view or behind nearer people is left out), their label, and whether they are a picture.
:func:`evaluate_tracking` compares the tracker's per-frame output with that truth.
``people_motion=0`` films the still photo, byte for byte as the clips were made before people moved.

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
TRUTH_COLUMNS = ("frame", "t", "person", "xmin", "ymin", "xmax", "ymax", "label", "picture")
CHECKED_LABELS = LABELS  # every labelled face is judged masked or not; the three-way measures also by its exact label

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TruthFace:
    person: int  # the face's row order among its photo's labels: the same in every frame
    box: Box  # xmin, ymin, xmax, ymax in pixels of the frame, clipped to it
    label: str
    picture: bool = False  # a face fixed to the background (a poster, a screen): not a person to count


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


# People who move against the background.
PEOPLE_MOTION = 3.0  # the default drift, in face widths: about how far across people wander from where the photo has them
SWAY = 0.04  # a walker's side-to-side sway, in face widths per face width of drift (so 0.12 at the default)
HEAD = (0.4, 0.6, 0.4, 0.6)  # what comes along with a face, per side (left, top, right, bottom) as shares of its box: hair, ears, neck
TOGETHER = (0.6, 0.9)  # the share of people_motion the crowd drifts together, in its median face size (drawn once a clip)
ALONE = (0.15, 0.3)  # the share each person drifts on their own, in their own face size (drawn for each)
FEATHER = 0.15  # the cut-out's soft edge, as a share of the face box's shorter side (the face itself is always opaque)


@dataclass(frozen=True)
class People:
    """A photo's labelled people as a clip moves them (:func:`move_people`): what is cut out, and where it goes."""

    boxes: list[Box]  # each face in the photo
    regions: list[Box]  # each cut-out in the photo: the face box grown by HEAD, clipped to the photo
    alphas: list[np.ndarray]  # each cut-out's (height, width, 1) opacity: 1 on its face, soft at its edge, 0 on other faces
    offsets: np.ndarray  # (people, frames, 2): each person's (dx, dy) per frame, in photo pixels, from where the photo has them
    pictures: frozenset[int]  # people fixed to the background: never cut out or moved
    order: tuple[int, ...]  # the people who move, farthest (smallest face) first: the order they are pasted in

    def box(self, person: int, frame: int) -> tuple[float, float, float, float]:
        """The person's face box in the photo's pixels at ``frame``, moved."""
        dx, dy = self.offsets[person, frame]
        xmin, ymin, xmax, ymax = self.boxes[person]
        return xmin + dx, ymin + dy, xmax + dx, ymax + dy

    def hidden(self, person: int, frame: int) -> float:
        """The share of the person's moved face box behind nearer people (pasted over it at 50 %+ opacity) at ``frame``."""
        nearer = list(self.order[self.order.index(person) + 1:] if person in self.order else self.order)
        if not nearer:
            return 0.0
        xmin, ymin, xmax, ymax = (int(round(v)) for v in self.box(person, frame))
        shifts = np.rint(self.offsets[nearer, frame]).astype(int)
        moved = np.array([self.regions[other] for other in nearer]) + np.tile(shifts, 2)
        near = (moved[:, 0] < xmax) & (xmin < moved[:, 2]) & (moved[:, 1] < ymax) & (ymin < moved[:, 3])
        if not near.any() or xmax <= xmin or ymax <= ymin:
            return 0.0
        covered = np.zeros((ymax - ymin, xmax - xmin), bool)
        for number in np.flatnonzero(near):
            other, (dx, dy) = nearer[number], shifts[number]
            rx0, ry0, rx1, ry1 = self.regions[other]
            x0, y0, x1, y1 = max(xmin, rx0 + dx), max(ymin, ry0 + dy), min(xmax, rx1 + dx), min(ymax, ry1 + dy)
            opaque = self.alphas[other][y0 - ry0 - dy:y1 - ry0 - dy, x0 - rx0 - dx:x1 - rx0 - dx, 0] >= 0.5
            covered[y0 - ymin:y1 - ymin, x0 - xmin:x1 - xmin] |= opaque
        return float(covered.mean())


def _head_region(box: Box, photo_size: tuple[int, int]) -> tuple[Box, Box]:
    """The face's cut-out, grown by HEAD: unclipped, and clipped to the photo."""
    xmin, ymin, xmax, ymax = box
    width, height = xmax - xmin, ymax - ymin
    grown = (int(np.floor(xmin - HEAD[0] * width)), int(np.floor(ymin - HEAD[1] * height)),
             int(np.ceil(xmax + HEAD[2] * width)), int(np.ceil(ymax + HEAD[3] * height)))
    clipped = (max(0, grown[0]), max(0, grown[1]), min(photo_size[0], grown[2]), min(photo_size[1], grown[3]))
    return grown, clipped


def _cutout_alpha(person: int, boxes: list[Box], photo_size: tuple[int, int]) -> tuple[Box, np.ndarray]:
    """A face's cut-out in the photo and its opacity: the ellipse inside the grown box (a head), its edge soft over
    FEATHER of the face's size, see-through over every other labelled face (no one is carried along twice), opaque on its own face."""
    grown, (x0, y0, x1, y1) = _head_region(boxes[person], photo_size)
    xmin, ymin, xmax, ymax = boxes[person]
    edge = FEATHER * max(1, min(xmax - xmin, ymax - ymin))
    rx, ry = (grown[2] - grown[0]) / 2, (grown[3] - grown[1]) / 2
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    reach = np.sqrt(((xs - grown[0] - rx) / rx) ** 2 + ((ys - grown[1] - ry) / ry) ** 2)  # 1 on the ellipse
    alpha = np.clip((1 - reach) * min(rx, ry) / max(edge, 1.0), 0, 1)[..., None].astype(np.float32)
    notch = np.zeros(alpha.shape[:2], np.float32)
    for other, (oxmin, oymin, oxmax, oymax) in enumerate(boxes):
        if other != person:
            notch[max(0, oymin - 1 - y0):max(0, oymax + 1 - y0), max(0, oxmin - 1 - x0):max(0, oxmax + 1 - x0)] = 1.0
    if notch.any():
        alpha *= 1.0 - cv2.GaussianBlur(notch, (0, 0), 1.0)[..., None]
    alpha[max(0, ymin - y0):max(0, ymax - y0), max(0, xmin - x0):max(0, xmax - x0)] = 1.0
    return (x0, y0, x1, y1), alpha


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian smoothing along the first axis (frames), the ends held."""
    if sigma <= 0 or len(values) < 2:
        return values
    reach = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) / sigma) ** 2)
    padded = np.pad(values, ((reach, reach), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, axis], kernel / kernel.sum(), mode="valid") for axis in range(values.shape[1])], axis=1)


def _reach_one(walk: np.ndarray) -> np.ndarray:
    """The path scaled so that each axis's farthest point from the start is 1."""
    walk = walk - walk[0]
    reach = np.abs(walk).max(axis=0)
    return np.divide(walk, reach, out=np.zeros_like(walk), where=reach > 0)


def _walk(rng: np.random.Generator, frames: int, fps: float) -> np.ndarray:
    """A random walk (x, y) smoothed over 0.5 s, from 0, each axis's farthest point at 1."""
    return _reach_one(_smooth(np.cumsum(rng.normal(size=(frames, 2)), axis=0), 0.5 * fps))


def move_people(
    boxes: list[Box],
    photo_size: tuple[int, int],
    frames: int,
    fps: float,
    people_motion: float = PEOPLE_MOTION,
    seed: int = 0,
    pictures: set[int] | frozenset[int] = frozenset(),
) -> People:
    """Each labelled face's motion against the background over ``frames`` frames (seeded by ``seed``).

    Paths are smoothed random walks (Gaussian, σ 0.5 s), each axis scaled so that its farthest point
    from the start is 1, starting where the photo has the face. The crowd drifts together on one path,
    TOGETHER (a share drawn once) of ``people_motion`` times its median face size across and 0.1-0.33
    of that up or down: a queue shuffling, a street flowing. Each person adds a path of their own,
    ALONE (drawn for each) of ``people_motion`` times their own face size, a sway across of SWAY times
    ``people_motion`` face widths (a period of 1-2 s) and a bob half that. People drifting each on
    their own would pass in front of each other far more than a crowd does: over 6 s paths on 80
    scenes-dev photos of 3+ faces, 15 % of the faces would be more than half hidden, against 9 %.
    A face never leaves the photo. ``pictures`` (person indices) stay where they are, as do all when
    ``people_motion`` is 0. Everyone draws their path whether or not they move, so making one person a
    picture changes no one else's.
    """
    boxes = [tuple(int(v) for v in box) for box in boxes]
    photo_width, photo_height = photo_size
    pictures = frozenset(int(p) for p in pictures)
    if unknown := sorted(p for p in pictures if not 0 <= p < len(boxes)):
        raise ValueError(f"pictures {unknown} are not among the {len(boxes)} labelled faces")
    offsets = np.zeros((len(boxes), frames, 2))
    if people_motion > 0 and frames > 0:
        rng = np.random.default_rng([seed, 13])
        t = np.arange(frames) / fps
        crowd_rng = np.random.default_rng([seed, 14])
        crowd = _walk(crowd_rng, frames, fps) * people_motion * crowd_rng.uniform(*TOGETHER) * [1, crowd_rng.uniform(0.1, 1 / 3)]
        unit = np.median([[xmax - xmin, ymax - ymin] for xmin, ymin, xmax, ymax in boxes], axis=0)  # the crowd's face size
        for person, (xmin, ymin, xmax, ymax) in enumerate(boxes):
            own = _walk(rng, frames, fps) * people_motion * rng.uniform(*ALONE) * [1, rng.uniform(0.1, 1 / 3)]
            size = np.array([xmax - xmin, ymax - ymin])
            period, phase, bob_phase = rng.uniform(1.0, 2.0), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
            sway = SWAY * people_motion * size[0] * (np.sin(2 * np.pi * t / period + phase) - np.sin(phase))
            bob = 0.5 * SWAY * people_motion * size[1] * (np.sin(4 * np.pi * t / period + bob_phase) - np.sin(bob_phase))
            if person in pictures:
                continue
            path = unit * crowd + size * own + np.stack([sway, bob], axis=1)
            offsets[person, :, 0] = np.clip(path[:, 0], -xmin, photo_width - xmax)
            offsets[person, :, 1] = np.clip(path[:, 1], -ymin, photo_height - ymax)
    moving = [p for p in range(len(boxes)) if p not in pictures and people_motion > 0]
    order = tuple(sorted(moving, key=lambda p: ((boxes[p][2] - boxes[p][0]) * (boxes[p][3] - boxes[p][1]), p)))
    cutouts = [_cutout_alpha(p, boxes, photo_size) if p in order else (None, None) for p in range(len(boxes))]
    return People(boxes, [c[0] for c in cutouts], [c[1] for c in cutouts], offsets, pictures, order)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` px; a wide one on a copy shrunk to sigma 2 px, then enlarged (the same, far faster)."""
    factor = sigma / 2
    if factor <= 2:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, round(width / factor)), max(1, round(height / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), 2.0), (width, height), interpolation=cv2.INTER_LINEAR)


def fill_holes(photo: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The photo (BGR uint8) with its ``hole`` pixels (nonzero) filled smoothly from around them: normalised
    Gaussian averages of the pixels kept, from the widest scale to the finest, each where enough pixels are near.
    No streaks and no structure (what OpenCV's inpainting draws across a head-sized hole): a soft, out-of-focus fill."""
    keep = (hole == 0).astype(np.float32)
    if not (hole > 0).any() or not keep.any():
        return photo
    image = photo.astype(np.float32)
    filled = np.broadcast_to(image[keep > 0].mean(axis=0), image.shape).astype(np.float32)
    sigma = 2.0
    sigmas = []
    while sigma <= max(photo.shape[:2]) / 2:
        sigmas.append(sigma)
        sigma *= 2
    for sigma in reversed(sigmas):
        near = _blur(keep, sigma)
        mean = _blur(image * keep[..., None], sigma) / np.maximum(near, 1e-6)[..., None]
        weight = np.clip(near / 0.3, 0, 1)[..., None]
        filled = weight * mean + (1 - weight) * filled
    return np.where(hole[..., None] > 0, np.clip(np.rint(filled), 0, 255).astype(np.uint8), photo)


def clean_plate(photo: np.ndarray, people: People) -> np.ndarray:
    """The photo with every moving person's cut-out filled in (:func:`fill_holes`), so no face is seen twice:
    the background the people move over. Pictures and faces that do not move are left as they are."""
    if not people.order:
        return photo
    hole = np.zeros(photo.shape[:2], np.uint8)
    for person in people.order:
        x0, y0, x1, y1 = people.regions[person]
        hole[y0:y1, x0:x1] |= (people.alphas[person][..., 0] > 0.02).astype(np.uint8)
    hole = cv2.dilate(hole, np.ones((3, 3), np.uint8))
    for person in range(len(people.boxes)):  # the faces that stay keep every pixel
        if person not in people.order:
            xmin, ymin, xmax, ymax = people.boxes[person]
            hole[ymin:ymax, xmin:xmax] = 0
    return fill_holes(photo, hole)


def clip_truth(faces: list[Labelled], path: np.ndarray, size: tuple[int, int], fps: float, people: People | None = None) -> list[TruthFrame]:
    """Per frame of a camera path, where each labelled face is (faces mostly outside the frame left out).

    With ``people`` (:func:`move_people`), each face where its person has moved to, and left out too
    when more than half of it is behind nearer people; pictures are marked so.
    """
    frames = []
    for index, window in enumerate(path):
        found = []
        for person, face in enumerate(faces):
            box = _frame_box(face.box if people is None else people.box(person, index), window, size)
            if box is None or (people is not None and people.hidden(person, index) > 0.5):
                continue
            found.append(TruthFace(person, box, face.label, people is not None and person in people.pictures))
        frames.append(TruthFrame(index, index / fps, found))
    return frames


def cutouts(photo: np.ndarray, people: People) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per moving person, their cut-out of the photo: its BGR pixels and its opacity (uint8, 255 opaque)."""
    found = {}
    for person in people.order:
        x0, y0, x1, y1 = people.regions[person]
        found[person] = (photo[y0:y1, x0:x1], np.rint(people.alphas[person][..., 0] * 255).astype(np.uint8))
    return found


def paste_people(frame: np.ndarray, cut: dict[int, tuple[np.ndarray, np.ndarray]], people: People, index: int, window: np.ndarray) -> np.ndarray:
    """The frame (the clean plate as the camera sees it, BGR uint8; changed in place) with each moving person's cut-out (:func:`cutouts`)
    pasted where they are at frame ``index``, farthest first, through the same camera window and interpolation as the background."""
    height, width = frame.shape[:2]
    x0, y0, window_width = window
    scale = width / window_width
    for person in people.order:
        rx0, ry0, rx1, ry1 = people.regions[person]
        dx, dy = people.offsets[person, index]
        left = max(0, int(np.floor(scale * (rx0 + dx - x0))) - 1)
        top = max(0, int(np.floor(scale * (ry0 + dy - y0))) - 1)
        right = min(width, int(np.ceil(scale * (rx1 + dx - x0))) + 1)
        bottom = min(height, int(np.ceil(scale * (ry1 + dy - y0))) + 1)
        if right <= left or bottom <= top:
            continue
        shift = np.float32([[scale, 0, scale * (rx0 + dx + 0.5 - x0) - 0.5 - left], [0, scale, scale * (ry0 + dy + 0.5 - y0) - 0.5 - top]])
        pixels, opacity = cut[person]
        # the pixels warped as the background is (beyond the cut-out's edge, its edge repeated), the opacity 0 beyond it
        colour = cv2.warpAffine(pixels, shift, (right - left, bottom - top), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(opacity, shift, (right - left, bottom - top), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = alpha.astype(np.float32) * (1 / 255)
        frame[top:bottom, left:right] = cv2.blendLinear(colour, frame[top:bottom, left:right], alpha, 1 - alpha)
    return frame


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
    people_motion: float = PEOPLE_MOTION,
    pictures: set[int] | frozenset[int] = frozenset(),
) -> list[TruthFrame]:
    """Film the photo with a moving virtual camera (MP4 at ``out_path``); the labelled faces per frame.

    The people move against the background, up to about ``people_motion`` face widths, together and
    each their own way (:func:`move_people`, seeded by ``seed``), but for ``pictures`` (indices into
    ``faces``), which stay fixed to it and are marked ``picture`` in the truth. ``people_motion=0`` films the photo rigidly:
    the frames are those of a still photo under a moving camera, byte for byte as before people moved.
    With ``degradation``, its episodes damage the faces and the frames as they come and go (seeded by ``seed``).
    """
    photo = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if photo is None:
        raise ValueError(f"cannot read the image {image_path}")
    frames = round(seconds * fps)
    photo_size = (photo.shape[1], photo.shape[0])
    path = camera_path(photo_size, size, frames, motion, seed, [f.box for f in faces])
    moved = move_people([f.box for f in faces], photo_size, frames, fps, people_motion, seed, pictures)
    truth = clip_truth(faces, path, size, fps, moved)
    background, cut = clean_plate(photo, moved), cutouts(photo, moved)
    people, whole = degradation.episodes(len(faces), frames, fps, seed) if degradation is not None else ([], [])
    with atomic_path(Path(out_path)) as temporary:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write an mp4v video at {temporary} (is this build without video writing?)")
        try:
            for index, ((x0, y0, width), frame_truth) in enumerate(zip(path, truth)):
                scale = size[0] / width
                # pixel centres sit at +0.5, so the window's edges land exactly on the frame's edges
                shift = [[scale, 0, scale * (0.5 - x0) - 0.5], [0, scale, scale * (0.5 - y0) - 0.5]]
                frame = cv2.warpAffine(background, np.float32(shift), size, flags=cv2.INTER_LINEAR)
                if moved.order:
                    frame = paste_people(frame, cut, moved, index, path[index])
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
            rows.append(dict(zip(TRUTH_COLUMNS, (frame.index, frame.t, face.person, *face.box, face.label, int(face.picture)))))
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
                frame.faces.append(TruthFace(int(row["person"]), box, row["label"], row.get("picture") == "1"))  # no column: made before pictures
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
    people_motion: float = PEOPLE_MOTION,
    pictures_per_clip: int = 0,
) -> list[tuple[Path, Path]]:
    """``count`` clips ``<out_dir>/<scene>-<motion>.mp4`` with their truth ``.csv``, motions taken in turn.

    Scenes are drawn in a seeded order; a scene is used when at least ``min_faces`` of its labelled
    faces (plus ``pictures_per_clip``) reach ``min_side`` px in the frames of the rigidly filmed clip
    (after the upscaling) in at least one frame, so the people's motion changes which scenes and camera
    paths are filmed in nothing. The people move by ``people_motion`` face widths; ``pictures_per_clip``
    of those faces, drawn (seeded), stay fixed to the background as pictures (:func:`make_clip`).
    ``degradation`` damages the faces frame by frame.
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
            counted = _counted_people(clip_truth(scenes[name], path, size, fps), min_side)
            if len(counted) >= min_faces + pictures_per_clip:
                break
        else:
            raise ValueError(f"only {len(made)} of {count} scenes in {labels_csv} have {min_faces + pictures_per_clip} faces of {min_side}+ px")
        clip_path = Path(out_dir) / f"{Path(name).stem}-{motion}.mp4"
        pictures = np.random.default_rng([clip_seed, 17]).choice(sorted(counted), pictures_per_clip, replace=False) if pictures_per_clip else ()
        options = dict(size=size, seconds=seconds, fps=fps, motion=motion, seed=clip_seed, degradation=degradation,
                       people_motion=people_motion, pictures=frozenset(int(p) for p in pictures))
        truth = make_clip(Path(images_dir) / name, scenes[name], clip_path, **options)
        made.append((clip_path, write_truth(truth, clip_path.with_suffix(".csv"))))
    return made


def _counted_people(truth: list[TruthFrame], min_side: int) -> set[int]:
    return {face.person for frame in truth for face in frame.faces if _longer_side(face.box) >= min_side and not face.picture}


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
    * Faces the truth marks ``picture`` (fixed to the background) are not people: they count in none of
      the measures above but the estimate. ``pictures``: how many the clip shows; ``picture_tracks``: the
      counted ids that matched a picture and never a person, pictures counted as people (they are in
      ``unique_people_estimated``, never ignored); a tracker that reports no track on them scores 0.
    * A track the tracker itself calls a picture (its face's ``picture`` flag at its last frame, where
      the tracker has one) is not counted: it is left out of ``unique_people_estimated``,
      ``tracks_on_people`` and ``picture_tracks``; ``called_pictures`` counts those ids, and
      ``people_called_pictures`` the people whose track (the one matched to them most often) is one.
    """
    by_index = {r.index: r for r in results}
    frames = [f for f in truth if f.index in by_index]
    counted = _counted_people(frames, min_side)
    labels = {face.person: face.label for frame in frames for face in frame.faces}
    pictures = {face.person for frame in frames for face in frame.faces if face.picture}
    visible, found = Counter(), Counter()
    ids_of = defaultdict(list)  # person -> matched track id per matched counted frame
    labels_checked = labels_right = 0
    checked_of, right_of, exact_of = Counter(), Counter(), Counter()  # per person
    appearances, on_people, on_small, on_any, on_picture, large = Counter(), Counter(), Counter(), Counter(), Counter(), set()
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
                (on_people if person in counted else on_picture if person in pictures else on_small)[face.id] += 1
        matched_to = {frame.faces[j].person: tracked[i] for i, j in pairs.items()}
        for person in (f.person for f in frame.faces if _longer_side(f.box) >= min_side and not f.picture):
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
    ignored = {i for i in appearances if not on_people[i] and not on_picture[i] and (on_small[i] >= appearances[i] / 2 or i not in large)}
    called = {i for i, face in last.items() if getattr(face, "picture", False)}  # the tracker's verdict, where it gives one
    estimated = set(appearances) - ignored - called
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
        "tracks_on_people": sum(1 for i in estimated if on_people[i]),
        "labelled_people_error": _ratio(abs(sum(1 for i in estimated if on_people[i]) - len(counted)), len(counted)),
        "unmasked_people": sum(labels[p] in UNMASKED_LABELS for p in counted),
        "unmasked_people_estimated": sum(is_unmasked(final_label[i]) for i in estimated),
        "pictures": len(pictures),
        "picture_tracks": sum(1 for i in estimated if on_picture[i] and not on_people[i]),
        "called_pictures": len(called),
        "people_called_pictures": sum(1 for p in main_track if main_track[p] in called),
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
              for key in ("people", "tracks_on_people", "unique_people_estimated", "false_tracks", "id_switches",
                          "pictures", "picture_tracks", "called_pictures", "people_called_pictures")}
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
            if _longer_side(face.box) >= min_side and face.person in matched_to and not face.picture:
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
