"""Face detection and the crop geometry used for training."""

import pytest

from maskdetect.faces import Face, MTCNNDetector, expand_box, largest_face


def test_expand_box_squares_grows_and_clips():
    assert expand_box((40, 20, 60, 60), 0.0, 200, 200) == (30, 20, 70, 60)  # squared around the centre
    assert expand_box((40, 20, 60, 60), 0.25, 200, 200) == (20, 10, 80, 70)  # 40 px side, 10 px more each way
    assert expand_box((0, 0, 30, 30), 0.5, 40, 40) == (0, 0, 40, 40)  # clipped to the image
    assert Face((1, 2, 11, 7), 0.9).area == 50


@pytest.fixture(scope="module")
def detector():
    return MTCNNDetector()


def test_mtcnn_finds_the_face_in_a_training_photo(detector, observations):
    from maskdetect.images import decode_image

    path = observations / "without_mask" / "298.jpg"
    face = largest_face(detector, path)
    width, height = decode_image(path).size
    assert face is not None and face.score >= detector.min_score
    xmin, ymin, xmax, ymax = face.box
    assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
    assert (xmax - xmin) > width / 4  # a portrait: the face is large


def test_no_face_in_a_blank_image(detector):
    from PIL import Image

    assert detector.detect(Image.new("RGB", (200, 200), (128, 128, 128))) == []


def test_enlarged_small_images_give_boxes_in_the_original_pixels(detector):
    # Enlarging a 512 px scene 2x first (min_side) finds its faces at the same places.
    from conftest import SHARED, _require
    from maskdetect.images import decode_image

    scene = decode_image(_require(SHARED / "scenes-dev" / "images") / "scene000.jpg")
    enlarged = MTCNNDetector(min_side=1024).detect(scene)
    plain = detector.detect(scene)
    assert plain and enlarged
    for face in plain:
        assert any(_iou(face.box, other.box) > 0.6 for other in enlarged), (face, enlarged)


def _iou(a, b):
    from maskdetect.scenes import box_iou

    return box_iou(a, b)


def test_compiled_networks_find_what_the_eager_ones_find():
    # load() runs MTCNN's three networks as TensorFlow graphs (3x less CPU per scene): the boxes
    # and scores must be the ones the mtcnn package's own eager calls give, on scenes of every size.
    from mtcnn import MTCNN

    from conftest import SHARED, _require
    from maskdetect import config
    from maskdetect.images import decode_image

    folder = _require(SHARED / "scenes-dev" / "images")
    settings = config.DETECTOR | {"weights": None}  # the same networks either way; the package's weights
    compiled = MTCNNDetector(**settings).load()
    eager = MTCNNDetector(**settings)
    eager._mtcnn = MTCNN(device="CPU:0")  # the package as shipped
    scenes = [decode_image(folder / name) for name in ("scene000.jpg", "scene002.jpg", "scene004.jpg")]
    scenes.append(scenes[0].resize((257, 173)))  # an odd size: the graphs take any size
    found = 0
    for scene in scenes:
        expected, got = eager.detect(scene), compiled.detect(scene)
        assert [face.box for face in got] == [face.box for face in expected]
        assert [face.score for face in got] == pytest.approx([face.score for face in expected], abs=1e-6)
        found += len(got)
    assert found >= 5
    # Traced once each, when loaded: no request pays for tracing.
    assert [stage.model.experimental_get_tracing_count() for stage in compiled._mtcnn.stages] == [1, 1, 1]


def test_with_settings_shares_the_networks_and_keeps_the_weights():
    from maskdetect import config
    from maskdetect.faces import subject_detector

    crowd = MTCNNDetector(**config.DETECTOR)
    subject = subject_detector(crowd)
    assert subject._networks is crowd._networks  # built once, called under one lock
    assert (subject.thresholds, subject.min_score) == ((0.6, 0.7, 0.7), 0.9)
    assert (crowd.thresholds, crowd.min_score) == (config.DETECTOR["thresholds"], config.DETECTOR["min_score"])
    assert subject.weights == crowd.weights and subject.max_side == crowd.max_side
    crowd.load()
    assert subject._mtcnn is crowd._mtcnn is not None
    with pytest.raises(ValueError, match="weights"):
        crowd.with_settings(weights=None)
    assert subject_detector(MTCNNDetector())._networks is not None  # other weights: its own networks
    assert subject_detector(MTCNNDetector())._mtcnn is None


def test_crop_face_is_the_expanded_box_and_largest_picks_by_area():
    from PIL import Image

    from maskdetect.faces import crop_face, largest

    image = Image.new("RGB", (200, 100))
    assert crop_face(image, (40, 20, 60, 60), 0.25).size == (60, 60)  # expand_box's (20, 10, 80, 70)
    assert crop_face(image, (0, 0, 30, 30), 0.5).size == (45, 45)  # clipped at the top left
    small, big = Face((0, 0, 10, 10), 0.99), Face((5, 5, 40, 40), 0.6)
    assert largest([small, big]) is big and largest([]) is None
