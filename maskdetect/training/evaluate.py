"""Metrics for a with_mask / without_mask classifier (label 1 = with_mask)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from tqdm.auto import tqdm

from ..core.constants import CLASSES, THRESHOLD
from ..core.files import class_files
from ..core.images import IMAGE_SUFFIXES


def classification_metrics(labels: np.ndarray, with_mask: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """Accuracy, balanced accuracy, ROC AUC, F1 (with_mask positive), confusion matrix.

    The confusion matrix rows are the true class, columns the predicted one, in the
    order [without_mask, with_mask].
    """
    labels = np.asarray(labels).astype(int).ravel()
    with_mask = np.asarray(with_mask, dtype=float).ravel()
    predicted = (with_mask >= threshold).astype(int)
    both = len(np.unique(labels)) == 2
    return {
        "n": int(len(labels)),
        "threshold": threshold,
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)) if both else None,
        "roc_auc": float(roc_auc_score(labels, with_mask)) if both else None,
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }


def labelled_files(directory) -> tuple[list, list[int]]:
    """The image files of DIR/with_mask (label 1) and DIR/without_mask (label 0), in natural order."""
    directory = Path(directory)
    files, labels = [], []
    for name in CLASSES:
        if not (directory / name).is_dir():
            raise FileNotFoundError(f"{directory / name} is missing: the folder must hold with_mask/ and without_mask/")
        found = class_files(directory, name, IMAGE_SUFFIXES)
        files += found
        labels += [int(name == "with_mask")] * len(found)
    if not files:
        raise FileNotFoundError(f"no images in {directory}/with_mask or {directory}/without_mask")
    return files, labels


def predict_face_folder(directory, predictor, batch_size: int = 64, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(labels, p(with_mask)) for DIR/with_mask/* (label 1) and DIR/without_mask/* (label 0).

    The files are classified as they are (they should be face crops, e.g. ``realworld-dev``),
    through the one inference path, :meth:`maskdetect.core.inference.Predictor.predict_batch`.
    """
    files, labels = labelled_files(directory)
    with_mask = []
    for start in tqdm(range(0, len(files), batch_size), desc="faces", disable=not progress):
        with_mask += [p.with_mask for p in predictor.predict_batch(files[start : start + batch_size])]
    return np.array(labels), np.array(with_mask)


def evaluate_face_folder(directory, predictor, batch_size: int = 64, progress: bool = True) -> dict:
    """:func:`classification_metrics` of ``predictor`` on DIR/with_mask/* and DIR/without_mask/*."""
    labels, with_mask = predict_face_folder(directory, predictor, batch_size, progress)
    return {**classification_metrics(labels, with_mask, predictor.threshold), "model": predictor.name}


def evaluate_photo_folder(directory, predictor, progress: bool = True) -> dict:
    """:func:`classification_metrics` of ``predictor`` on the photos in DIR/with_mask and DIR/without_mask,
    each answered as ``POST /predict`` answers it (:meth:`maskdetect.core.inference.Predictor.predict`:
    the largest face found, else the whole photo), with how many had a face.
    """
    files, labels = labelled_files(directory)
    answers = [predictor.predict(path) for path in tqdm(files, desc="photos", disable=not progress)]
    metrics = classification_metrics(np.array(labels), np.array([a.with_mask for a in answers]), predictor.threshold)
    return {
        **metrics,
        "face_centred": predictor.subject_detector is not None,
        "faces_found": sum(a.face is not None for a in answers),
        "model": predictor.name,
    }
