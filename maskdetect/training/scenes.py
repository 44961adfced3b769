"""Measuring crowd analysis on labelled scenes (``maskdetect evaluate scenes``).

A labels CSV has one row per labelled face: ``image,xmin,ymin,xmax,ymax,label`` with ``label``
``with_mask``, ``without_mask`` or ``incorrect`` (a mask below the nose, counted as unmasked).
Detections are matched to labelled faces greedily, highest IoU first, at IoU >= 0.4 (a detector's
box and a labeller's box around the same small face rarely agree better). The metrics:

* ``recall``: matched labelled faces / labelled faces, overall and by the labelled box's
  longer side (``<24``, ``24-48``, ``>48`` px), and by label (does the detector miss masked faces?);
* ``unmatched_detection_share``: detections matching no labelled face / detections (labelling
  is not exhaustive, so some of these are real, unlabelled faces);
* ``label_accuracy``: on matched faces, the share the classifier puts on the right side of masked
  (with_mask) or not masked (without_mask, or incorrect: a mask below the nose), overall and by the
  labelled box's longer side;
* ``label_recall``: per label, the matched faces given exactly that label (``incorrect``'s is the
  share of masks worn below the nose the classifier names so); ``confusion_matrix``: matched faces,
  rows the true label, columns the predicted, in LABELS order;
* ``unmasked_share_mae``: per image, (without_mask + incorrect) / labelled faces against the
  unmasked share ``/detect`` answers (over the faces :func:`maskdetect.core.crowd.counted_faces` counts),
  averaged over images with at least one detection
  (``images_without_detection`` counts the others);
* ``seconds_per_image``: detection and classification, decoding included.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from ..core.constants import LABELS
from ..core.crowd import CrowdAnalyzer, counted_faces, is_unmasked
from ..core.faces import FaceDetector
from ..core.images import decode_image
from ..core.inference import Predictor

UNMASKED_LABELS = tuple(label for label in LABELS if is_unmasked(label))
MIN_IOU = 0.4
SIZE_BUCKETS = ("<24", "24-48", ">48")

Box = tuple[int, int, int, int]


class ScenesError(ValueError):
    """The labels CSV or the images folder is not usable; the message says why."""


@dataclass(frozen=True)
class Labelled:
    box: Box
    label: str  # one of LABELS


@dataclass(frozen=True)
class Detected:
    box: Box
    label: str | None  # None when only detecting
    with_mask: float | None = None  # p(with_mask), when classified
    score: float | None = None  # the detector's confidence


@dataclass(frozen=True)
class SceneResult:
    image: str
    labelled: list[Labelled]
    detected: list[Detected]
    seconds: float


def read_labels(path: Path) -> dict[str, list[Labelled]]:
    """image name -> its labelled faces, in file order."""
    scenes: dict[str, list[Labelled]] = {}
    try:
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    box = tuple(int(float(row[c])) for c in ("xmin", "ymin", "xmax", "ymax"))
                    label = row["label"]
                except (KeyError, TypeError, ValueError) as error:
                    raise ScenesError(f"{path} line {line}: expected image,xmin,ymin,xmax,ymax,label ({error})") from error
                if label not in LABELS:
                    raise ScenesError(f"{path} line {line}: label {label!r} is not one of {', '.join(LABELS)}")
                scenes.setdefault(row["image"], []).append(Labelled(box, label))
    except OSError as error:
        raise ScenesError(f"cannot read the labels {path}: {error}") from error
    return scenes


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def match(detected: list[Box], labelled: list[Box], min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one matching: (detection index, label index) pairs, highest IoU first."""
    candidates = sorted(
        ((box_iou(d, t), i, j) for i, d in enumerate(detected) for j, t in enumerate(labelled)),
        key=lambda c: (-c[0], c[1], c[2]),
    )
    used_detected, used_labelled, pairs = set(), set(), []
    for overlap, i, j in candidates:
        if overlap < min_iou:
            break
        if i not in used_detected and j not in used_labelled:
            used_detected.add(i)
            used_labelled.add(j)
            pairs.append((i, j))
    return pairs


def size_bucket(box: Box) -> str:
    longer = max(box[2] - box[0], box[3] - box[1])
    return "<24" if longer < 24 else "24-48" if longer <= 48 else ">48"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def scene_metrics(results: list[SceneResult], min_iou: float = MIN_IOU, list_missed: bool = False) -> dict:
    """The metrics of the module docstring from per-image results (labels None: detection only).

    ``list_missed`` adds ``missed``: every unmatched labelled face with the best IoU any detection
    reached on it (near 0: the face was not seen; 0.1-0.4: seen, but boxed differently).
    """
    found = {bucket: 0 for bucket in SIZE_BUCKETS}
    faces = {bucket: 0 for bucket in SIZE_BUCKETS}
    found_by_label = {label: 0 for label in LABELS}
    faces_by_label = {label: 0 for label in LABELS}
    detections = unmatched = 0
    labels_right = {bucket: 0 for bucket in SIZE_BUCKETS}
    labels_checked = {bucket: 0 for bucket in SIZE_BUCKETS}
    confusion = [[0] * len(LABELS) for _ in LABELS]
    without_detection, missed = 0, []
    classified = any(d.label is not None for r in results for d in r.detected)
    for result in results:
        pairs = match([d.box for d in result.detected], [t.box for t in result.labelled], min_iou)
        for truth in result.labelled:
            faces[size_bucket(truth.box)] += 1
            faces_by_label[truth.label] += 1
        for i, j in pairs:
            truth, guess = result.labelled[j], result.detected[i]
            bucket = size_bucket(truth.box)
            found[bucket] += 1
            found_by_label[truth.label] += 1
            if classified:
                labels_checked[bucket] += 1
                labels_right[bucket] += is_unmasked(guess.label) == is_unmasked(truth.label)
                confusion[LABELS.index(truth.label)][LABELS.index(guess.label)] += 1
        matched = {j for _, j in pairs}
        for j, truth in enumerate(result.labelled):
            if list_missed and j not in matched:
                best = max((box_iou(d.box, truth.box) for d in result.detected), default=0.0)
                missed.append({"image": result.image, "box": list(truth.box), "label": truth.label, "best_iou": round(best, 3)})
        detections += len(result.detected)
        unmatched += len(result.detected) - len(pairs)
        if not result.detected:
            without_detection += 1
    total_faces, total_found = sum(faces.values()), sum(found.values())
    report = {
        "images": len(results),
        "labelled_faces": total_faces,
        "detections": detections,
        "iou_threshold": min_iou,
        "recall": _ratio(total_found, total_faces),
        "recall_by_size": {b: {"recall": _ratio(found[b], faces[b]), "faces": faces[b]} for b in SIZE_BUCKETS},
        "recall_by_label": {
            label: {"recall": _ratio(found_by_label[label], faces_by_label[label]), "faces": faces_by_label[label]}
            for label in LABELS
        },
        "unmatched_detection_share": _ratio(unmatched, detections),
        "label_accuracy": _ratio(sum(labels_right.values()), sum(labels_checked.values())),
        "label_accuracy_faces": sum(labels_checked.values()),
        "label_accuracy_by_size": {
            b: {"accuracy": _ratio(labels_right[b], labels_checked[b]), "faces": labels_checked[b]} for b in SIZE_BUCKETS
        },
        "label_recall": {
            label: {"recall": _ratio(row[i], sum(row)), "faces": sum(row)} for i, (label, row) in enumerate(zip(LABELS, confusion))
        },
        "confusion_matrix": confusion,
        "unmasked_share_mae": _mean([row["error"] for row in image_shares(results)]),
        "images_with_detection": len(results) - without_detection,
        "images_without_detection": without_detection,
        "seconds_per_image": sum(r.seconds for r in results) / len(results) if results else None,
    }
    if list_missed:
        report["missed"] = missed
    return report


def image_shares(results: list[SceneResult]) -> list[dict]:
    """Per classified image with a labelled face and a detection: the labelled and the estimated unmasked
    share (over the counted faces, as ``POST /detect`` answers it) and the error."""
    rows = []
    for result in results:
        if not (result.labelled and result.detected and result.detected[0].label is not None):
            continue
        truth = sum(t.label in UNMASKED_LABELS for t in result.labelled) / len(result.labelled)
        counted = counted_faces(result.detected)
        estimated = sum(is_unmasked(d.label) for d in counted) / len(counted)
        rows.append({"image": result.image, "labelled": truth, "estimated": estimated, "error": abs(truth - estimated),
                     "faces": len(result.labelled), "detections": len(result.detected)})
    return rows


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def share_error_sources(results: list[SceneResult], min_iou: float = MIN_IOU) -> dict[str, float | None]:
    """The unmasked-share error as measured, and as it would be with one cause removed.

    ``labels_right``: every matched face labelled as labelled; ``incorrect_right``: only the matched
    ``incorrect`` faces (masks under the nose); ``no_unmatched``: detections that match no labelled
    face dropped; ``neither``: both causes removed, so what is left comes from missed faces.
    """

    matched = [dict(match([d.box for d in r.detected], [t.box for t in r.labelled], min_iou)) for r in results]

    def mae(fix_labels: str | None, drop_unmatched: bool) -> float | None:
        changed = []
        for result, pairs in zip(results, matched):
            kept = []
            for i, guess in enumerate(result.detected):
                if i not in pairs:
                    if not drop_unmatched:
                        kept.append(guess)
                    continue
                truth = result.labelled[pairs[i]].label
                if fix_labels == "all" or (fix_labels == "incorrect" and truth == "incorrect"):
                    guess = replace(guess, label=truth)
                kept.append(guess)
            changed.append(replace(result, detected=kept))
        return scene_metrics(changed, min_iou)["unmasked_share_mae"]

    return {
        "measured": mae(None, False),
        "incorrect_right": mae("incorrect", False),
        "labels_right": mae("all", False),
        "no_unmatched": mae(None, True),
        "neither": mae("all", True),
    }


def analyze_scenes(
    images: Path,
    labels: Path,
    detector: FaceDetector,
    predictor: Predictor | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> list[SceneResult]:
    """Per labelled image: its labelled faces and what the detector (and classifier) found."""
    scenes = read_labels(labels)
    names = sorted(scenes)[:limit]
    missing = [name for name in names if not (images / name).is_file()]
    if missing:
        raise ScenesError(f"{len(missing)} labelled images are not in {images}, e.g. {missing[0]}")
    analyzer = CrowdAnalyzer(detector, predictor) if predictor is not None else None
    results = []
    for name in tqdm(names, desc="scenes", disable=not progress):
        started = time.perf_counter()
        if analyzer is not None:
            faces = analyzer.analyze(images / name).faces
            detected = [Detected(f.box, f.label, f.with_mask, f.score) for f in faces]
        else:
            found = detector.detect(decode_image(images / name).convert("RGB"))
            detected = [Detected(f.box, None, None, f.score) for f in found]
        results.append(SceneResult(name, scenes[name], detected, time.perf_counter() - started))
    return results


def evaluate_scenes(
    images: Path,
    labels: Path,
    detector: FaceDetector,
    predictor: Predictor | None = None,
    limit: int | None = None,
    progress: bool = True,
    list_missed: bool = False,
) -> dict:
    """Run the detector (and, given a predictor, the classifier) over every labelled image."""
    results = analyze_scenes(images, labels, detector, predictor, limit, progress)
    return scene_metrics(results, list_missed=list_missed)
