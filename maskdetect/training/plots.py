"""What the notebooks show: image grids, learning curves, confusion matrices, ROC curves, metrics tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from ..core.constants import LABELS, MASKED
from ..core.images import decode_image

SHORT = {"with_mask": "with", "incorrect": "incorrect", "without_mask": "without"}  # axis ticks


def image_grid(images, titles=None, columns: int = 6, size: float = 2.0, suptitle: str | None = None):
    """Paths, PIL images or arrays in a grid, each with an optional title."""
    images = list(images)
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * 1.1), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for index, image in enumerate(images):
        axis = axes.ravel()[index]
        if isinstance(image, (str, Path)):
            image = decode_image(Path(image)).convert("RGB")
        axis.imshow(np.squeeze(image), cmap="gray" if np.ndim(image) == 2 or np.shape(image)[-1] == 1 else None)
        if titles is not None:
            axis.set_title(titles[index], fontsize=8)
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


def learning_curves(history: dict, title: str = "", kept_epoch: int | None = None):
    """Loss and accuracy per epoch, train against validation; a dotted line at the kept epoch (1-based)."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(history[metric], label="train")
        axis.plot(history[f"val_{metric}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    if kept_epoch is not None:
        for axis in axes:
            axis.axvline(kept_epoch - 1, color="grey", linestyle=":")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def confusion(matrix, title: str = "", axis=None):
    """A confusion matrix (rows true, columns predicted, in LABELS order) as a labelled heat map."""
    matrix = np.asarray(matrix)
    if axis is None:
        _, axis = plt.subplots(figsize=(3.5, 3))
    axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ticks = [SHORT[label] for label in LABELS]
    axis.set_xticks(range(len(LABELS)), ticks)
    axis.set_yticks(range(len(LABELS)), ticks)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return axis


def roc_curves(curves: dict, title: str = "ROC: masked or not"):
    """``curves``: name -> (labels as indices into LABELS, probabilities (n, 3)); p(with_mask) against masked or not."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    for name, (labels, probabilities) in curves.items():
        fpr, tpr, _ = roc_curve(np.asarray(labels) == LABELS.index(MASKED), np.asarray(probabilities)[:, LABELS.index(MASKED)])
        axis.plot(fpr, tpr, label=name)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate (with_mask)")
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def metrics_table(metrics: dict) -> pd.DataFrame:
    """name -> classification metrics (maskdetect.training.evaluate) as one row per name."""
    table = pd.DataFrame(metrics).T[["n", "accuracy", "balanced_accuracy", "roc_auc", "f1"]]
    return table.astype({"n": int}).round(3)


def evaluation(result, sets: dict) -> None:
    """A trained model's confusion matrix on each evaluated set, then their ROC curves."""
    figure, axes = plt.subplots(1, len(result.metrics), figsize=(4 * len(result.metrics), 3.2))
    for axis, (name, metrics) in zip(np.atleast_1d(axes), result.metrics.items()):
        confusion(metrics["confusion_matrix"], name, axis)
    figure.tight_layout()
    roc_curves({name: (sets[name][1], p) for name, p in result.predictions.items()})


def confident_mistakes(result, sets: dict, names=("test", "realworld-dev"), most: int = 12) -> None:
    """For each set: how many images get the wrong label, and the ``most`` the model was surest of."""
    for name in names:
        if name not in result.predictions:
            continue
        images, labels, _ = sets[name]
        probabilities = result.predictions[name]
        predicted = probabilities.argmax(axis=1)
        wrong = np.flatnonzero(predicted != labels)
        worst = wrong[np.argsort(-probabilities[wrong].max(axis=1))][:most]
        print(f"{name}: {len(wrong)} of {len(labels)} wrong")
        if len(worst):
            titles = [f"true {SHORT[LABELS[labels[i]]]}\n{SHORT[LABELS[predicted[i]]]} {probabilities[i].max():.2f}" for i in worst]
            image_grid(images[worst], titles, size=1.6, suptitle=f"{name}: most confident mistakes")
