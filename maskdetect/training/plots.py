"""What the notebooks show: image grids, learning curves, confusion matrices, ROC curves, metrics tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from ..core.images import decode_image

LABELS = ("without_mask", "with_mask")  # index = label value


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
    """A confusion matrix (rows true, columns predicted) as a labelled heat map."""
    matrix = np.asarray(matrix)
    if axis is None:
        _, axis = plt.subplots(figsize=(3.5, 3))
    axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    axis.set_xticks([0, 1], LABELS)
    axis.set_yticks([0, 1], LABELS)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return axis


def roc_curves(curves: dict, title: str = "ROC"):
    """``curves``: name -> (labels, p(with_mask))."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
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


def confident_mistakes(result, sets: dict, names=("test", "realworld-dev"), threshold: float = 0.5, most: int = 12) -> None:
    """For each set: how many images are wrong, and the ``most`` the model was surest of."""
    for name in names:
        if name not in result.predictions:
            continue
        images, labels, _ = sets[name]
        p = result.predictions[name]
        wrong = np.flatnonzero((p >= threshold) != (labels == 1))
        worst = wrong[np.argsort(-np.abs(p[wrong] - threshold))][:most]
        print(f"{name}: {len(wrong)} of {len(labels)} wrong")
        if len(worst):
            titles = [f"true {LABELS[int(labels[i])]}\np={p[i]:.2f}" for i in worst]
            image_grid(images[worst], titles, size=1.6, suptitle=f"{name}: most confident mistakes")
