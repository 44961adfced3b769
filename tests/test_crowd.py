"""Crowd analysis: counts, the unmasked share, the pinhole distances, real YuNet on a real scene."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from tests.samples import SHARED, require
from maskdetect.core import constants
from maskdetect.core.crowd import Camera, CrowdAnalyzer, CrowdFace, annotate, close_pairs
from maskdetect.core.faces import Face, YuNetDetector
from maskdetect.core.inference import Predictor


def face(x: int, y: int, width: int, label: str = "without_mask") -> CrowdFace:
    return CrowdFace((x, y, x + width, y + width), 0.99, label, 0.1 if label == "without_mask" else 0.9)


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


def test_close_pairs_are_unmasked_and_under_the_threshold_nearest_first():
    faces = [
        face(100, 300, 30),  # 0
        face(340, 300, 30),  # 1: 1.2 m from 0
        face(180, 300, 30),  # 2: 0.4 m from 0, 0.8 m from 1
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


def test_each_crop_is_classified_and_counted(predictor):
    # The brightness model: a white patch is with_mask, a black one without_mask.
    image = Image.new("RGB", (400, 200), (128, 128, 128))
    boxes = [(20, 20, 60, 60), (120, 20, 160, 60), (220, 20, 260, 60)]
    for box, colour in zip(boxes, ("white", "black", "black")):
        image.paste(colour, expand_box_for_test(box, 400, 200))
    analysis = CrowdAnalyzer(FixedBoxes(boxes), predictor, close_distance_m=100).analyze(image)
    answer = analysis.as_dict()
    assert list(answer) == ["faces", "total", "with_mask", "without_mask", "unmasked_ratio", "counted", "close_pairs", "model"]
    assert [f["label"] for f in answer["faces"]] == ["with_mask", "without_mask", "without_mask"]
    assert [f["box"] for f in answer["faces"]] == [list(b) for b in boxes]
    assert answer["faces"][0]["with_mask"] > 0.99 and answer["faces"][1]["with_mask"] < 0.01
    assert (answer["total"], answer["with_mask"], answer["without_mask"]) == (3, 1, 2)
    assert answer["unmasked_ratio"] == pytest.approx(2 / 3, abs=1e-4) and answer["counted"] == 3
    assert answer["close_pairs"] == [{"a": 1, "b": 2, "distance_m": pytest.approx(0.375, abs=0.01)}]
    assert answer["model"] == "maskdetect.h5"


def expand_box_for_test(box, width, height):
    from maskdetect.core.faces import expand_box

    return expand_box(box, constants.FACE_CROP_MARGIN, width, height)


def test_the_unmasked_share_counts_the_faces_the_detector_is_sure_of(predictor):
    # One sure white (with_mask) face, two unsure black (without_mask) ones.
    image = Image.new("RGB", (400, 200), (128, 128, 128))
    boxes = [(20, 20, 60, 60), (120, 20, 160, 60), (220, 20, 260, 60)]
    for box, colour in zip(boxes, ("white", "black", "black")):
        image.paste(colour, expand_box_for_test(box, 400, 200))
    sure, unsure = constants.SHARE_MIN_SCORE + 0.1, constants.SHARE_MIN_SCORE - 0.1
    answer = CrowdAnalyzer(FixedBoxes(boxes, [sure, unsure, unsure]), predictor).analyze(image).as_dict()
    assert (answer["total"], answer["without_mask"], answer["counted"], answer["unmasked_ratio"]) == (3, 2, 1, 0.0)
    # With no face that sure, every face found is counted.
    answer = CrowdAnalyzer(FixedBoxes(boxes, [unsure] * 3), predictor).analyze(image).as_dict()
    assert answer["counted"] == 3 and answer["unmasked_ratio"] == pytest.approx(2 / 3, abs=1e-4)


def test_no_face_means_no_ratio(predictor):
    answer = CrowdAnalyzer(FixedBoxes([]), predictor).analyze(Image.new("RGB", (50, 50))).as_dict()
    assert answer == {
        "faces": [], "total": 0, "with_mask": 0, "without_mask": 0, "unmasked_ratio": None, "counted": 0, "close_pairs": [],
        "model": "maskdetect.h5",
    }


def test_annotation_colours_boxes_by_label(predictor):
    image = Image.new("RGB", (300, 100), (128, 128, 128))
    boxes = [(20, 30, 60, 70), (200, 30, 240, 70)]
    analysis = CrowdAnalyzer(FixedBoxes(boxes), predictor).analyze(image)
    labels = [f.label for f in analysis.faces]
    drawn = annotate(image, analysis)
    assert drawn.size == image.size
    for box, label in zip(boxes, labels):
        assert drawn.getpixel((box[0], (box[1] + box[3]) // 2)) == {"with_mask": (30, 170, 80), "without_mask": (220, 40, 40)}[label]


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
    assert answer["total"] == answer["with_mask"] + answer["without_mask"] >= 3
    for found in answer["faces"]:
        xmin, ymin, xmax, ymax = found["box"]
        assert 0 <= xmin < xmax <= 512 and 0 <= ymin < ymax <= 366
        assert constants.DETECTOR["score_threshold"] <= found["score"] <= 1


def test_faces_are_labelled_by_the_predictors_one_threshold(predictor):
    # A mid-grey face: p(with_mask) is strictly between 0 and 1, so a threshold on either side flips the label.
    image = Image.new("RGB", (200, 100), (128, 128, 128))
    boxes = [(20, 20, 60, 60)]
    p = CrowdAnalyzer(FixedBoxes(boxes), predictor).analyze(image).faces[0].with_mask
    assert 0.01 < p < 0.99
    for threshold, label in ((p - 0.001, "with_mask"), (p + 0.001, "without_mask")):
        strict = Predictor(predictor.backend, predictor.name, threshold)
        (found,) = CrowdAnalyzer(FixedBoxes(boxes), strict).analyze(image).faces
        assert (found.label, found.with_mask) == (label, p)


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
