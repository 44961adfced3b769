"""Crowd analysis: the count of each label, the share not masked (incorrect counts as not masked), the
pinhole distances and close pairs, real YuNet on a real scene."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from tests.samples import SHARED, require
from maskdetect.core import constants
from maskdetect.core.crowd import COLOURS, Camera, CrowdAnalyzer, CrowdFace, annotate, close_pairs, is_unmasked
from maskdetect.core.faces import Face, YuNetDetector
from maskdetect.core.inference import Predictor


def face(x: int, y: int, width: int, label: str = "without_mask") -> CrowdFace:
    probabilities = [0.8 if name == label else 0.1 for name in constants.LABELS]
    return CrowdFace((x, y, x + width, y + width), 0.99, label, *probabilities)


# The brightness model (conftest.model_file) answers each label for a patch of one grey level.
LEVELS = {"with_mask": (255, 255, 255), "incorrect": (128, 128, 128), "without_mask": (0, 0, 0)}


def test_only_a_mask_worn_over_nose_and_mouth_counts_as_masked():
    assert [is_unmasked(label) for label in constants.LABELS] == [False, True, True]


# ---------------------------------------------------------------------------- the pinhole model


def test_a_face_width_of_distance_at_the_same_depth():
    # Two 30 px faces whose centres are 240 px apart: 8 face widths = 8 x 15 cm, whatever the lens.
    size = (1000, 600)
    assert Camera().distance_m((100, 300, 130, 330), (340, 300, 370, 330), size) == pytest.approx(1.2)
    assert Camera(fov_deg=90).distance_m((100, 300, 130, 330), (340, 300, 370, 330), size) == pytest.approx(1.2)


def test_depth_follows_the_focal_length_and_face_width():
    size = (1000, 600)
    focal = 500 / math.tan(math.radians(60) / 2)  # 866 px for the assumed 60 degrees
    assert Camera().focal_px(1000) == pytest.approx(focal)
    near, far = (485, 285, 515, 315), (490, 290, 510, 310)  # centred, 30 px and 20 px wide
    assert Camera().position(near, size) == pytest.approx((0.0, 0.0, focal * 0.15 / 30))
    assert Camera().distance_m(near, far, size) == pytest.approx(focal * 0.15 / 20 - focal * 0.15 / 30)


def test_close_pairs_are_between_faces_not_masked_under_the_threshold_nearest_first():
    faces = [
        face(100, 300, 30),  # 0
        face(340, 300, 30, "incorrect"),  # 1: 1.2 m from 0; a mask below the nose is no mask here
        face(180, 300, 30, "incorrect"),  # 2: 0.4 m from 0, 0.8 m from 1
        face(140, 300, 30, "with_mask"),  # masked: never in a pair
        face(900, 300, 30),  # 4: far from everyone
    ]
    pairs = close_pairs(faces, (1000, 600), threshold_m=1.5)
    assert [(p.a, p.b) for p in pairs] == [(0, 2), (1, 2), (0, 1)]
    assert [p.distance_m for p in pairs] == pytest.approx([0.4, 0.8, 1.2])
    assert [(p.a, p.b) for p in close_pairs(faces, (1000, 600), threshold_m=1.0)] == [(0, 2), (1, 2)]
    assert pairs[0].as_dict() == {"a": 0, "b": 2, "distance_m": 0.4}


# ---------------------------------------------------------------------------- the analyzer


class FixedBoxes:
    """A FaceDetector that 'finds' the boxes it was given: checks the classification and counting."""

    def __init__(self, boxes, scores=None):
        self.boxes = boxes
        self.scores = scores or [0.95] * len(boxes)

    def detect(self, image):
        return [Face(box, score) for box, score in zip(self.boxes, self.scores)]


@pytest.fixture(scope="module")
def predictor(model_file):
    return Predictor.load(model_file)


def patches(labels: list[str], size=(500, 200), scores=None):
    """A grey image with a patch per label (the brightness model's answer for it), and a detector that finds them."""
    image = Image.new("RGB", size, (90, 90, 90))
    boxes = [(20 + 100 * i, 20, 60 + 100 * i, 60) for i in range(len(labels))]
    for box, label in zip(boxes, labels):
        image.paste(LEVELS[label], expand_box_for_test(box, *size))
    return image, FixedBoxes(boxes, scores)


def test_each_crop_is_classified_and_each_label_counted(predictor):
    image, detector = patches(["with_mask", "incorrect", "without_mask", "without_mask"])
    analysis = CrowdAnalyzer(detector, predictor, close_distance_m=100).analyze(image)
    answer = analysis.as_dict()
    assert list(answer) == ["faces", "total", "with_mask", "incorrect", "without_mask", "unmasked_ratio", "counted", "close_pairs", "model"]
    assert [f["label"] for f in answer["faces"]] == ["with_mask", "incorrect", "without_mask", "without_mask"]
    assert [f["box"] for f in answer["faces"]] == [list(b) for b in detector.boxes]
    for found in answer["faces"]:
        assert list(found) == ["box", "score", "label", "with_mask", "incorrect", "without_mask"]
        assert found[found["label"]] > 0.5 and sum(found[label] for label in constants.LABELS) == pytest.approx(1.0, abs=1e-5)
    assert (answer["total"], answer["with_mask"], answer["incorrect"], answer["without_mask"]) == (4, 1, 1, 2)
    assert answer["unmasked_ratio"] == 0.75 and answer["counted"] == 4  # the incorrect face counts as not masked
    # every pair of faces not masked, the incorrect one included; never the masked face (index 0)
    pairs = [(p["a"], p["b"]) for p in answer["close_pairs"]]
    assert sorted(pairs) == [(1, 2), (1, 3), (2, 3)] and pairs[-1] == (1, 3)  # 0.375, 0.375, then 0.75 m
    assert [p["distance_m"] for p in answer["close_pairs"]] == pytest.approx([0.375, 0.375, 0.75], abs=0.01)
    assert answer["model"] == "maskdetect.h5"


def test_each_face_gets_the_answer_predict_batch_gives_its_crop(predictor):
    image, detector = patches(["incorrect", "with_mask", "without_mask"])
    analyzer = CrowdAnalyzer(detector, predictor)
    crops = analyzer.crops(image, detector.boxes)
    for found, expected in zip(analyzer.analyze(image).faces, predictor.predict_batch(crops)):
        assert (found.label, found.with_mask, found.incorrect, found.without_mask) == (
            expected.label, expected.with_mask, expected.incorrect, expected.without_mask)


def expand_box_for_test(box, width, height):
    from maskdetect.core.faces import expand_box

    return expand_box(box, constants.FACE_CROP_MARGIN, width, height)


def test_the_unmasked_share_counts_the_faces_the_detector_is_sure_of(predictor):
    # One sure with_mask face, an unsure incorrect one and an unsure without_mask one.
    labels = ["with_mask", "incorrect", "without_mask"]
    sure, unsure = constants.SHARE_MIN_SCORE + 0.1, constants.SHARE_MIN_SCORE - 0.1
    image, detector = patches(labels, scores=[sure, unsure, unsure])
    answer = CrowdAnalyzer(detector, predictor).analyze(image).as_dict()
    assert (answer["total"], answer["incorrect"], answer["without_mask"], answer["counted"], answer["unmasked_ratio"]) == (3, 1, 1, 1, 0.0)
    # With no face that sure, every face found is counted; the incorrect one as not masked.
    image, detector = patches(labels, scores=[unsure] * 3)
    answer = CrowdAnalyzer(detector, predictor).analyze(image).as_dict()
    assert answer["counted"] == 3 and answer["unmasked_ratio"] == pytest.approx(2 / 3, abs=1e-4)


@pytest.mark.parametrize(
    "labels, share",
    [(["with_mask", "incorrect"], 0.5), (["incorrect", "incorrect", "with_mask", "with_mask"], 0.5), (["incorrect"], 1.0),
     (["with_mask", "with_mask", "without_mask", "incorrect"], 0.5), (["with_mask"], 0.0)],
)
def test_a_mask_worn_incorrectly_counts_as_not_masked_in_the_share(predictor, labels, share):
    image, detector = patches(labels)
    answer = CrowdAnalyzer(detector, predictor).analyze(image).as_dict()
    assert [f["label"] for f in answer["faces"]] == labels
    assert {label: answer[label] for label in constants.LABELS} == {label: labels.count(label) for label in constants.LABELS}
    assert answer["unmasked_ratio"] == share


def test_no_face_means_no_ratio(predictor):
    answer = CrowdAnalyzer(FixedBoxes([]), predictor).analyze(Image.new("RGB", (50, 50))).as_dict()
    assert answer == {
        "faces": [], "total": 0, "with_mask": 0, "incorrect": 0, "without_mask": 0, "unmasked_ratio": None, "counted": 0,
        "close_pairs": [], "model": "maskdetect.h5",
    }


def test_annotation_colours_boxes_green_amber_and_red_by_label(predictor):
    assert COLOURS == {"with_mask": (30, 170, 80), "incorrect": (235, 140, 0), "without_mask": (220, 40, 40)}
    image, detector = patches(["with_mask", "incorrect", "without_mask"], size=(320, 100))
    analysis = CrowdAnalyzer(detector, predictor).analyze(image)
    assert [f.label for f in analysis.faces] == ["with_mask", "incorrect", "without_mask"]
    drawn = annotate(image, analysis)
    assert drawn.size == image.size
    for box, found in zip(detector.boxes, analysis.faces):
        assert drawn.getpixel((box[0], (box[1] + box[3]) // 2)) == COLOURS[found.label]


# ---------------------------------------------------------------------------- real YuNet, real scene


@pytest.fixture(scope="module")
def scene() -> bytes:
    return (require(SHARED / "scenes-dev" / "images") / "scene000.jpg").read_bytes()


@pytest.fixture(scope="module")
def analyzer(predictor):
    return CrowdAnalyzer(YuNetDetector(**constants.DETECTOR).load(), predictor)


def test_real_faces_are_found_in_a_street_scene(analyzer, scene):
    # scene000.jpg: three labelled faces, 30-50 px, at (79,105)-(109,142), (185,100)-(226,144), (325,90)-(360,141).
    answer = analyzer.analyze(scene).as_dict()
    labelled = [(79, 105, 109, 142), (185, 100, 226, 144), (325, 90, 360, 141)]
    for truth in labelled:
        assert any(iou(tuple(f["box"]), truth) >= 0.4 for f in answer["faces"]), answer["faces"]
    assert answer["total"] == answer["with_mask"] + answer["incorrect"] + answer["without_mask"] >= 3
    for found in answer["faces"]:
        xmin, ymin, xmax, ymax = found["box"]
        assert 0 <= xmin < xmax <= 512 and 0 <= ymin < ymax <= 366
        assert constants.DETECTOR["score_threshold"] <= found["score"] <= 1


def test_a_two_class_model_labels_crowd_faces_with_mask_or_without_and_counts_no_incorrect(two_class_model_file):
    old = Predictor.load(two_class_model_file, face_centred=False)
    image, detector = patches(["with_mask", "incorrect", "without_mask"])
    answer = CrowdAnalyzer(detector, old).analyze(image).as_dict()
    assert [f["label"] for f in answer["faces"]] == ["with_mask", "with_mask", "without_mask"]  # mid grey: p ~ 0.51
    assert all(f["incorrect"] == 0 and f["label"] == ("with_mask" if f["with_mask"] >= 0.5 else "without_mask") for f in answer["faces"])
    assert (answer["with_mask"], answer["incorrect"], answer["without_mask"]) == (2, 0, 1)


def test_boxes_are_in_displayed_pixels(analyzer, scene):
    # The same scene stored rotated with an EXIF orientation tag: boxes must match the upright one.
    upright = Image.open(io.BytesIO(scene))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 rotates it back on display
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    rotated = analyzer.analyze(buffer.getvalue())
    assert rotated.size == upright.size
    boxes = [f.box for f in analyzer.analyze(scene).faces]
    assert len(rotated.faces) == len(boxes)
    for found in rotated.faces:
        assert max(iou(found.box, box) for box in boxes) > 0.7


def iou(a, b) -> float:
    from maskdetect.training.scenes import box_iou

    return box_iou(a, b)


def test_detect_command_prints_the_answer_and_writes_the_annotated_image(scene, model_file, tmp_path, capsys):
    import json

    from maskdetect.cli import main

    path = tmp_path / "scene.jpg"
    path.write_bytes(scene)
    out = tmp_path / "annotated.png"
    assert main(["detect", str(path), "--model", str(model_file), "--out", str(out)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["total"] >= 2 and len(answer["faces"]) == answer["total"]
    assert Image.open(out).size == Image.open(path).size
    small = tmp_path / "small.jpg"
    assert main(["detect", str(path), "--model", str(model_file), "--out", str(small), "--out-max-side", "256"]) == 0
    assert Image.open(small).size == (256, 183) and Image.open(small).format == "JPEG"
    assert main(["detect", str(tmp_path / "missing.jpg"), "--model", str(model_file)]) == 1
    assert "no such file" in capsys.readouterr().err


def test_detect_command_without_the_detector_weights_says_how_to_get_them(scene, model_file, tmp_path, monkeypatch, capsys):
    from maskdetect.cli import main
    from maskdetect.core.weights import DETECTOR_FILE

    path = tmp_path / "scene.jpg"
    path.write_bytes(scene)
    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(empty))
    assert main(["detect", str(path), "--model", str(model_file)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"the face detector's weights file {empty / DETECTOR_FILE} is missing" in captured.err
    assert "MASKDETECT_DETECTOR_SOURCE" in captured.err and "Traceback" not in captured.err
