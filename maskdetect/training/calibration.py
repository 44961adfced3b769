"""One calibrated probability: Platt scaling fitted on held-out training sources, folded into the model.

The model ends in one sigmoid unit, ``p = sigmoid(z)``. Platt scaling fits ``sigmoid(a z + b)`` to
labelled held-out faces; since ``z = w x + c`` is the last Dense layer, the calibrated model is
the same network with that layer's weights ``a w`` and bias ``a c + b``: the .h5, the .tflite and
the Lambda all answer calibrated probabilities with no extra step at inference.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

OUTPUT_LAYER = "with_mask"  # maskdetect.training.models names the sigmoid unit so
EPSILON = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def fit_platt(labels: np.ndarray, with_mask: np.ndarray) -> dict:
    """``{"a", "b"}`` so that sigmoid(a * logit(p) + b) matches the labels (1 = with_mask)."""
    labels = np.asarray(labels).astype(int).ravel()
    if len(np.unique(labels)) != 2:
        raise ValueError("calibrating needs held-out faces of both classes")
    regression = LogisticRegression(C=1e6, max_iter=1000).fit(logit(with_mask).reshape(-1, 1), labels)
    return {"a": float(regression.coef_[0, 0]), "b": float(regression.intercept_[0])}


def apply_platt(with_mask: np.ndarray, a: float, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(a * logit(with_mask) + b)))


def expected_calibration_error(labels: np.ndarray, with_mask: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their size."""
    labels = np.asarray(labels).astype(int).ravel()
    with_mask = np.asarray(with_mask, dtype=np.float64).ravel()
    predicted = (with_mask >= 0.5).astype(int)
    confidence = np.where(predicted == 1, with_mask, 1 - with_mask)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            error += chosen.mean() * abs((predicted[chosen] == labels[chosen]).mean() - confidence[chosen].mean())
    return float(error)


def fold_into_model(model, a: float, b: float) -> None:
    """Make ``model`` answer sigmoid(a z + b) by rescaling its last Dense layer in place."""
    layer = model.get_layer(OUTPUT_LAYER)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * a, bias * a + b])


def calibrate_model(model, labels: np.ndarray, with_mask: np.ndarray, held_out: str) -> dict:
    """Fit Platt scaling on held-out predictions, fold it into ``model``; the report for metrics.json."""
    fitted = fit_platt(labels, with_mask)
    fold_into_model(model, fitted["a"], fitted["b"])
    calibrated = apply_platt(with_mask, fitted["a"], fitted["b"])
    return {
        "method": "platt",
        **fitted,
        "fitted_on": held_out,
        "n": int(len(labels)),
        "ece_before": round(expected_calibration_error(labels, with_mask), 4),
        "ece_after": round(expected_calibration_error(labels, calibrated), 4),
    }
