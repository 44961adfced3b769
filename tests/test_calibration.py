"""Platt scaling: fitted on synthetic predictions with a known answer, and folded into a Keras model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from maskdetect.training import models
from maskdetect.training.calibration import (
    OUTPUT_LAYER,
    apply_platt,
    calibrate_model,
    expected_calibration_error,
    fit_platt,
    fold_into_model,
    logit,
)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def labels_drawn_from(with_mask: np.ndarray, a: float, b: float, seed: int) -> np.ndarray:
    """Labels whose true p(with_mask) is sigmoid(a * logit(with_mask) + b)."""
    return (np.random.default_rng(seed).random(len(with_mask)) < sigmoid(a * logit(with_mask) + b)).astype(int)


def overconfident_predictions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of a model whose logits are three times too large: right less often than it claims."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < sigmoid(true_logit)).astype(int)
    return labels, sigmoid(3.0 * true_logit)


@pytest.mark.parametrize("a, b", [(0.5, 0.3), (2.0, -1.0), (1.0, 0.0)])
def test_fit_platt_recovers_the_slope_and_intercept_the_labels_were_drawn_with(a, b):
    with_mask = np.random.default_rng(0).uniform(0.01, 0.99, 40_000)
    fitted = fit_platt(labels_drawn_from(with_mask, a, b, seed=1), with_mask)
    assert set(fitted) == {"a", "b"}
    assert fitted["a"] == pytest.approx(a, abs=0.06) and fitted["b"] == pytest.approx(b, abs=0.06)


def test_apply_platt_is_the_sigmoid_of_the_scaled_logit_and_the_identity_at_one_and_zero():
    with_mask = np.array([0.02, 0.3, 0.5, 0.8, 0.999])
    np.testing.assert_allclose(apply_platt(with_mask, 1.0, 0.0), with_mask, rtol=1e-9)
    np.testing.assert_allclose(apply_platt(with_mask, 2.0, -0.5), sigmoid(2.0 * np.log(with_mask / (1 - with_mask)) - 0.5))
    assert np.isfinite(apply_platt(np.array([0.0, 1.0]), 3.0, 1.0)).all()  # certain answers are clipped, not infinite


def test_calibration_lowers_the_expected_calibration_error_of_overconfident_predictions():
    labels, with_mask = overconfident_predictions(20_000, seed=2)
    fitted = fit_platt(labels, with_mask)
    assert fitted["a"] == pytest.approx(1 / 3, abs=0.03)  # undoes the tripled logits
    before = expected_calibration_error(labels, with_mask)
    held_out_labels, held_out = overconfident_predictions(20_000, seed=3)  # judged on predictions it was not fitted on
    after = expected_calibration_error(held_out_labels, apply_platt(held_out, fitted["a"], fitted["b"]))
    assert before > 0.1 and after < 0.02 and after < before / 5


def test_expected_calibration_error_of_hand_made_bins():
    # Two answers at confidence 0.9, one right: |0.5 - 0.9|; two at 0.6 (as 0.4 for without_mask), both right: |1 - 0.6|.
    labels = np.array([1, 0, 0, 0])
    with_mask = np.array([0.9, 0.9, 0.4, 0.4])
    assert expected_calibration_error(labels, with_mask) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


@pytest.mark.parametrize("labels", [[1, 1, 1, 1], [0, 0, 0, 0]], ids=["with_mask only", "without_mask only"])
def test_one_class_labels_are_refused(labels):
    with_mask = np.array([0.2, 0.4, 0.6, 0.8])
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.array(labels), with_mask)
    model = tiny_model()
    before = [w.copy() for w in model.get_layer(OUTPUT_LAYER).get_weights()]
    with pytest.raises(ValueError, match="both classes"):
        calibrate_model(model, np.array(labels), with_mask, "held-out")
    for got, expected in zip(model.get_layer(OUTPUT_LAYER).get_weights(), before):
        np.testing.assert_array_equal(got, expected)  # nothing folded in


def tiny_model():
    """An untrained cnn1, seeded so that every run starts from the same weights."""
    keras.utils.set_random_seed(0)
    return models.cnn1(input_size=32, filters=4, inner=8)


def random_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 3), dtype=np.float32)


@pytest.mark.parametrize("a, b", [(0.4, 0.7), (2.5, -1.2), (-1.0, 0.0)])
def test_folding_into_the_model_gives_the_platt_scaled_outputs(a, b):
    model = tiny_model()
    images = random_images(16, seed=4)
    unfolded = model.predict_on_batch(images).ravel().astype(np.float64)
    assert unfolded.std() > 1e-4  # answers that differ: the scaling has something to act on
    fold_into_model(model, a, b)
    folded = model.predict_on_batch(images).ravel()
    np.testing.assert_allclose(folded, apply_platt(unfolded, a, b), atol=1e-5)


def test_calibrate_model_folds_the_fit_in_and_reports_it():
    model = tiny_model()
    images = random_images(64, seed=5)
    unfolded = model.predict_on_batch(images).ravel().astype(np.float64)
    # The untrained model's answers, sharpened around their median: both classes, in known proportions.
    labels = labels_drawn_from(unfolded, 40.0, -40.0 * float(np.median(logit(unfolded))), seed=6)
    assert 0.25 < labels.mean() < 0.75
    report = calibrate_model(model, labels, unfolded, "validation-crops")
    assert list(report) == ["method", "a", "b", "fitted_on", "n", "ece_before", "ece_after"]
    assert report["method"] == "platt" and report["fitted_on"] == "validation-crops" and report["n"] == 64
    fitted = fit_platt(labels, unfolded)
    assert (report["a"], report["b"]) == pytest.approx((fitted["a"], fitted["b"]))
    calibrated = apply_platt(unfolded, report["a"], report["b"])
    np.testing.assert_allclose(model.predict_on_batch(images).ravel(), calibrated, atol=1e-5)
    assert report["ece_before"] == pytest.approx(expected_calibration_error(labels, unfolded), abs=1e-4)
    assert report["ece_after"] == pytest.approx(expected_calibration_error(labels, calibrated), abs=1e-4)
