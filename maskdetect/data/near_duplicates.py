"""Group near-duplicate photos, so that no photo sits on both sides of a split.

The dataset holds the same photo several times: a without_mask photo and its
twin with a pasted mask, and rotated / mirrored / shifted / zoomed augmented copies
of either. Grouping works in three steps:

1. Cheap candidates: for every image, its nearest neighbours by colour histogram and
   by a mirror-invariant 16x16 thumbnail (both barely change under the mask paste or
   a small rotation). Only these pairs are compared closely.
2. A pair's similarity, as in ``../shared/data/README.md``: on 64x64 grayscale, over
   pixels with a strong gradient in either image, the share whose grey levels agree.
   Best of direct, mirrored and feature-aligned (ORB + RANSAC similarity transform,
   on the image and on its mirror) comparisons. A plain thumbnail correlation is not
   enough: different passport-style portraits correlate at 0.95.
3. Groups are the connected components of pairs at or above ``threshold``.

Pure OpenCV/NumPy and seeded, so the grouping is the same on every run.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from ..core.images import decode_image

# Workers start from a clean server process: a fork of a process whose OpenCV thread pool has run
# (face detection, in a notebook or the test session) can deadlock inside OpenCV.
_START = multiprocessing.get_context("forkserver")

THUMB = 64  # side of the comparison thumbnail
FEATURE_SIDE = 256  # longer side of the image ORB runs on
ORB_FEATURES = 300
GRADIENT_MIN = 20.0  # grey levels per pixel: "an edge"
GREY_TOLERANCE = 12.0  # grey levels: "the same pixel"
MIN_EDGE_PIXELS = 50
MIN_INLIERS = 6
NEIGHBOURS = 20  # candidates per image and per cheap measure
TWIN_THRESHOLD = 0.40  # twins score >= 0.52, different photos <= 0.34 (shared README)
SKIP_ALIGNMENT_ABOVE = 0.60  # already clearly the same photo


@dataclass
class Features:
    """What the comparison needs of one image."""

    thumb: np.ndarray  # THUMB x THUMB float32 grey
    shape: tuple[int, int]  # (height, width) of the image ORB saw
    keypoints: tuple[np.ndarray, np.ndarray]  # direct, mirrored: N x 2 float32
    descriptors: tuple[np.ndarray | None, np.ndarray | None]
    histogram: np.ndarray  # normalised HSV histogram
    small: np.ndarray  # 16x16 grey, zero-mean unit-norm


def _normalised(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32).ravel()
    x -= x.mean()
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else x


def image_features(path: Path) -> Features:
    cv2.setNumThreads(1)
    rgb = np.asarray(decode_image(path, draft=("RGB", (FEATURE_SIDE, FEATURE_SIDE))).convert("RGB"))
    scale = FEATURE_SIDE / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES)
    keypoints, descriptors = [], []
    for view in (grey, np.ascontiguousarray(grey[:, ::-1])):
        found, described = orb.detectAndCompute(view, None)
        keypoints.append(np.float32([k.pt for k in found]).reshape(-1, 2))
        descriptors.append(described)
    thumb = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    hsv = cv2.cvtColor(cv2.resize(rgb, (THUMB, THUMB), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    small = cv2.resize(thumb, (16, 16), interpolation=cv2.INTER_AREA)
    return Features(
        thumb=thumb,
        shape=grey.shape,
        keypoints=tuple(keypoints),
        descriptors=tuple(descriptors),
        histogram=np.sqrt(histogram / max(histogram.sum(), 1.0)),
        small=_normalised(small),
    )


def candidate_pairs(features: list[Features], neighbours: int = NEIGHBOURS) -> list[tuple[int, int]]:
    """Pairs (i < j) that are among each other's nearest neighbours by a cheap measure."""
    hist = np.stack([f.histogram for f in features])
    small = np.stack([f.small for f in features])
    mirrored = np.stack([_normalised(f.small.reshape(16, 16)[:, ::-1]) for f in features])
    distances = (
        2.0 - 2.0 * hist @ hist.T,  # Hellinger distance squared
        1.0 - np.maximum(small @ small.T, small @ mirrored.T),
    )
    pairs = set()
    k = min(neighbours, len(features) - 1)
    for distance in distances:
        np.fill_diagonal(distance, np.inf)
        nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
        for i, row in enumerate(nearest):
            pairs.update((min(i, int(j)), max(i, int(j))) for j in row)
    return sorted(pairs)


def _gradient(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.hypot(gx, gy)


def edge_agreement(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Share of strong-gradient pixels whose grey levels agree (0 when too few edges)."""
    edges = (_gradient(a) > GRADIENT_MIN) | (_gradient(b) > GRADIENT_MIN)
    if valid is not None:
        edges &= valid
    count = int(edges.sum())
    if count < MIN_EDGE_PIXELS:
        return 0.0
    return float((np.abs(a - b) < GREY_TOLERANCE)[edges].sum() / count)


_ONES = np.ones((THUMB, THUMB), np.float32)
_KERNEL = np.ones((3, 3), np.uint8)


def _warped_agreement(source: np.ndarray, target: np.ndarray, matrix: np.ndarray) -> float:
    warped = cv2.warpAffine(source, matrix, (THUMB, THUMB), flags=cv2.INTER_LINEAR)
    # Only where the warped image has content, away from its border.
    valid = cv2.warpAffine(_ONES, matrix, (THUMB, THUMB), flags=cv2.INTER_NEAREST)
    valid = cv2.erode((valid > 0.5).astype(np.uint8), _KERNEL) > 0
    return edge_agreement(warped, target, valid)


def _aligned_similarity(a: Features, b: Features, matcher: cv2.BFMatcher) -> float:
    points_b, descriptors_b = b.keypoints[0], b.descriptors[0]
    if descriptors_b is None or len(descriptors_b) < MIN_INLIERS:
        return 0.0
    (height_a, width_a), (height_b, width_b) = a.shape, b.shape
    to_thumb_a = np.diag([THUMB / width_a, THUMB / height_a, 1.0])
    to_thumb_b = np.array([[THUMB / width_b, 0, 0], [0, THUMB / height_b, 0]])
    best = 0.0
    for mirrored in (0, 1):
        points_a, descriptors_a = a.keypoints[mirrored], a.descriptors[mirrored]
        if descriptors_a is None or len(descriptors_a) < MIN_INLIERS:
            continue
        matches = matcher.match(descriptors_a, descriptors_b)
        if len(matches) < MIN_INLIERS:
            continue
        source = points_a[[m.queryIdx for m in matches]]
        target = points_b[[m.trainIdx for m in matches]]
        matrix, inliers = cv2.estimateAffinePartial2D(
            source, target, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=500
        )
        if matrix is None or int(inliers.sum()) < MIN_INLIERS:
            continue
        thumb_a = np.ascontiguousarray(a.thumb[:, ::-1]) if mirrored else a.thumb
        forward = (to_thumb_b @ np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(to_thumb_a)).astype(np.float32)
        backward = cv2.invertAffineTransform(forward)
        best = max(
            best,
            _warped_agreement(thumb_a, b.thumb, forward),
            _warped_agreement(b.thumb, thumb_a, backward),
        )
    return best


def pair_similarity(a: Features, b: Features, matcher: cv2.BFMatcher | None = None) -> float:
    """How surely two images show the same photo (about 0.1 for strangers, up to 1)."""
    similarity = max(
        edge_agreement(a.thumb, b.thumb),
        edge_agreement(np.ascontiguousarray(a.thumb[:, ::-1]), b.thumb),
    )
    if similarity < SKIP_ALIGNMENT_ABOVE:
        matcher = matcher or cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        similarity = max(similarity, _aligned_similarity(a, b, matcher))
    return similarity


_worker_features: list[Features] = []


def _init_worker(features: list[Features]) -> None:
    global _worker_features
    cv2.setNumThreads(1)
    _worker_features = features


def _similarities(pairs: list[tuple[int, int]]) -> list[float]:
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    return [pair_similarity(_worker_features[i], _worker_features[j], matcher) for i, j in pairs]


def _workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def group_images(
    paths: list[Path],
    *,
    threshold: float = TWIN_THRESHOLD,
    progress: bool = True,
) -> tuple[np.ndarray, dict[tuple[int, int], float]]:
    """Label each image with a group number; also return the compared pairs' scores.

    Group numbers are ordered by each group's first image in ``paths``.
    """
    workers = _workers()
    with ProcessPoolExecutor(workers, mp_context=_START) as pool:
        features = list(
            tqdm(
                pool.map(image_features, paths, chunksize=16),
                total=len(paths),
                desc="image features",
                disable=not progress,
            )
        )
    pairs = candidate_pairs(features)
    chunks = [pairs[i : i + 500] for i in range(0, len(pairs), 500)]
    scores: dict[tuple[int, int], float] = {}
    with ProcessPoolExecutor(workers, mp_context=_START, initializer=_init_worker, initargs=(features,)) as pool:
        bar = tqdm(total=len(pairs), desc="compare pairs", disable=not progress)
        for chunk, result in zip(chunks, pool.map(_similarities, chunks)):
            scores.update(zip(chunk, result))
            bar.update(len(chunk))
        bar.close()
    linked = [pair for pair, score in scores.items() if score >= threshold]
    n = len(paths)
    graph = coo_matrix(
        (np.ones(len(linked)), ([i for i, _ in linked], [j for _, j in linked])), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    # Renumber by first appearance so labels do not depend on scipy's internals.
    order: dict[int, int] = {}
    groups = np.array([order.setdefault(int(label), len(order)) for label in labels])
    return groups, scores
