"""Calibration: a temperature and class biases (Platt scaling for one unit), fitted on synthetic predictions with a
known answer, and folded into a Keras model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.special import softmax

from maskdetect.training import models
from maskdetect.training.calibration import (
    apply_scaling,
    calibrate_model,
    expected_calibration_error,
    fit_scaling,
    fold_into_model,
    logit,
    output_layer,
)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def three_class_predictions(n: int, seed: int, a: float = 1.0, b=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of a model whose true probabilities are softmax(a log p + b) of what it answers."""
    rng = np.random.default_rng(seed)
    answered = softmax(rng.normal(0.0, 2.0, (n, 3)), axis=1)
    truth = softmax(a * np.log(answered) + np.asarray(b), axis=1)
    labels = (rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    return labels, answered


@pytest.mark.parametrize("a, b", [(0.5, (0.0, 0.4, -0.3)), (2.0, (0.0, -1.0, 0.5)), (1.0, (0.0, 0.0, 0.0))])
def test_fit_scaling_recovers_the_temperature_and_biases_the_labels_were_drawn_with(a, b):
    labels, probabilities = three_class_predictions(60_000, seed=1, a=a, b=b)
    fitted = fit_scaling(labels, probabilities)
    assert set(fitted) == {"a", "b"} and len(fitted["b"]) == 3 and fitted["b"][0] == 0.0
    assert fitted["a"] == pytest.approx(a, abs=0.06)
    np.testing.assert_allclose(fitted["b"], b, atol=0.08)


@pytest.mark.parametrize("a, b", [(0.5, 0.3), (2.0, -1.0)])
def test_one_sigmoid_unit_gets_platt_scaling(a, b):
    with_mask = np.random.default_rng(0).uniform(0.01, 0.99, 40_000)
    labels = (np.random.default_rng(1).random(len(with_mask)) < sigmoid(a * logit(with_mask) + b)).astype(int)
    fitted = fit_scaling(labels, with_mask)
    assert fitted["a"] == pytest.approx(a, abs=0.06) and fitted["b"] == pytest.approx(b, abs=0.06)
    np.testing.assert_allclose(apply_scaling(with_mask, a, b), sigmoid(a * logit(with_mask) + b))


def test_apply_scaling_is_the_identity_at_one_and_zero_and_clips_certain_answers():
    probabilities = softmax(np.random.default_rng(2).normal(size=(5, 3)), axis=1)
    np.testing.assert_allclose(apply_scaling(probabilities, 1.0, [0, 0, 0]), probabilities, rtol=1e-9)
    scaled = apply_scaling(probabilities, 2.0, [0.0, 1.0, -1.0])
    np.testing.assert_allclose(scaled, softmax(2 * np.log(probabilities) + [0.0, 1.0, -1.0], axis=1))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    assert np.isfinite(apply_scaling(np.array([[1.0, 0.0, 0.0]]), 3.0, [0, 1, 0])).all()


def test_calibration_lowers_the_expected_calibration_error_of_overconfident_predictions():
    labels, probabilities = three_class_predictions(20_000, seed=3, a=1 / 3)  # logits three times too large
    fitted = fit_scaling(labels, probabilities)
    assert fitted["a"] == pytest.approx(1 / 3, abs=0.03)
    before = expected_calibration_error(labels, probabilities)
    held_out_labels, held_out = three_class_predictions(20_000, seed=4, a=1 / 3)  # judged on predictions it was not fitted on
    after = expected_calibration_error(held_out_labels, apply_scaling(held_out, fitted["a"], fitted["b"]))
    assert before > 0.1 and after < 0.02 and after < before / 5


def test_expected_calibration_error_of_hand_made_bins():
    # Two answers at confidence 0.9, one right: |0.5 - 0.9|; two at 0.6 (for without_mask), both right: |1 - 0.6|.
    labels = np.array([0, 2, 2, 2])
    probabilities = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.3, 0.1, 0.6], [0.3, 0.1, 0.6]])
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert expected_calibration_error(np.array([0, 1]), np.array([[1.0, 0, 0], [0, 1.0, 0]])) == 0.0
    # One sigmoid unit: p is p(label 1).
    assert expected_calibration_error(np.array([1, 0]), np.array([0.9, 0.9])) == pytest.approx(0.4)


def tiny_model(classes: int):
    """An untrained cnn1, seeded so that every run starts from the same weights."""
    keras.utils.set_random_seed(0)
    return models.cnn1(input_size=32, filters=4, inner=8, classes=classes)


def random_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 3), dtype=np.float32)


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [2, 2, 2, 2]], ids=["with_mask only", "without_mask only"])
def test_one_class_labels_are_refused_and_nothing_is_folded_in(labels):
    probabilities = softmax(np.random.default_rng(5).normal(size=(4, 3)), axis=1)
    with pytest.raises(ValueError, match="two classes"):
        fit_scaling(np.array(labels), probabilities)
    model = tiny_model(3)
    before = [w.copy() for w in output_layer(model).get_weights()]
    with pytest.raises(ValueError, match="two classes"):
        calibrate_model(model, np.array(labels), probabilities, "held-out")
    for got, expected in zip(output_layer(model).get_weights(), before):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("classes, a, b", [(3, 0.4, [0.0, 0.7, -0.2]), (3, 2.5, [0.0, -1.2, 0.3]), (2, 0.4, 0.7), (2, -1.0, 0.0)])
def test_folding_into_the_model_gives_the_scaled_outputs(classes, a, b):
    model = tiny_model(classes)
    images = random_images(16, seed=6)
    unfolded = model.predict_on_batch(images).astype(np.float64)
    assert unfolded.std(axis=0).max() > 1e-4  # answers that differ: the scaling has something to act on
    fold_into_model(model, a, b)
    np.testing.assert_allclose(model.predict_on_batch(images), apply_scaling(unfolded, a, b), atol=1e-5)


def test_calibrate_model_folds_the_fit_in_and_reports_it():
    model = tiny_model(3)
    images = random_images(96, seed=7)
    unfolded = model.predict_on_batch(images).astype(np.float64)
    # The untrained model's answers, sharpened around their mean: labels drawn from them, more than one class.
    truth = softmax(200 * (np.log(unfolded) - np.log(unfolded).mean(axis=0)), axis=1)
    labels = (np.random.default_rng(8).random(len(truth))[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    assert len(np.unique(labels)) >= 2
    report = calibrate_model(model, labels, unfolded, "maskwear-validation")
    assert list(report) == ["method", "a", "b", "fitted_on", "n", "ece_before", "ece_after"]
    assert report["method"] == "temperature and class bias" and report["fitted_on"] == "maskwear-validation" and report["n"] == 96
    fitted = fit_scaling(labels, unfolded)
    assert report["a"] == pytest.approx(fitted["a"]) and report["b"] == pytest.approx(fitted["b"])
    calibrated = apply_scaling(unfolded, report["a"], report["b"])
    np.testing.assert_allclose(model.predict_on_batch(images), calibrated, atol=1e-5)
    assert report["ece_before"] == pytest.approx(expected_calibration_error(labels, unfolded), abs=1e-4)
    assert report["ece_after"] == pytest.approx(expected_calibration_error(labels, calibrated), abs=1e-4)
    assert report["ece_after"] < report["ece_before"]
