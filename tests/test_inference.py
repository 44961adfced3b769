"""The one inference path (three labels; a two-class model still served), the second look for a small
face, the `maskdetect predict` command, and the committed deployment model."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.samples import encode, photo
from maskdetect.core import constants
from maskdetect.core.images import preprocess
from maskdetect.core.inference import ModelError, Predictor
from maskdetect.settings import Settings


@pytest.fixture(scope="module")
def predictor(model_file):
    return Predictor.load(model_file)


def probabilities(answer) -> list[float]:
    return [getattr(answer, label) for label in constants.LABELS]


def test_answers_are_the_models_output_on_the_preprocessed_image(predictor):
    images = [photo(seed, (90 + seed, 120)) for seed in range(4)]
    answers = predictor.predict_batch([encode(image) for image in images])
    batch = np.stack([preprocess(encode(image)) for image in images])
    expected = np.asarray(predictor.backend.model(batch, training=False))
    assert expected.shape == (4, 3)
    assert [probabilities(a) for a in answers] == [pytest.approx(row, abs=1e-6) for row in expected.tolist()]
    assert [predictor.predict(encode(image)) for image in images] == answers  # one at a time: the same


def test_bytes_paths_and_pil_images_give_one_answer(predictor, tmp_path):
    image = photo(5)
    path = tmp_path / "a.png"
    image.save(path)
    assert predictor.predict(path) == predictor.predict(path.read_bytes()) == predictor.predict(image)


@pytest.mark.parametrize("level, label", [(255, "with_mask"), (128, "incorrect"), (0, "without_mask")])
def test_white_grey_and_black_answer_the_three_labels_with_probabilities_that_sum_to_one(predictor, level, label):
    answer = predictor.predict(encode(Image.new("RGB", (10, 10), (level,) * 3), "PNG"))
    assert answer.label == label and answer.face is None
    assert sum(probabilities(answer)) == pytest.approx(1.0, abs=1e-5)
    assert getattr(answer, label) == max(probabilities(answer)) > 0.5
    assert list(answer.as_dict()) == ["label", "with_mask", "incorrect", "without_mask", "model", "face"]


def test_the_label_is_the_most_probable_as_shown_and_a_tie_goes_to_the_earlier_label(predictor):
    cases = {
        (0.3333334, 0.3333333, 0.3333333): "with_mask",  # shown 0.333333 each: a tie, the first wins
        (0.2, 0.4000001, 0.3999999): "incorrect",  # shown 0.4 and 0.4: the earlier of the two
        (0.4999996, 0.5000004, 0.0): "with_mask",  # shown 0.5 and 0.5
        (0.1, 0.2, 0.7): "without_mask",
        (0.45, 0.3, 0.25): "with_mask",  # the most probable, under 0.5
        (1.0000001, -1e-9, 0.0): "with_mask",  # clipped to [0, 1]
    }
    for outputs, label in cases.items():
        answer = predictor._answer(np.array(outputs))
        shown = probabilities(answer)
        assert answer.label == label, (outputs, answer)
        assert shown == [round(min(max(p, 0.0), 1.0), 6) for p in outputs]
        assert getattr(answer, answer.label) == max(shown)
        assert all(shown[i] < max(shown) for i in range(constants.LABELS.index(label)))  # no earlier label as probable


def test_with_mask_at_one_half_or_more_is_always_the_label(predictor):
    """A two-class client read with_mask >= 0.5 as "masked properly": it still is whenever it says so."""
    answers = [predictor._answer(row) for row in np.random.default_rng(0).dirichlet((1.0, 1.0, 1.0), 2000)]
    assert all(answer.label == "with_mask" for answer in answers if answer.with_mask >= 0.5)
    # What changed, as documented: with_mask may also win below 0.5, and without_mask is no longer 1 - with_mask.
    assert any(answer.label == "with_mask" for answer in answers if answer.with_mask < 0.5)
    assert any(abs(answer.without_mask - (1 - answer.with_mask)) > 0.1 for answer in answers)


def test_a_two_class_model_still_answers_with_incorrect_zero(two_class_model_file):
    predictor = Predictor.load(two_class_model_file, face_centred=False)
    for level in range(0, 256, 15):
        answer = predictor.predict(Image.new("RGB", (20, 20), (level,) * 3))
        assert answer.incorrect == 0.0 and answer.with_mask + answer.without_mask == pytest.approx(1.0, abs=2e-6)
        assert answer.label == ("with_mask" if answer.with_mask >= 0.5 else "without_mask"), answer  # the old rule, unchanged
    grey = Image.new("RGB", (20, 20), (128, 128, 128))
    assert predictor.predict(grey).with_mask == pytest.approx(1 / (1 + np.exp(-(8 * 3 * 128 / 255 - 12))), abs=1e-4)  # float32


def test_missing_model_says_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="make train.*MODEL_PATH"):
        Predictor.load(tmp_path / "maskdetect.h5")


def test_unreadable_or_unknown_model_files_are_model_errors(tmp_path):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match="could not load"):
        Predictor.load(corrupt)
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"\.h5"):
        Predictor.load(other)


def test_the_served_model_comes_from_the_settings(model_file, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(model_file))
    assert Predictor.load(Settings.from_env().served_model).name == "maskdetect.h5"


def test_the_name_comes_from_the_metrics_beside_the_model_and_a_recorded_threshold_is_ignored(model_file, tmp_path):
    model = shutil.copy(model_file, tmp_path / "maskdetect.h5")
    metrics = tmp_path / "metrics.json"
    recorded = {"model": "cnn4-abcdef12-seed1", "threshold": 0.9, "model_bytes": os.path.getsize(model),
                "crowd_threshold": {"threshold": 0.12, "n": 10}}  # what older models recorded
    metrics.write_text(json.dumps(recorded))
    loaded = Predictor.load(model)
    assert loaded.name == "cnn4-abcdef12-seed1"
    assert not hasattr(loaded, "threshold") and not hasattr(loaded, "crowd_threshold")
    light = loaded.predict(Image.new("RGB", (100, 100), (182, 182, 182)))  # p(with_mask) ~ 0.8, under the recorded 0.9
    assert light.label == "with_mask" and 0.5 < light.with_mask < 0.9
    # Metrics of another file (its size differs) are not this model's: the file name is used.
    metrics.write_text(json.dumps({"model": "other", "model_bytes": 123}))
    assert Predictor.load(model).name == "maskdetect.h5"
    metrics.write_text("{broken")
    assert Predictor.load(model).name == "maskdetect.h5"


# ---------------------------------------------------------------------------- maskdetect predict


def run_cli(*args: str) -> int:
    from maskdetect.cli import main

    return main(["predict", *args])


def test_cli_prints_one_json_line_per_input(model_file, tmp_path, http_server, monkeypatch, capsys):
    white, black = tmp_path / "white.png", tmp_path / "black.jpg"
    Image.new("RGB", (30, 30), "white").save(white)
    Image.new("RGB", (30, 30), "black").save(black)
    http_server["/white.png"] = (200, white.read_bytes())
    monkeypatch.setenv("MASKDETECT_ALLOW_PRIVATE_URLS", "1")
    url = f"{http_server.base_url}/white.png"
    assert run_cli(str(white), str(black), url, "--model", str(model_file)) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["input"], line["label"]) for line in lines] == [
        (str(white), "with_mask"),
        (str(black), "without_mask"),
        (url, "with_mask"),
    ]
    assert lines[0]["with_mask"] == lines[2]["with_mask"]
    assert list(lines[0]) == ["input", "label", "with_mask", "incorrect", "without_mask", "model", "face"]
    assert lines[0]["face"] is None  # a blank image has no face: the whole image was classified


def test_cli_reports_each_bad_input_and_exits_non_zero(model_file, tmp_path, monkeypatch, capsys):
    good, text = tmp_path / "good.png", tmp_path / "notes.txt"
    Image.new("RGB", (30, 30), "white").save(good)
    text.write_text("hello")
    monkeypatch.delenv("MASKDETECT_ALLOW_PRIVATE_URLS", raising=False)
    code = run_cli(str(tmp_path / "missing.jpg"), str(text), "http://127.0.0.1/a.jpg", str(good), "--model", str(model_file))
    captured = capsys.readouterr()
    assert code == 1
    assert [json.loads(line)["input"] for line in captured.out.splitlines()] == [str(good)]
    errors = captured.err.splitlines()
    assert len(errors) == 3
    assert "no such file" in errors[0] and "not a readable image" in errors[1] and "loopback" in errors[2]


def test_cli_without_a_model_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "none.h5"))
    assert run_cli("photo.jpg") == 1
    assert "make train" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the committed model

DEPLOYED = constants.PROJECT_ROOT / "deployment" / constants.MODEL_FILE


@pytest.mark.skipif(not DEPLOYED.exists(), reason=f"{DEPLOYED} is not committed yet (make train writes it)")
def test_the_committed_deployment_model_is_served():
    from maskdetect.service import create_app

    client = create_app({"TESTING": True, "MODEL_PATH": str(DEPLOYED)}).test_client()
    health = client.get("/health").get_json()
    metrics = json.loads((DEPLOYED.parent / constants.METRICS_FILE).read_text())
    assert health == {"status": "ok", "model": metrics["model"]}
    predictor = client.application.extensions["maskdetect.predictor"]
    assert (predictor.backend.input_size, predictor.backend.channels) == (100, 3)
    for seed in range(3):
        answer = client.post("/predict", data=encode(photo(seed, (200, 260))), content_type="image/jpeg")
        assert answer.status_code == 200
        body = answer.get_json()
        assert body["model"] == metrics["model"] and body["label"] in constants.LABELS
        shown = [body[label] for label in constants.LABELS]
        assert all(0 <= p <= 1 for p in shown) and sum(shown) == pytest.approx(1.0, abs=1e-5)
        assert body[body["label"]] == max(shown)


# ---------------------------------------------------------------------------- face-centred answers


@pytest.fixture(scope="module")
def subject_photo(observations):
    return observations / "with_mask" / "0-with-mask.jpg"  # a head-and-shoulders photo, face in the upper middle


def test_a_photo_is_answered_for_its_largest_face(model_file, subject_photo):
    from maskdetect.core.faces import expand_box
    from maskdetect.core.images import decode_image

    predictor = Predictor.load(model_file, face_centred=True)
    answer = predictor.predict(subject_photo)
    image = decode_image(subject_photo)
    xmin, ymin, xmax, ymax = answer.face
    assert 0 <= xmin < xmax <= image.width and 0 <= ymin < ymax <= image.height
    assert (xmax - xmin) * (ymax - ymin) < image.width * image.height / 4  # the face, not the photo
    # what the model saw: the face grown by the training crops' margin, through the one preprocess
    crop = image.crop(expand_box(tuple(answer.face), constants.FACE_CROP_MARGIN, image.width, image.height))
    assert answer.with_mask == predictor.predict_batch([crop])[0].with_mask
    whole = Predictor.load(model_file, face_centred=False).predict(subject_photo)
    assert whole.face is None and whole.with_mask == predictor.predict_batch([subject_photo])[0].with_mask
    assert whole.with_mask != answer.with_mask  # the crop is another input
    assert answer.as_dict()["face"] == answer.face and list(answer.as_dict())[-1] == "face"


def test_a_large_photo_is_answered_with_the_face_box_in_its_full_size_pixels(model_file, subject_photo, tmp_path):
    import io

    from maskdetect.core.images import decode_image, decode_reduced

    small = decode_image(subject_photo).convert("RGB")
    large = small.resize((small.width * 4, small.height * 4), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    large.save(buffer, "JPEG", quality=92)
    reduced, scale = decode_reduced(buffer.getvalue(), constants.SUBJECT_DECODE_SIDE)
    assert scale > 1  # decoded at a reduced size
    answer = Predictor.load(model_file, face_centred=True).predict(buffer.getvalue())
    at_small_size = Predictor.load(model_file, face_centred=True).predict(subject_photo)
    # the same face, in the large photo's pixels: four times the small photo's box, within a few pixels
    assert np.allclose(answer.face, [4 * v for v in at_small_size.face], atol=4 * 6)
    assert answer.face[2] <= large.width and answer.face[3] <= large.height


def test_without_a_face_the_whole_photo_is_classified(model_file):
    predictor = Predictor.load(model_file, face_centred=True)
    blank = encode(Image.new("RGB", (200, 150), (200, 200, 200)), "PNG")
    answer = predictor.predict(blank)
    assert answer.face is None
    assert answer == predictor.predict_batch([blank])[0]


def test_face_centring_is_on_unless_turned_off(model_file):
    assert Predictor.load(model_file).subject_detector is not None
    assert Predictor.load(model_file, face_centred=False).subject_detector is None


def test_face_centring_without_the_detector_weights_says_what_to_do(model_file, tmp_path):
    from maskdetect.core.weights import DETECTOR_FILE

    with pytest.raises(ModelError, match="make weights") as error:
        Predictor.load(model_file, face_centred=True, detector_weights=tmp_path / DETECTOR_FILE)
    assert str(tmp_path / DETECTOR_FILE) in str(error.value)
    assert Predictor.load(model_file, face_centred=False).predict(encode(photo(1))).face is None  # whole photos need no weights


def test_the_subject_detector_has_the_subject_settings_loaded(model_file):
    predictor = Predictor.load(model_file, face_centred=True)
    detector, second = predictor.subject_detector, predictor.second_look
    assert detector.scales == constants.SUBJECT_DETECTOR["scales"] == (1.0,)
    assert second.scales == constants.SECOND_LOOK["scales"] == (1.0, 2.0)
    for found, settings in ((detector, constants.SUBJECT_DETECTOR), (second, constants.SECOND_LOOK)):
        assert (found.score_threshold, found.nms_threshold, found.max_side) == (
            settings["score_threshold"], settings["nms_threshold"], settings["max_side"]
        )
    assert detector._shared.network is not None  # read at load time, not by the first request
    assert second._shared is detector._shared  # one network, two settings
    assert Predictor.load(model_file, face_centred=False).second_look is None


# ---------------------------------------------------------------------------- the second look


class Counting:
    """A face detector wrapped to count its calls."""

    def __init__(self, detector):
        self.detector, self.calls = detector, 0

    def detect(self, image):
        self.calls += 1
        return self.detector.detect(image)


def counted(predictor: Predictor) -> tuple[Counting, Counting]:
    predictor.subject_detector, predictor.second_look = Counting(predictor.subject_detector), Counting(predictor.second_look)
    return predictor.subject_detector, predictor.second_look


@pytest.fixture(scope="module")
def small_face(observations) -> tuple[bytes, tuple[int, int, int, int]]:
    """A 2400x1600 photo with one real face 60 px wide pasted in (8 px in the first look's 320 px), and where it is.

    The face, with half its width around it, comes from a portrait the first look finds; the rest is a flat wall.
    """
    import io

    portrait = Image.open(observations / "without_mask" / "298.jpg").convert("RGB")
    face = (18, 116, 247, 418)  # what the first look finds in the portrait (checked below)
    margin = (face[2] - face[0]) // 2
    left, top = max(face[0] - margin, 0), max(face[1] - margin, 0)
    crop = portrait.crop((left, top, min(face[2] + margin, portrait.width), min(face[3] + margin, portrait.height)))
    scale = 60 / (face[2] - face[0])
    small = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS)
    at = (1300, 500)
    wall = Image.new("RGB", (2400, 1600), (120, 130, 125))
    wall.paste(small, at)
    buffer = io.BytesIO()
    wall.save(buffer, "JPEG", quality=92)
    where = tuple(round(at[i % 2] + (face[i] - (left, top)[i % 2]) * scale) for i in range(4))
    return buffer.getvalue(), where


def test_a_photo_whose_face_the_first_look_finds_never_takes_the_second(model_file, subject_photo, observations):
    predictor = Predictor.load(model_file, face_centred=True)
    first, second = counted(predictor)
    for path in (subject_photo, observations / "without_mask" / "298.jpg"):
        assert predictor.predict(path).face is not None
    assert (first.calls, second.calls) == (2, 0)
    assert predictor.predict(observations / "without_mask" / "298.jpg").face == [18, 116, 247, 418]  # the portrait used below


def test_a_photo_without_a_face_takes_both_looks_and_is_classified_whole(model_file):
    predictor = Predictor.load(model_file, face_centred=True)
    first, second = counted(predictor)
    blank = encode(Image.new("RGB", (2000, 1500), (200, 200, 200)))
    answer = predictor.predict(blank)
    assert (first.calls, second.calls) == (1, 1)
    assert answer.face is None and answer == predictor.predict_batch([blank])[0]


def test_a_small_face_only_the_second_look_finds_gets_its_box(model_file, small_face):
    from maskdetect.core.images import decode_reduced
    from maskdetect.training.scenes import box_iou

    photo_bytes, where = small_face
    predictor = Predictor.load(model_file, face_centred=True)
    reduced, scale = decode_reduced(photo_bytes, constants.SUBJECT_DECODE_SIDE)
    assert predictor.subject_detector.detect(reduced) == []  # the first look misses it
    answer = predictor.predict(photo_bytes)
    assert answer.face is not None and box_iou(tuple(answer.face), where) > 0.5, (answer.face, where)
    # the face is what was classified, not the wall
    wall = Predictor(predictor.backend, predictor.name, predictor.subject_detector, second_look=None).predict(photo_bytes)
    assert wall.face is None and wall.with_mask != answer.with_mask


def test_cli_whole_image_flag(model_file, subject_photo, capsys):
    assert run_cli(str(subject_photo), "--model", str(model_file)) == 0
    centred = json.loads(capsys.readouterr().out)
    assert run_cli(str(subject_photo), "--model", str(model_file), "--whole-image") == 0
    whole = json.loads(capsys.readouterr().out)
    assert len(centred["face"]) == 4 and whole["face"] is None


def test_evaluate_photos_answers_as_predict_does(model_file, observations, tmp_path, capsys):
    from maskdetect.cli import main

    folder = tmp_path / "photos"
    for label, names in (("with_mask", ["0-with-mask.jpg", "1-with-mask.jpg"]), ("without_mask", ["298.jpg", "0.jpg"])):
        (folder / label).mkdir(parents=True)
        for name in names:
            shutil.copy(observations / label / name, folder / label / name)
    assert main(["evaluate", "photos", str(folder), "--model", str(model_file), "--quiet"]) == 0
    centred = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "photos", str(folder), "--model", str(model_file), "--quiet", "--whole-image"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert centred["n"] == whole["n"] == 4
    assert centred["face_centred"] and not whole["face_centred"]
    assert centred["faces_found"] >= 3 and whole["faces_found"] == 0
    predictor = Predictor.load(model_file, face_centred=True)
    called_masked = sum(predictor.predict(path).label == "with_mask" for path in folder.glob("*/*.jpg"))
    assert called_masked == sum(row[constants.LABELS.index("with_mask")] for row in centred["confusion_matrix"])  # column with_mask
