"""Labelled crowd scenes composed of held-out training faces, to film as clips (``maskdetect evaluate clips --from-training``).

The tracker's label rule is chosen on clips, and the labelled scenes of ``scenes-dev`` are for
evaluation only, so these scenes are made from the training sources' held-out files alone: the
``validation`` and ``test`` splits of maskwear-train (``data/maskwear-splits.csv``; with_mask,
incorrect, without_mask) and the ``validation`` split of realfaces-train (``data/realfaces-splits.csv``).
No file of realworld-dev or scenes-dev is read; both training sets were cleaned of every evaluation set.

A scene pastes several faces, each a different file, at sizes from ``sides`` (the labelled box's
longer side), side by side across a band of the picture, onto a made-up background (a colour
gradient with soft blotches and blurred blocks, like an out-of-focus street). A face comes with
some of its photo around it (maskwear files are often whole photos; their face box is the one in
``data/maskwear-faces.csv``), blended in with a soft edge; a tight face crop (realfaces-train) is
pasted whole and is its own box. The scene is written as a JPEG with a labels CSV in the scenes
format (``image,xmin,ymin,xmax,ymax,label``), so :func:`maskdetect.training.clips.make_clips` films
it as it films scenes-dev; ``sources.csv`` says which file each labelled face came from.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.constants import LABELS
from ..core.files import write_csv
from ..data import pinned
from ..data.maskwear import MASKWEAR, read_maskwear_faces
from ..data.realfaces import REALFACES

Box = tuple[int, int, int, int]

HELD_OUT = {MASKWEAR.name: ("validation", "test"), REALFACES.name: ("validation",)}
LABEL_COLUMNS = ("image", "xmin", "ymin", "xmax", "ymax", "label")
SOURCE_COLUMNS = ("image", "person", "set", "split", "path", "label", "sha256")
LABEL_SHARES = {"with_mask": 0.4, "incorrect": 0.2, "without_mask": 0.4}  # how often each label is drawn for a face
CONTEXT = 0.45  # of a face box's size, per side: how much of its photo comes along with a face


@dataclass(frozen=True)
class SourceFace:
    set: str  # "maskwear-train" | "realfaces-train"
    split: str
    path: str  # the manifest's "<class>/<file name>"
    file: Path  # where it is read from
    label: str
    sha256: str
    box: Box | None  # the face in the file; None: the file is a tight crop of the face


def held_out_faces(maskwear: Path | None = None, realfaces: Path | None = None, progress: bool = False) -> list[SourceFace]:
    """Every held-out file of the training sets with a face: maskwear-train's validation and test files
    with a face box, realfaces-train's validation files (``maskwear`` / ``realfaces``: their verified
    folders; by default found as ``maskdetect data`` finds them: the source variables, else a download)."""
    found = []
    boxes = read_maskwear_faces()
    for dataset, folder in ((MASKWEAR, maskwear), (REALFACES, realfaces)):
        manifest = pinned.read_manifest(dataset)
        folder = Path(folder) if folder is not None else pinned.acquire_source(dataset, manifest=manifest, progress=progress)
        sha256 = {entry.path: entry.sha256 for entry in manifest}
        for row in pinned.read_splits(dataset):
            if row["split"] not in HELD_OUT[dataset.name] or row["class"] not in LABELS:
                continue
            box = boxes.get(row["path"]) if dataset is MASKWEAR else None
            if dataset is MASKWEAR and box is None:
                continue  # no face found in the file: nothing to paste
            found.append(SourceFace(dataset.name, row["split"], row["path"], folder / row["path"], row["class"], sha256[row["path"]], box))
    return found


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A BGR uint8 background: a colour gradient, soft blotches, blurred blocks and a little grain; no faces."""
    width, height = size
    grey = rng.uniform(50, 200, 2)
    top, bottom = (0.6 * grey[:, None] + 0.4 * rng.uniform(30, 225, (2, 3)))  # muted colours
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).astype(np.float32).copy()
    blotches = cv2.resize(rng.normal(0, 18, (5, 9, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    image += blotches
    for _ in range(rng.integers(4, 12)):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 20, width // 4), rng.integers(height // 10, height // 2)
        colour = rng.uniform(20, 235, 3)
        alpha = rng.uniform(0.3, 0.8)
        block = image[y0:y0 + h, x0:x0 + w]
        block[:] = (1 - alpha) * block + alpha * colour
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(2, 6))
    image += rng.normal(0, 3, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _patch(face: SourceFace) -> tuple[np.ndarray, Box]:
    """The face's BGR pixels to paste, and its box within them."""
    image = cv2.imread(str(face.file), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read the image {face.file}")
    height, width = image.shape[:2]
    if face.box is None:
        return image, (0, 0, width, height)
    xmin, ymin, xmax, ymax = face.box
    grow_x, grow_y = CONTEXT * (xmax - xmin), CONTEXT * (ymax - ymin)
    x0, y0 = max(0, int(xmin - grow_x)), max(0, int(ymin - grow_y))
    x1, y1 = min(width, int(np.ceil(xmax + grow_x))), min(height, int(np.ceil(ymax + grow_y)))
    return image[y0:y1, x0:x1], (xmin - x0, ymin - y0, xmax - x0, ymax - y0)


def _alpha(height: int, width: int, box: Box, tight: bool) -> np.ndarray:
    """Where the pasted pixels show: all of the face box, fading out over its surroundings and, softly, at the patch's edges."""
    edge = max(1.0, 0.08 * min(height, width))
    ys = np.minimum(np.arange(height), np.arange(height)[::-1])[:, None] + 0.5
    xs = np.minimum(np.arange(width), np.arange(width)[::-1])[None, :] + 0.5
    edges = np.clip(np.minimum(ys, xs) / edge, 0, 1)[..., None].astype(np.float32)
    if tight:
        return edges
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = max((box[2] - box[0]) / 2, 1), max((box[3] - box[1]) / 2, 1)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    reach = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)  # 1 on the ellipse through the box's sides
    return edges * np.clip((1 + 2 * CONTEXT - reach) / (2 * CONTEXT - 0.1), 0, 1)[..., None].astype(np.float32)


def compose_scene(faces: list[SourceFace], rng: np.random.Generator, size: tuple[int, int] = (960, 540),
                  sides: tuple[float, float] = (18, 110)) -> tuple[np.ndarray, list[Box]]:
    """One scene: the faces pasted left to right at sizes drawn log-uniformly from ``sides`` (the box's longer
    side, px), their centres within the middle band of the height, none overlapping another's box; the
    BGR image and each face's box in it (clipped), in the order given."""
    width, height = size
    image = background(rng, size).astype(np.float32)
    slot = width / len(faces)
    placed: list[Box] = []
    for number, face in enumerate(faces):
        pixels, box = _patch(face)
        longer = max(box[2] - box[0], box[3] - box[1])
        for attempt in range(30):
            side = float(np.exp(rng.uniform(np.log(sides[0]), np.log(sides[1]))))
            scale = side / longer
            w, h = (box[2] - box[0]) * scale, (box[3] - box[1]) * scale
            cx = (number + rng.uniform(0.2, 0.8)) * slot
            cy = rng.uniform(0.35, 0.65) * height
            target = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            apart = all(target[2] + 4 < b[0] or b[2] + 4 < target[0] or target[3] + 4 < b[1] or b[3] + 4 < target[1] for b in placed)
            if apart and target[0] >= 0 and target[2] <= width and target[1] >= 0 and target[3] <= height:
                break
        else:
            raise ValueError(f"no room for face {number + 1} of {len(faces)} in a {width}x{height} scene; use fewer or smaller faces")
        new_width, new_height = max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))
        resized = cv2.resize(pixels, (new_width, new_height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        sx, sy = new_width / pixels.shape[1], new_height / pixels.shape[0]
        left, top = round(target[0] - box[0] * sx), round(target[1] - box[1] * sy)
        scaled_box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        alpha = _alpha(new_height, new_width, scaled_box, face.box is None)
        x0, y0, x1, y1 = max(0, left), max(0, top), min(width, left + new_width), min(height, top + new_height)
        if x1 > x0 and y1 > y0:
            part = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
            image[y0:y1, x0:x1] = part * resized[y0 - top:y1 - top, x0 - left:x1 - left] + (1 - part) * image[y0:y1, x0:x1]
        labelled = (round(left + scaled_box[0]), round(top + scaled_box[1]), round(left + scaled_box[2]), round(top + scaled_box[3]))
        placed.append((max(0, labelled[0]), max(0, labelled[1]), min(width, labelled[2]), min(height, labelled[3])))
    return np.clip(image, 0, 255).astype(np.uint8), placed


def draw_faces(pool: list[SourceFace], count: int, rng: np.random.Generator, used: set[str]) -> list[SourceFace]:
    """``count`` faces of ``pool`` not yet ``used`` (by sha256; added to it), each label drawn by LABEL_SHARES."""
    by_label = {label: [face for face in pool if face.label == label and face.sha256 not in used] for label in LABELS}
    chosen = []
    for _ in range(count):
        available = [label for label in LABELS if by_label[label]]
        if not available:
            raise ValueError(f"the held-out training files ran out after {len(used)} faces; make fewer scenes")
        shares = np.array([LABEL_SHARES[label] for label in available])
        label = available[rng.choice(len(available), p=shares / shares.sum())]
        face = by_label[label].pop(int(rng.integers(len(by_label[label]))))
        used.add(face.sha256)
        chosen.append(face)
    return chosen


def make_training_scenes(
    out_dir: Path,
    *,
    count: int = 16,
    seed: int = 0,
    faces: tuple[int, int] = (4, 8),
    size: tuple[int, int] = (960, 540),
    sides: tuple[float, float] = (18, 110),
    pool: list[SourceFace] | None = None,
) -> tuple[Path, Path]:
    """``count`` scenes ``<out_dir>/images/composite-NNN.jpg`` of ``faces`` (a range) held-out training faces each,
    no file used twice; ``<out_dir>/labels.csv`` in the scenes format and ``<out_dir>/sources.csv``.
    Returns the images folder and the labels CSV, as ``make_clips`` takes them."""
    pool = held_out_faces() if pool is None else pool
    rng = np.random.default_rng([seed, 11])
    images = Path(out_dir) / "images"
    images.mkdir(parents=True, exist_ok=True)
    labels, sources, used = [], [], set()
    for number in range(count):
        name = f"composite-{number:03d}.jpg"
        chosen = draw_faces(pool, int(rng.integers(faces[0], faces[1] + 1)), rng, used)
        image, boxes = compose_scene(chosen, rng, size, sides)
        if not cv2.imwrite(str(images / name), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise RuntimeError(f"could not write {images / name}")
        for person, (face, box) in enumerate(zip(chosen, boxes)):
            labels.append(dict(zip(LABEL_COLUMNS, (name, *box, face.label))))
            sources.append(dict(zip(SOURCE_COLUMNS, (name, person, face.set, face.split, face.path, face.label, face.sha256))))
    labels_csv = write_csv(labels, LABEL_COLUMNS, Path(out_dir) / "labels.csv")
    write_csv(sources, SOURCE_COLUMNS, Path(out_dir) / "sources.csv")
    return images, labels_csv


def read_sources(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
