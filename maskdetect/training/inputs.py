"""Model inputs: the laid-out photos, their face crops and the real faces, through the one preprocessing.

A label is its index in :data:`~maskdetect.core.constants.LABELS` (0 with_mask, 1 incorrect,
2 without_mask). Each loader returns (images, labels, paths).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..core.constants import CLASSES, FACE_CROP_MARGIN, LABELS
from ..core.faces import crop_face, expand_box
from ..core.files import class_files, sha256_file
from ..core.images import decode_image, preprocess
from ..data import maskwear
from ..data.boxes import read_faces
from ..data.realfaces import SOURCE_ENV, realfaces_dir
from ..data.realfaces import SPLITS as REALFACES_SPLITS
from ..data.source import DataError
from ..data.split import read_splits
from ..settings import Settings


def _in_threads(function: Callable, items: list, desc: str, progress: bool) -> np.ndarray:
    """``function`` over ``items`` on every core (decoding releases the GIL), stacked, with a progress bar."""
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return np.stack(list(tqdm(pool.map(function, items), total=len(items), desc=desc, disable=not progress)))


def load_folder(
    folder: Path, size: int, channels: int = 3, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Every image of ``folder/{with_mask,without_mask}`` (and ``folder/incorrect`` when there is one)."""
    folder = Path(folder)
    if not all((folder / label).is_dir() for label in CLASSES):
        raise DataError(f"{folder} needs with_mask/ and without_mask/ folders; run `make data` first")
    paths, labels = [], []
    for label in (label for label in LABELS if (folder / label).is_dir()):
        found = class_files(folder, label)
        paths += found
        labels += [LABELS.index(label)] * len(found)
    images = _in_threads(lambda p: preprocess(p, size, channels), paths, f"load {folder.name}/", progress)
    return images, np.array(labels, np.int32), paths


def load_face_crops(
    split: str, size: int, channels: int = 3, margin: float = FACE_CROP_MARGIN, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Square crops around the face of every file of ``split`` that has one (data/faces.csv).

    Real faces (``realworld-dev``, a detector's crops of a crowd) are framed tight; the training
    photos are head and shoulders. Crops close that gap.
    """
    boxes = read_faces()
    root = Settings.from_env().data_dir / split
    rows = [r for r in read_splits() if r["split"] == split and r["source"] in boxes]

    def crop(row):
        image = decode_image(root / row["class"] / row["file"])
        return preprocess(crop_face(image, boxes[row["source"]], margin), size, channels)

    images = _in_threads(crop, rows, f"crop {split}/", progress)
    labels = np.array([LABELS.index(r["class"]) for r in rows], np.int32)
    return images, labels, [root / r["class"] / r["file"] for r in rows]


def load_realfaces(
    split: str, size: int, channels: int = 3, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Every face of ``split`` through the one preprocessing: (images, labels, paths)."""
    if split not in REALFACES_SPLITS:
        raise DataError(f"realfaces-train has no {split!r} split; use {' or '.join(map(repr, REALFACES_SPLITS))}")
    folder = realfaces_dir() / split
    if not folder.is_dir():
        raise DataError(f"{folder} is missing; run `maskdetect data` first (offline: with {SOURCE_ENV}=DIR)")
    return load_folder(folder, size, channels, progress=progress)


def load_maskwear(
    split: str, size: int, channels: int = 3, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Every face of maskwear-train's ``split``: the square around the face YuNet found
    (``data/maskwear-faces.csv``; many files are whole web photos), else the file as it is."""
    if split not in maskwear.SPLITS:
        raise DataError(f"maskwear-train has no {split!r} split; use {' or '.join(map(repr, maskwear.SPLITS))}")
    folder = maskwear.maskwear_dir() / split
    if not folder.is_dir():
        raise DataError(f"{folder} is missing; run `maskdetect data` first (offline: with {maskwear.SOURCE_ENV}=DIR)")
    boxes = maskwear.read_maskwear_faces()
    paths = [path for label in LABELS for path in class_files(folder, label)]

    def load(path: Path) -> np.ndarray:
        box = boxes.get(f"{path.parent.name}/{path.name}")
        image = decode_image(path) if box is None else crop_face(decode_image(path), box, FACE_CROP_MARGIN)
        return preprocess(image, size, channels)

    images = _in_threads(load, paths, f"load maskwear {split}/", progress)
    labels = np.array([LABELS.index(path.parent.name) for path in paths], np.int32)
    return images, labels, paths


def face_boxes(paths: list[Path], crop_margin: float | None = None) -> np.ndarray:
    """The detected face of each materialised file as (xmin, ymin, xmax, ymax) in [0, 1].

    Relative to the whole image, or with ``crop_margin`` to the crop :func:`load_face_crops`
    takes; NaN where no face was found. Model inputs are squashed to a square, so the
    fractions hold in them too.
    """
    boxes = read_faces()
    sources = {r["sha256"]: r["source"] for r in read_splits()}  # by content: any layout, either split
    found = np.full((len(paths), 4), np.nan, np.float32)
    for i, path in enumerate(map(Path, paths)):
        box = boxes.get(sources.get(sha256_file(path), ""))
        if box is None:
            continue
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF rotation by 90 degrees
                width, height = height, width
        left, top, right, bottom = 0, 0, width, height
        if crop_margin is not None:
            left, top, right, bottom = expand_box(box, crop_margin, width, height)
        w, h = right - left, bottom - top
        found[i] = [(box[0] - left) / w, (box[1] - top) / h, (box[2] - left) / w, (box[3] - top) / h]
    return found
