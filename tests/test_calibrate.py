"""The crowd threshold: chosen on real photos, recorded beside the model, used by crowd analysis."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from maskdetect.cli import main
from maskdetect.crowd import CrowdAnalyzer
from maskdetect.evaluate import choose_threshold
from maskdetect.faces import Face
from maskdetect.inference import Predictor


def test_the_chosen_threshold_separates_shifted_classes():
    # Masked faces score low (0.1-0.4), unmasked lower still (0-0.08): 0.5 calls everything
    # unmasked, a threshold between the two groups separates them.
    rng = np.random.default_rng(0)
    with_mask, without = rng.uniform(0.1, 0.4, 400), rng.uniform(0.0, 0.08, 400)
    labels = np.r_[np.ones(400), np.zeros(400)]
    chosen = choose_threshold(labels, np.r_[with_mask, without])
    assert 0.08 < chosen["threshold"] <= 0.1
    assert chosen["balanced_accuracy"] == 1.0 and chosen["cross_fitted_balanced_accuracy"] == 1.0
    assert chosen["balanced_accuracy_at_0.5"] == 0.5
    assert chosen["n"] == 800


def test_near_ties_go_to_the_threshold_nearest_the_default():
    # Perfectly separated at anything in (0.3, 0.7]: the rule keeps 0.5.
    labels = np.r_[np.ones(50), np.zeros(50)]
    assert choose_threshold(labels, np.r_[np.full(50, 0.7), np.full(50, 0.3)])["threshold"] == 0.5


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.ones(5), np.full(5, 0.4))


def faces_folder(root, with_mask_grey, without_grey, n=6):
    for name, grey in (("with_mask", with_mask_grey), ("without_mask", without_grey)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (60, 60), (grey + i,) * 3).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def described_model(model_file, tmp_path):
    """The brightness model beside a metrics.json that describes it, with another key to keep."""
    (tmp_path / "model").mkdir()
    model = shutil.copy(model_file, tmp_path / "model" / "maskdetect.h5")
    (tmp_path / "model" / "metrics.json").write_text(
        json.dumps({"model": "brightness-1", "threshold": 0.5, "model_bytes": os.path.getsize(model), "kept": [1, 2]})
    )
    return tmp_path / "model" / "maskdetect.h5"


def test_calibrate_records_the_threshold_and_keeps_the_rest(described_model, tmp_path, capsys):
    # The brightness model: darkish-grey "masked" faces score well under 0.5 (p ~ 0.07), dark "unmasked" ones lower.
    faces = faces_folder(tmp_path / "faces", with_mask_grey=100, without_grey=40)
    assert main(["calibrate", "--model", str(described_model), "--faces", str(faces), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    recorded = json.loads(described_model.with_name("metrics.json").read_text())
    assert recorded["crowd_threshold"] == printed and printed["chosen_on"] == "faces"
    assert recorded["kept"] == [1, 2] and recorded["model"] == "brightness-1"
    predictor = Predictor.load(described_model)
    assert predictor.threshold == 0.5 and predictor.crowd_threshold == printed["threshold"] < 0.5
    assert printed["balanced_accuracy"] == 1.0 and printed["balanced_accuracy_at_0.5"] == 0.5

    # Crowd analysis labels its crops by the crowd threshold; /predict keeps 0.5.
    class OneFace:
        def detect(self, image):
            return [Face((10, 10, 50, 50), 0.99)]

    masked = Image.new("RGB", (60, 60), (100,) * 3)
    assert predictor.predict(masked).label == "without_mask"
    assert CrowdAnalyzer(OneFace(), predictor).analyze(masked).faces[0].label == "with_mask"


def test_calibrate_refuses_a_model_its_metrics_do_not_describe(model_file, tmp_path, capsys):
    model = shutil.copy(model_file, tmp_path / "maskdetect.h5")
    (tmp_path / "metrics.json").write_text(json.dumps({"model": "other", "model_bytes": 1}))
    faces = faces_folder(tmp_path / "faces", 100, 40, n=2)
    before = (tmp_path / "metrics.json").read_text()
    assert main(["calibrate", "--model", str(model), "--faces", str(faces), "--quiet"]) != 0
    assert "does not describe" in capsys.readouterr().err
    assert (tmp_path / "metrics.json").read_text() == before


def test_calibrate_needs_both_class_folders(described_model, tmp_path, capsys):
    (tmp_path / "faces" / "with_mask").mkdir(parents=True)
    assert main(["calibrate", "--model", str(described_model), "--faces", str(tmp_path / "faces"), "--quiet"]) != 0
    assert "without_mask" in capsys.readouterr().err
