"""Calibrated probabilities: a temperature and a bias per class, fitted on held-out training sources, folded into the model.

The three-class model ends in ``softmax(z)`` over with_mask, incorrect and without_mask. Calibration
fits ``softmax(a z + b)`` (one temperature ``1 / a`` for all classes, one bias per class) to
labelled held-out faces by maximum likelihood. Since ``z = w x + c`` is the last Dense layer, the
calibrated model is the same network with that layer's weights ``a w`` and bias ``a c + b``: the .h5,
the .tflite and the Lambda all answer calibrated probabilities with no extra step at inference.
``softmax(a log p + b)`` equals ``softmax(a z + b)`` (``log p`` is ``z`` less a constant per image),
so the fit needs only the model's probabilities. A two-class model (one sigmoid unit) is the same
with ``sigmoid``: Platt scaling.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

EPSILON = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def _scores(probabilities: np.ndarray) -> np.ndarray:
    """(n, k) probabilities -> what the scaling acts on: log p, or for a sigmoid unit (k = 1) the logit as the second of two classes."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1 or probabilities.shape[1] == 1:
        return np.stack([np.zeros(len(probabilities)), logit(probabilities.reshape(-1))], axis=1)
    return np.log(np.clip(probabilities, EPSILON, 1.0))


def apply_scaling(probabilities: np.ndarray, a: float, b) -> np.ndarray:
    """The calibrated probabilities, in the shape given: softmax(a log p + b), or sigmoid(a logit(p) + b) for one unit."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    scores = _scores(probabilities)
    if probabilities.ndim == 1 or probabilities.shape[1] == 1:
        calibrated = 1.0 / (1.0 + np.exp(-(a * scores[:, 1] + float(np.ravel(b)[0]))))
        return calibrated.reshape(probabilities.shape)
    return softmax(a * scores + np.asarray(b, dtype=np.float64), axis=1)


def fit_scaling(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """``{"a", "b"}`` that make the scaled probabilities most likely for the labels.

    ``labels`` are class indices (for one sigmoid unit: 1 = the unit's class); ``b`` is one bias per
    class (relative to the first), or one number for a sigmoid unit.
    """
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64)
    one_unit = probabilities.ndim == 1 or probabilities.shape[1] == 1
    classes = 2 if one_unit else probabilities.shape[1]
    if len(np.unique(labels)) < 2:
        raise ValueError("calibrating needs held-out faces of at least two classes")
    scores = _scores(probabilities)
    rows = np.arange(len(labels))

    def loss(parameters: np.ndarray) -> float:
        a, b = np.exp(parameters[0]), np.concatenate([[0.0], parameters[1:]])
        return -log_softmax(a * scores + b, axis=1)[rows, labels].mean()

    fitted = minimize(loss, np.zeros(classes), method="L-BFGS-B")
    a, b = float(np.exp(fitted.x[0])), [0.0, *map(float, fitted.x[1:])]
    return {"a": a, "b": b[1] if one_unit else b}


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width bins of the top probability, weighted by their size.

    ``probabilities``: (n, k), or p of one sigmoid unit (label 1 = its class).
    """
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1 or probabilities.shape[1] == 1:
        p = probabilities.reshape(-1)
        probabilities = np.stack([1 - p, p], axis=1)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    which = np.clip(np.digitize(confidence, np.linspace(0.0, 1.0, bins + 1)[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            error += chosen.mean() * abs((predicted[chosen] == labels[chosen]).mean() - confidence[chosen].mean())
    return float(error)


def output_layer(model):
    """The model's last Dense layer: one sigmoid unit, or the softmax over the classes."""
    return model.layers[-1]


def fold_into_model(model, a: float, b) -> None:
    """Make ``model`` answer softmax(a z + b) (sigmoid for one unit) by rescaling its last Dense layer in place."""
    layer = output_layer(model)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * a, bias * a + np.asarray(b, dtype=bias.dtype)])


def calibrate_model(model, labels: np.ndarray, probabilities: np.ndarray, held_out: str) -> dict:
    """Fit the scaling on held-out predictions, fold it into ``model``; the report for metrics.json."""
    fitted = fit_scaling(labels, probabilities)
    fold_into_model(model, fitted["a"], fitted["b"])
    calibrated = apply_scaling(probabilities, fitted["a"], fitted["b"])
    return {
        "method": "temperature and class bias" if np.ndim(fitted["b"]) else "platt",
        **fitted,
        "fitted_on": held_out,
        "n": int(len(labels)),
        "ece_before": round(expected_calibration_error(labels, probabilities), 4),
        "ece_after": round(expected_calibration_error(labels, calibrated), 4),
    }
