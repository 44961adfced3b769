"""Scene evaluation: matching and metric arithmetic on hand-made boxes; both evaluate commands."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.samples import SHARED, require
from tests.samples import photo
from maskdetect.core import constants
from maskdetect.cli import main
from maskdetect.training.scenes import (
    Detected,
    Labelled,
    SceneResult,
    box_iou,
    match,
    read_labels,
    scene_metrics,
    share_error_sources,
    size_bucket,
)


def test_iou_of_hand_made_boxes():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges share no pixel
    assert box_iou((0, 0, 10, 10), (2, 2, 8, 8)) == pytest.approx(36 / 100)


def test_greedy_matching_takes_the_best_overlap_first_one_to_one():
    labelled = [(0, 0, 10, 10), (6, 0, 16, 10)]
    # Detection 0 overlaps label 0 at 0.67 and label 1 at 0.43; detection 1 fits label 1 exactly.
    detected = [(1, 0, 11, 10), (6, 0, 16, 10), (100, 100, 110, 110)]
    assert sorted(match(detected, labelled)) == [(0, 0), (1, 1)]
    # Alone, detection 0 goes to its best label; a second detection can't reuse that label.
    assert match([(1, 0, 11, 10), (0, 0, 10, 10)], [(0, 0, 10, 10)]) == [(1, 0)]
    # Under the IoU threshold there is no match.
    assert match([(0, 0, 10, 10)], [(2, 2, 8, 8)]) == []
    assert match([(0, 0, 10, 10)], [(2, 2, 8, 8)], min_iou=0.3) == [(0, 0)]


def test_size_buckets_by_the_longer_side():
    assert size_bucket((0, 0, 23, 10)) == "<24"
    assert size_bucket((0, 0, 10, 24)) == "24-48"
    assert size_bucket((0, 0, 48, 48)) == "24-48"
    assert size_bucket((0, 0, 20, 49)) == ">48"


def test_metric_arithmetic():
    results = [
        SceneResult(
            "a.jpg",
            [
                Labelled((0, 0, 20, 20), "without_mask"),  # <24, found, labelled right
                Labelled((100, 0, 130, 30), "with_mask"),  # 24-48, found, labelled wrong
                Labelled((200, 0, 260, 60), "incorrect"),  # >48, found, called without_mask: right as not masked
                Labelled((300, 0, 310, 10), "with_mask"),  # <24, missed
            ],
            [
                Detected((0, 0, 20, 20), "without_mask"),
                Detected((100, 0, 130, 30), "without_mask"),
                Detected((200, 0, 260, 60), "without_mask"),
                Detected((500, 500, 520, 520), "with_mask"),  # matches nothing
            ],
            0.2,
        ),
        SceneResult("b.jpg", [Labelled((0, 0, 50, 50), "with_mask")], [Detected((0, 0, 50, 50), "with_mask")], 0.4),
        SceneResult("c.jpg", [Labelled((0, 0, 30, 30), "without_mask")], [], 0.3),
    ]
    metrics = scene_metrics(results)
    assert metrics["images"] == 3 and metrics["labelled_faces"] == 6 and metrics["detections"] == 5
    assert metrics["recall"] == pytest.approx(4 / 6)
    assert metrics["recall_by_size"] == {
        "<24": {"recall": 0.5, "faces": 2},
        "24-48": {"recall": 0.5, "faces": 2},
        ">48": {"recall": 1.0, "faces": 2},
    }
    assert metrics["recall_by_label"] == {
        "with_mask": {"recall": 2 / 3, "faces": 3},
        "without_mask": {"recall": 0.5, "faces": 2},
        "incorrect": {"recall": 1.0, "faces": 1},
    }
    assert metrics["unmatched_detection_share"] == pytest.approx(1 / 5)
    assert metrics["label_accuracy"] == pytest.approx(3 / 4) and metrics["label_accuracy_faces"] == 4
    assert metrics["label_accuracy_by_size"] == {
        "<24": {"accuracy": 1.0, "faces": 1},
        "24-48": {"accuracy": 0.0, "faces": 1},
        ">48": {"accuracy": 1.0, "faces": 2},  # b.jpg's face, and a.jpg's incorrect one called not masked
    }
    assert metrics["label_recall"] == {
        "with_mask": {"recall": 0.5, "faces": 2},
        "incorrect": {"recall": 0.0, "faces": 1},  # not masked, but not named incorrect
        "without_mask": {"recall": 1.0, "faces": 1},
    }
    assert metrics["confusion_matrix"] == [[1, 0, 1], [0, 0, 1], [0, 0, 1]]
    # a.jpg: truth 2/4 unmasked (without_mask + incorrect), guess 3/4; b.jpg: 0 and 0; c.jpg has no detection.
    assert metrics["unmasked_share_mae"] == pytest.approx((0.25 + 0.0) / 2)
    assert (metrics["images_with_detection"], metrics["images_without_detection"]) == (2, 1)
    assert metrics["seconds_per_image"] == pytest.approx(0.3)
    assert "missed" not in metrics
    assert scene_metrics(results, list_missed=True)["missed"] == [
        {"image": "a.jpg", "box": [300, 0, 310, 10], "label": "with_mask", "best_iou": 0.0},
        {"image": "c.jpg", "box": [0, 0, 30, 30], "label": "without_mask", "best_iou": 0.0},
    ]


def test_share_error_sources_remove_one_cause_at_a_time():
    results = [
        SceneResult(  # truth 2/3 unmasked; guessed 1/4: an incorrect called masked, a stray detection
            "a.jpg",
            [Labelled((0, 0, 20, 20), "without_mask"), Labelled((100, 0, 130, 30), "incorrect"), Labelled((200, 0, 230, 30), "with_mask")],
            [
                Detected((0, 0, 20, 20), "without_mask"),
                Detected((100, 0, 130, 30), "with_mask"),
                Detected((200, 0, 230, 30), "with_mask"),
                Detected((500, 500, 520, 520), "with_mask"),
            ],
            0.1,
        ),
        SceneResult(  # truth 0/1; guessed 1/1: a masked face called unmasked
            "b.jpg", [Labelled((0, 0, 50, 50), "with_mask")], [Detected((0, 0, 50, 50), "without_mask")], 0.1
        ),
    ]
    sources = share_error_sources(results)
    assert sources["measured"] == pytest.approx((abs(2 / 3 - 1 / 4) + 1) / 2)
    assert sources["measured"] == scene_metrics(results)["unmasked_share_mae"]
    assert sources["incorrect_right"] == pytest.approx((abs(2 / 3 - 2 / 4) + 1) / 2)
    assert sources["labels_right"] == pytest.approx(abs(2 / 3 - 2 / 4) / 2)
    assert sources["no_unmatched"] == pytest.approx((abs(2 / 3 - 1 / 3) + 1) / 2)
    assert sources["neither"] == pytest.approx(0.0)


def test_detection_only_has_no_label_metrics():
    results = [SceneResult("a.jpg", [Labelled((0, 0, 20, 20), "with_mask")], [Detected((0, 0, 20, 20), None)], 0.1)]
    metrics = scene_metrics(results)
    assert metrics["recall"] == 1.0
    assert metrics["label_accuracy"] is None and metrics["unmasked_share_mae"] is None


def test_labels_csv_is_checked(tmp_path):
    good = tmp_path / "labels.csv"
    good.write_text("image,xmin,ymin,xmax,ymax,label\na.jpg,1,2,30,40,incorrect\na.jpg,5,5,9,9,with_mask\n")
    assert read_labels(good) == {"a.jpg": [Labelled((1, 2, 30, 40), "incorrect"), Labelled((5, 5, 9, 9), "with_mask")]}
    bad = tmp_path / "bad.csv"
    bad.write_text("image,xmin,ymin,xmax,ymax,label\na.jpg,1,2,30,40,masked\n")
    assert main(["evaluate", "scenes", "--images", str(tmp_path), "--labels", str(bad), "--detection-only"]) == 1


# ---------------------------------------------------------------------------- the commands


def test_evaluate_scenes_command_prints_json(tmp_path, model_file, capsys):
    images = tmp_path / "images"
    images.mkdir()
    photo(1, (200, 150)).save(images / "one.jpg")
    photo(2, (160, 120)).save(images / "two.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "image,xmin,ymin,xmax,ymax,label\none.jpg,10,10,40,40,with_mask\n"
        "one.jpg,100,20,160,80,without_mask\ntwo.jpg,5,5,20,20,incorrect\n"
    )
    code = main(
        ["evaluate", "scenes", "--images", str(images), "--labels", str(labels), "--model", str(model_file), "--quiet", "--missed"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    # Synthetic shapes hold no face YuNet would find: every labelled face is missed.
    assert report["images"] == 2 and report["labelled_faces"] == 3
    assert report["recall"] == 0.0 and report["detections"] == 0
    assert report["recall_by_size"]["<24"] == {"recall": 0.0, "faces": 1}
    assert report["unmasked_share_mae"] is None and report["images_without_detection"] == 2
    assert report["seconds_per_image"] > 0 and report["model"] == "maskdetect.h5"
    assert report["detector"] == json.loads(json.dumps(constants.DETECTOR))  # the crowd settings by default
    assert [(m["image"], m["best_iou"]) for m in report["missed"]] == [("one.jpg", 0.0), ("one.jpg", 0.0), ("two.jpg", 0.0)]


def test_detector_options_reach_the_detector_and_the_report(capsys):
    folder = require(SHARED / "scenes-dev")
    arguments = ["evaluate", "scenes", "--images", str(folder / "images"), "--labels", str(folder / "labels.csv"),
                 "--detection-only", "--limit", "3", "--quiet"]
    assert main(arguments) == 0
    default = json.loads(capsys.readouterr().out)
    settings = ["--scales", "1", "--score-threshold", "0.85", "--nms-threshold", "0.2", "--max-side", "480"]
    assert main([*arguments, *settings]) == 0
    chosen = json.loads(capsys.readouterr().out)
    overrides = {"scales": [1.0], "score_threshold": 0.85, "nms_threshold": 0.2, "max_side": 480}
    assert chosen["detector"] == {**default["detector"], **overrides}
    assert default["detections"] > chosen["detections"] > 0  # fewer, surer faces; still some
    assert default["model"] is None and "threshold" not in default  # detection only: no classifier


def test_evaluate_scenes_without_the_detector_weights_says_how_to_get_them(tmp_path, model_file, monkeypatch, capsys):
    from maskdetect.core.weights import DETECTOR_FILE

    folder = require(SHARED / "scenes-dev")
    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(tmp_path))
    arguments = ["evaluate", "scenes", "--images", str(folder / "images"), "--labels", str(folder / "labels.csv"),
                 "--model", str(model_file), "--limit", "1", "--quiet"]
    assert main(arguments) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"{tmp_path / DETECTOR_FILE} is missing" in captured.err


def test_evaluate_faces_command_prints_json(tmp_path, model_file, capsys):
    # The brightness model: light images are with_mask, mid-grey incorrect, dark ones without_mask. The masked
    # 150-grey image is called incorrect, the unmasked 200-grey one masked; 8 of 9 pairs are ranked right.
    for label, shades in (("with_mask", (250, 230, 150)), ("without_mask", (5, 20, 200))):
        (tmp_path / label).mkdir()
        for shade in shades:
            Image.new("RGB", (40, 40), (shade,) * 3).save(tmp_path / label / f"{shade}.png")
    assert main(["evaluate", "faces", str(tmp_path), "--model", str(model_file), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 6
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 0, 0], [1, 0, 2]]
    assert report["accuracy"] == pytest.approx(4 / 6)  # masked or not
    assert report["balanced_accuracy"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert report["three_way"]["recall"] == {"with_mask": pytest.approx(2 / 3), "without_mask": pytest.approx(2 / 3)}
    assert report["roc_auc"] == pytest.approx(8 / 9)
    assert report["model"] == "maskdetect.h5"


def test_an_incorrect_folder_is_scored_when_there_is_one(tmp_path, model_file, capsys):
    for label, shade in (("with_mask", 250), ("incorrect", 128), ("without_mask", 5)):
        (tmp_path / label).mkdir()
        Image.new("RGB", (40, 40), (shade,) * 3).save(tmp_path / label / f"{shade}.png")
    assert main(["evaluate", "faces", str(tmp_path), "--model", str(model_file), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]] and report["three_way"]["accuracy"] == 1.0


def test_evaluate_faces_needs_both_folders(tmp_path, model_file, capsys):
    (tmp_path / "with_mask").mkdir()
    assert main(["evaluate", "faces", str(tmp_path), "--model", str(model_file)]) == 1
    assert "without_mask" in capsys.readouterr().err


def test_detect_labels_each_face_with_the_most_probable_of_its_three(model_file, capsys):
    """No threshold any more: the label is the most probable class, and the counts and the share follow the labels."""
    folder = require(SHARED / "scenes-dev")
    labels = read_labels(folder / "labels.csv")
    busiest = max(sorted(labels)[:20], key=lambda name: len(labels[name]))
    assert main(["detect", str(folder / "images" / busiest), "--model", str(model_file)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["total"] >= 3
    for face in answer["faces"]:
        probabilities = [face[label] for label in constants.LABELS]
        assert face["label"] == constants.LABELS[probabilities.index(max(probabilities))]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert sum(answer[label] for label in constants.LABELS) == answer["total"]
    with pytest.raises(SystemExit) as exit:
        main(["detect", str(folder / "images" / busiest), "--model", str(model_file), "--threshold", "0.3"])
    assert exit.value.code == 2
