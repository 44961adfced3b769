"""Metrics for the classifier: the three labels, and the question most sets ask, masked or not.

Labels are indices into :data:`~maskdetect.core.constants.LABELS` (0 with_mask, 1 incorrect,
2 without_mask); probabilities are (n, 3) in that order, as :class:`~maskdetect.core.inference.Predictor`
answers them. "Masked" is the label with_mask; incorrect (a mask below the nose) and without_mask
are not masked, as the scene labels count them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score
from tqdm.auto import tqdm

from ..core.constants import LABELS, MASKED
from ..core.files import class_files
from ..core.images import IMAGE_SUFFIXES
from ..core.inference import label_probabilities

MASKED_INDEX = LABELS.index(MASKED)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Masked or not (``accuracy``, ``balanced_accuracy``, ``roc_auc`` of p(with_mask), ``f1`` with_mask
    positive), the three labels (``three_way``: accuracy, balanced accuracy and recall of each label
    present) and the 3x3 confusion matrix (rows the true label, columns the predicted, in LABELS order).

    ``probabilities``: (n, 3), or a two-class model's p(with_mask) (read as (p, 0, 1 - p)).
    """
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = label_probabilities(probabilities)
    predicted = probabilities.argmax(axis=1)
    masked, predicted_masked = labels == MASKED_INDEX, predicted == MASKED_INDEX
    both = len(np.unique(masked)) == 2
    present = [i for i in range(len(LABELS)) if (labels == i).any()]
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(masked, predicted_masked)),
        "balanced_accuracy": float(balanced_accuracy_score(masked, predicted_masked)) if both else None,
        "roc_auc": float(roc_auc_score(masked, probabilities[:, MASKED_INDEX])) if both else None,
        "f1": float(f1_score(masked, predicted_masked, zero_division=0)),
        "three_way": {
            "accuracy": float(accuracy_score(labels, predicted)),
            "balanced_accuracy": float(np.mean([(predicted[labels == i] == i).mean() for i in present])) if present else None,
            "recall": {LABELS[i]: float((predicted[labels == i] == i).mean()) for i in present},
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=list(range(len(LABELS)))).tolist(),
    }


def labelled_files(directory) -> tuple[list, list[int]]:
    """The image files of DIR/<label> for each label folder there (with_mask/ and without_mask/ at least),
    in natural order, with their labels' indices."""
    directory = Path(directory)
    for name in (MASKED, "without_mask"):
        if not (directory / name).is_dir():
            raise FileNotFoundError(f"{directory / name} is missing: the folder must hold with_mask/ and without_mask/ (incorrect/ too, if it has some)")
    files, labels = [], []
    for index, name in enumerate(LABELS):
        found = class_files(directory, name, IMAGE_SUFFIXES) if (directory / name).is_dir() else []
        files += found
        labels += [index] * len(found)
    if not files:
        raise FileNotFoundError(f"no images in the label folders of {directory}")
    return files, labels


def predict_face_folder(directory, predictor, batch_size: int = 64, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) for the face crops in DIR/<label>/, each classified as it is
    (e.g. ``realworld-dev``), through the one inference path, :meth:`~maskdetect.core.inference.Predictor.predict_batch`."""
    files, labels = labelled_files(directory)
    answers = []
    for start in tqdm(range(0, len(files), batch_size), desc="faces", disable=not progress):
        answers += predictor.predict_batch(files[start : start + batch_size])
    return np.array(labels), answer_probabilities(answers)


def answer_probabilities(answers: list) -> np.ndarray:
    """(n, 3) from Predictions (or anything with with_mask, incorrect and without_mask)."""
    return np.array([[getattr(a, label) for label in LABELS] for a in answers], dtype=np.float64).reshape(len(answers), len(LABELS))


def evaluate_face_folder(directory, predictor, batch_size: int = 64, progress: bool = True) -> dict:
    """:func:`classification_metrics` of ``predictor`` on the face crops in DIR/<label>/."""
    labels, probabilities = predict_face_folder(directory, predictor, batch_size, progress)
    return {**classification_metrics(labels, probabilities), "model": predictor.name}


def evaluate_photo_folder(directory, predictor, progress: bool = True) -> dict:
    """:func:`classification_metrics` of ``predictor`` on the photos in DIR/<label>/, each answered as
    ``POST /predict`` answers it (:meth:`maskdetect.core.inference.Predictor.predict`: the largest face
    found, else the whole photo), with how many had a face.
    """
    files, labels = labelled_files(directory)
    answers = [predictor.predict(path) for path in tqdm(files, desc="photos", disable=not progress)]
    return {
        **classification_metrics(np.array(labels), answer_probabilities(answers)),
        "face_centred": predictor.subject_detector is not None,
        "faces_found": sum(a.face is not None for a in answers),
        "model": predictor.name,
    }
