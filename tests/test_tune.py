"""The search is a classifier search with group-aware folds and probability scoring."""

import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.model_selection import StratifiedKFold, check_cv

from maskdetect.training import tune
from tests.samples import photo


def test_scikeras_wrapper_is_recognised_as_a_classifier():
    pipeline = tune.search_pipeline()
    assert is_classifier(pipeline.named_steps["classifier"])
    assert is_classifier(pipeline)
    # What an integer cv becomes for it: stratified, not plain KFold.
    assert isinstance(check_cv(3, np.array([0, 1] * 6), classifier=is_classifier(pipeline)), StratifiedKFold)


@pytest.fixture
def grouped_images(tmp_path):
    """24 images in 8 groups of 3 copies; a group is all one class."""
    paths, labels, groups = [], [], []
    for g in range(8):
        label = g % 2
        base = photo(g, size=(40, 40))
        for copy in range(3):
            path = tmp_path / f"g{g}_{copy}.png"
            base.rotate(copy * 5).save(path)
            paths.append(str(path))
            labels.append(label)
            groups.append(f"g{g}")
    return np.array(paths), np.array(labels), np.array(groups)


@pytest.mark.slow
def test_search_uses_group_folds_and_probability_scoring(grouped_images, monkeypatch):
    paths, labels, groups = grouped_images
    fitted_on, scored = [], []
    original_fit, original_proba = tune.ImageLoader.fit, tune.MaskClassifier.predict_proba

    def recording_fit(self, x, y=None):
        fitted_on.append(set(np.ravel(x)))
        return original_fit(self, x, y)

    def recording_proba(self, x, **kwargs):
        scored.append(len(x))
        return original_proba(self, x, **kwargs)

    monkeypatch.setattr(tune.ImageLoader, "fit", recording_fit)
    monkeypatch.setattr(tune.MaskClassifier, "predict_proba", recording_proba)
    space = {"images__size": [16], "classifier__model__filters": [4], "classifier__model__inner": [8]}
    result = tune.search(paths, labels, groups, n_iter=1, folds=2, epochs=1, space=space, verbose=0)

    assert len(fitted_on) == 2 and sum(scored) == len(paths)  # every image scored once, by probability
    group_of = dict(zip(paths, groups))
    for train_paths in fitted_on:
        held_out = set(paths) - train_paths
        assert {group_of[p] for p in train_paths}.isdisjoint({group_of[p] for p in held_out})
    assert np.isfinite(result.cv_results_["mean_test_score"]).all()
    assert result.scorer_ is not None and "roc_auc" in str(result.scoring)


def test_training_files_follow_the_committed_split(data_dir):
    paths, labels, groups = tune.training_files("validation")
    assert len(paths) == len(labels) == len(groups) == 256
    assert paths[0].startswith(str(data_dir / "validation"))
    assert set(labels) == {0, 1}
