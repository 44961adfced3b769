"""Face detection (YuNet at one or more scales, merged with NMS) and the crop geometry used for training."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.samples import SHARED, require
from maskdetect.core import constants
from maskdetect.data.split import read_splits
from maskdetect.core.faces import Face, YuNetDetector, crop_face, expand_box, largest, largest_face
from maskdetect.core.images import decode_image
from maskdetect.training.scenes import box_iou, match, read_labels, size_bucket
from maskdetect.core.weights import WeightsError

# Boxes are rounded to whole pixels, so an overlap YuNet computed on floats can read a little lower.
ROUNDING_SLACK = 0.05


def committed_test_photo(observations: Path, label: str) -> Path:
    """The first photo of ``label`` in the committed test split (data/test/LABEL/000.jpg), from its source."""
    row = next(r for r in read_splits() if r["split"] == "test" and r["class"] == label)
    return observations / row["source"]


def scaled_boxes(faces: list[Face], factor_x: float, factor_y: float) -> list[tuple[int, int, int, int]]:
    return [
        (round(f.box[0] * factor_x), round(f.box[1] * factor_y), round(f.box[2] * factor_x), round(f.box[3] * factor_y))
        for f in faces
    ]


@pytest.fixture(scope="module")
def single_scale():
    return YuNetDetector(scales=(1.0,)).load()


@pytest.fixture(scope="module")
def two_scales():
    return YuNetDetector(scales=(1.0, 2.0)).load()


@pytest.fixture(scope="module")
def scenes() -> Path:
    return require(SHARED / "scenes-dev" / "images")


# ---------------------------------------------------------------------------- crop geometry


def test_expand_box_squares_grows_and_clips():
    assert expand_box((40, 20, 60, 60), 0.0, 200, 200) == (30, 20, 70, 60)  # squared around the centre
    assert expand_box((40, 20, 60, 60), 0.25, 200, 200) == (20, 10, 80, 70)  # 40 px side, 10 px more each way
    assert expand_box((0, 0, 30, 30), 0.5, 40, 40) == (0, 0, 40, 40)  # clipped to the image
    assert Face((1, 2, 11, 7), 0.9).area == 50


def test_crop_face_is_the_expanded_box_and_largest_picks_by_area():
    image = Image.new("RGB", (200, 100))
    assert crop_face(image, (40, 20, 60, 60), 0.25).size == (60, 60)  # expand_box's (20, 10, 80, 70)
    assert crop_face(image, (0, 0, 30, 30), 0.5).size == (45, 45)  # clipped at the top left
    small, big = Face((0, 0, 10, 10), 0.99), Face((5, 5, 40, 40), 0.6)
    assert largest([small, big]) is big and largest([]) is None


# ---------------------------------------------------------------------------- YuNet on real photos


@pytest.mark.parametrize("label", ["with_mask", "without_mask"])
def test_yunet_finds_the_face_in_a_portrait_with_five_landmarks_inside_its_box(single_scale, observations, label):
    path = committed_test_photo(observations, label)
    width, height = decode_image(path).size
    face = largest_face(single_scale, path)
    assert face is not None and face.score >= single_scale.score_threshold
    xmin, ymin, xmax, ymax = face.box
    assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
    assert (xmax - xmin) > width / 5  # a portrait: the face is large
    assert face.landmarks is not None and len(face.landmarks) == 5
    for x, y in face.landmarks:
        assert xmin <= x <= xmax and ymin <= y <= ymax, (face.landmarks, face.box)
    (left_eye_x, left_eye_y), (right_eye_x, right_eye_y), (_, nose_y), _, _ = face.landmarks
    assert left_eye_x < right_eye_x  # the eyes in image order, both above the nose tip
    assert max(left_eye_y, right_eye_y) < nose_y


def test_no_face_in_a_blank_image(two_scales):
    assert two_scales.detect(Image.new("RGB", (200, 200), (128, 128, 128))) == []


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (10000, 1), (1, 10000), (700, 1), (12000, 3)])
def test_tiny_and_thin_strip_images_give_no_face_and_no_crash(two_scales, size):
    assert two_scales.detect(Image.new("RGB", size, "white")) == []


@pytest.mark.parametrize("scene_name", ["scene000.jpg", "scene052.jpg", "scene058.jpg", "scene158.jpg"])
def test_two_scales_keep_every_face_one_scale_finds_and_no_overlapping_pair(single_scale, two_scales, scenes, scene_name):
    scene = decode_image(scenes / scene_name)
    once, merged = single_scale.detect(scene), two_scales.detect(scene)
    assert once, f"YuNet finds no face in {scene_name} at 1x"
    # A 1x box is either kept or suppressed by a stronger box overlapping it above the NMS threshold.
    for face in once:
        assert any(
            box_iou(face.box, kept.box) > two_scales.nms_threshold - ROUNDING_SLACK and kept.score >= face.score
            for kept in merged
        ), (face, merged)
    for i, face in enumerate(merged):
        for other in merged[i + 1 :]:
            assert box_iou(face.box, other.box) <= two_scales.nms_threshold, (face, other)
        xmin, ymin, xmax, ymax = face.box
        assert 0 <= xmin < xmax <= scene.width and 0 <= ymin < ymax <= scene.height
    assert [f.score for f in merged] == sorted((f.score for f in merged), reverse=True)


def test_the_second_scale_finds_more_of_the_labelled_small_faces_of_a_crowd(single_scale, two_scales, scenes):
    labels = read_labels(scenes.parent / "labels.csv")
    for scene_name in ("scene052.jpg", "scene074.jpg"):  # crowds of small faces
        scene = decode_image(scenes / scene_name)
        truth = [labelled.box for labelled in labels[scene_name]]
        small = {j for j, box in enumerate(truth) if size_bucket(box) == "<24"}
        once = {j for _, j in match([f.box for f in single_scale.detect(scene)], truth)}
        merged = {j for _, j in match([f.box for f in two_scales.detect(scene)], truth)}
        assert len(merged & small) > len(once & small), scene_name


def test_a_16_px_face_is_missed_at_1x_and_found_with_a_2x_pass(single_scale, two_scales, observations):
    portrait = decode_image(committed_test_photo(observations, "with_mask"))
    face = largest_face(single_scale, portrait)
    shrink = 16 / (face.box[2] - face.box[0])
    small = portrait.resize((round(portrait.width * shrink), round(portrait.height * shrink)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (400, 300), (128, 128, 128))
    offset = (150, 100)
    canvas.paste(small, offset)
    where = tuple(round(v * shrink) + offset[i % 2] for i, v in enumerate(face.box))

    assert single_scale.detect(canvas) == []
    found = two_scales.detect(canvas)
    assert len(found) == 1 and box_iou(found[0].box, where) >= 0.4, (found, where)
    assert YuNetDetector(scales=(2.0,)).load().detect(canvas)[0].box == found[0].box  # the 2x pass found it


@pytest.mark.parametrize("scale", [0.5, 0.75, 1.5, 2.0])
@pytest.mark.parametrize("name", ["scene", "portrait"])
def test_boxes_are_in_original_pixels_at_any_scale(name, scale, scenes, observations):
    image = decode_image(scenes / "scene000.jpg" if name == "scene" else committed_test_photo(observations, "with_mask"))
    size = (round(image.width * scale), round(image.height * scale))
    # The same pass by hand: resize first, detect at 1x (no fitting within max_side), map the boxes back.
    by_hand = YuNetDetector(scales=(1.0,), max_side=4000, max_pass_side=4000).load().detect(
        image.resize(size, Image.Resampling.BILINEAR)
    )
    expected = scaled_boxes(by_hand, image.width / size[0], image.height / size[1])
    found = YuNetDetector(scales=(scale,)).load().detect(image)
    assert found and len(found) == len(expected)
    for face in found:
        assert max(box_iou(face.box, box) for box in expected) >= 0.8, (face.box, expected)
        assert all(face.box[0] <= x <= face.box[2] and face.box[1] <= y <= face.box[3] for x, y in face.landmarks)


def test_a_photo_larger_than_max_side_is_shrunk_but_answered_in_its_own_pixels(single_scale, observations):
    portrait = decode_image(committed_test_photo(observations, "without_mask"))
    enlarged = portrait.resize((portrait.width * 3, portrait.height * 3), Image.Resampling.BILINEAR)
    assert max(enlarged.size) > single_scale.max_side
    (small,), (large,) = single_scale.detect(portrait), single_scale.detect(enlarged)
    assert box_iou(scaled_boxes([small], 3, 3)[0], large.box) >= 0.8, (small.box, large.box)


# ---------------------------------------------------------------------------- settings and weights


@pytest.mark.parametrize("name", ["DETECTOR", "SUBJECT_DETECTOR"])
def test_the_configured_settings_reach_the_detector(name):
    settings = getattr(constants, name)
    detector = YuNetDetector(**settings).load()
    assert {key: getattr(detector, key) for key in settings} == settings
    assert detector.detect(Image.new("RGB", (64, 64), "white")) == []


def test_the_subject_detector_makes_one_pass_and_the_crowd_detector_more():
    assert constants.SUBJECT_DETECTOR["scales"] == (1.0,)  # /predict: one large face
    assert len(constants.DETECTOR["scales"]) > 1 and max(constants.DETECTOR["scales"]) > 1  # /detect: small faces too


def test_missing_weights_are_a_clear_error_when_loaded_not_per_image(tmp_path, monkeypatch):
    from maskdetect.core.weights import DETECTOR_FILE

    with pytest.raises(WeightsError, match="make weights") as error:
        YuNetDetector(tmp_path / DETECTOR_FILE).load()
    assert str(tmp_path / DETECTOR_FILE) in str(error.value) and "is missing" in str(error.value)


def test_detectors_sharing_a_network_answer_as_their_own_settings_do(scenes):
    name = sorted(read_labels(scenes.parent / "labels.csv"))[0]
    image = decode_image(scenes / name).convert("RGB")
    crowd = YuNetDetector(**constants.DETECTOR).load()
    subject = crowd.with_settings(**{k: v for k, v in constants.SUBJECT_DETECTOR.items()})
    assert subject._shared is crowd._shared  # one network, one lock
    alone = YuNetDetector(**constants.SUBJECT_DETECTOR).load()
    for _ in range(2):  # interleaved: each call sets its own input size and thresholds
        assert [f.box for f in subject.detect(image)] == [f.box for f in alone.detect(image)]
        assert [f.box for f in crowd.detect(image)] == [f.box for f in YuNetDetector(**constants.DETECTOR).load().detect(image)]
    with pytest.raises(TypeError, match="weights"):
        crowd.with_settings(weights="other.onnx")
