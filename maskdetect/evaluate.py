"""Metrics for a with_mask / without_mask classifier (label 1 = with_mask)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from .config import THRESHOLD  # the one threshold; callers may import it from here


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
