"""Hyper-parameter search: RandomizedSearchCV over a scikeras KerasClassifier.

Cross-validation is group-aware (StratifiedGroupKFold on the near-duplicate groups of
``data/splits.csv``), so no photo's twin sits in the fold that scores it.

scikeras 0.13 predates scikit-learn 1.6's estimator tags: its ``KerasClassifier`` lists
``ClassifierMixin`` after ``BaseEstimator``, so ``is_classifier`` is False, an integer
``cv`` silently becomes plain KFold and ``roc_auc`` scoring refuses to call
``predict_proba``. :class:`MaskClassifier` declares the tags itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import RandomizedSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import ClassifierTags

from ..core.images import preprocess
from ..data.split import read_splits
from ..settings import Settings

SEARCH_SPACE = {
    "images__size": [64, 100, 128],
    "classifier__model__filters": [16, 32, 64],
    "classifier__model__inner": [32, 64, 128],
    "classifier__model__dropout": [0.2, 0.35, 0.5],
    "classifier__model__learning_rate": [3e-4, 1e-3, 3e-3],
    "classifier__batch_size": [16, 32, 64],
}


class MaskClassifier(KerasClassifier):
    """A KerasClassifier that scikit-learn >= 1.6 recognises as a classifier."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.required = True
        return tags


@lru_cache(maxsize=20_000)
def _load(path: str, size: int, channels: int) -> np.ndarray:
    return preprocess(Path(path), size, channels)


class ImageLoader(TransformerMixin, BaseEstimator):
    """File paths -> model input, through the one preprocessing function (cached)."""

    def __init__(self, size: int = 100, channels: int = 3):
        self.size = size
        self.channels = channels

    def fit(self, paths, labels=None):
        return self

    def transform(self, paths):
        return np.stack([_load(str(p), self.size, self.channels) for p in np.ravel(paths)])


def build_for_search(
    meta: dict,
    model_name: str = "cnn2",
    filters: int = 32,
    inner: int = 64,
    dropout: float = 0.5,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
):
    """scikeras calls this with the data's shape in ``meta``: input size follows the loader."""
    from .models import BUILDERS

    _, size, _, channels = meta["X_shape_"]
    return BUILDERS[model_name](
        input_size=size,
        channels=channels,
        filters=filters,
        inner=inner,
        dropout=dropout,
        learning_rate=learning_rate,
        optimizer=optimizer,
    )


def search_pipeline(model_name: str = "cnn2", epochs: int = 10, seed: int = 1) -> Pipeline:
    classifier = MaskClassifier(
        model=build_for_search,
        model__model_name=model_name,
        model__filters=32,
        model__inner=64,
        model__dropout=0.5,
        model__learning_rate=1e-3,
        epochs=epochs,
        batch_size=32,
        random_state=seed,
        verbose=0,
    )
    return Pipeline([("images", ImageLoader()), ("classifier", classifier)])


def training_files(split: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(paths, labels, groups) of a materialised split, from data/splits.csv."""
    rows = [r for r in read_splits() if r["split"] == split]
    root = Settings.from_env().data_dir / split
    paths = np.array([str(root / r["class"] / r["file"]) for r in rows])
    labels = np.array([1 if r["class"] == "with_mask" else 0 for r in rows])
    groups = np.array([r["group"] for r in rows])
    return paths, labels, groups


def search(
    paths: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    n_iter: int = 10,
    folds: int = 3,
    epochs: int = 10,
    space: dict | None = None,
    model_name: str = "cnn2",
    seed: int = 1,
    verbose: int = 1,
) -> RandomizedSearchCV:
    """Randomised search scored by ROC AUC on group-aware stratified folds."""
    searcher = RandomizedSearchCV(
        search_pipeline(model_name, epochs, seed),
        space or SEARCH_SPACE,
        n_iter=n_iter,
        scoring="roc_auc",
        cv=StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed),
        random_state=seed,
        refit=False,
        error_score="raise",
        verbose=verbose,
    )
    return searcher.fit(paths, labels, groups=groups)
