"""The one inference path, the `maskdetect predict` command, and the committed deployment model."""

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


def test_answers_are_the_models_output_on_the_preprocessed_image(predictor):
    images = [photo(seed, (90 + seed, 120)) for seed in range(4)]
    answers = predictor.predict_batch([encode(image) for image in images])
    batch = np.stack([preprocess(encode(image)) for image in images])
    expected = np.asarray(predictor.backend.model(batch, training=False)).ravel()
    assert [a.with_mask for a in answers] == pytest.approx(expected, abs=1e-6)
    assert [predictor.predict(encode(image)) for image in images] == answers  # one at a time: the same


def test_bytes_paths_and_pil_images_give_one_answer(predictor, tmp_path):
    image = photo(5)
    path = tmp_path / "a.png"
    image.save(path)
    assert predictor.predict(path) == predictor.predict(path.read_bytes()) == predictor.predict(image)


def test_the_threshold_decides_the_label(model_file):
    grey = encode(Image.new("RGB", (10, 10), (128, 128, 128)), "PNG")  # p(with_mask) ~ 0.51
    p = Predictor.load(model_file).predict(grey).with_mask
    assert 0.45 < p < 0.55
    strict = Predictor.load(model_file)
    strict.threshold = p + 0.01
    assert strict.predict(grey).label == "without_mask"
    strict.threshold = p
    assert strict.predict(grey).label == "with_mask"


def test_the_label_agrees_with_the_probability_shown_even_at_the_threshold(predictor):
    for p in (0.4999996, 0.5, 0.2034744, 0.9999999):
        for threshold in (round(p, 6), float(np.nextafter(p, 1)), 0.5):
            answer = predictor._answer(p, threshold)
            assert (answer.label == "with_mask") == (answer.with_mask >= threshold)
            assert answer.with_mask + answer.without_mask == pytest.approx(1.0)


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


def test_the_name_and_threshold_come_from_the_metrics_beside_the_model(model_file, tmp_path):
    model = shutil.copy(model_file, tmp_path / "maskdetect.h5")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"model": "cnn2-abcdef12-seed1", "threshold": 0.6, "model_bytes": os.path.getsize(model)}))
    loaded = Predictor.load(model)
    assert (loaded.name, loaded.threshold) == ("cnn2-abcdef12-seed1", 0.6)
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
    assert set(lines[0]) == {"input", "label", "with_mask", "without_mask", "model", "face"}
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
        assert body["model"] == metrics["model"] and 0 <= body["with_mask"] <= 1


def test_one_threshold_a_crowd_threshold_an_older_model_recorded_is_ignored(model_file, tmp_path):
    model = shutil.copy(model_file, tmp_path / "maskdetect.h5")
    metrics = tmp_path / "metrics.json"
    older = {"model": "cnn2-x", "threshold": 0.5, "model_bytes": os.path.getsize(model), "crowd_threshold": {"threshold": 0.12, "n": 10}}
    metrics.write_text(json.dumps(older))
    loaded = Predictor.load(model)
    assert loaded.threshold == 0.5 and not hasattr(loaded, "crowd_threshold")
    # The override of predict_batch labels by it; the probability is the same.
    grey = Image.new("RGB", (100, 100), (120, 120, 120))
    p = loaded.predict(grey).with_mask
    assert loaded.predict(grey).label == ("with_mask" if p >= 0.5 else "without_mask")
    assert loaded.predict_batch([grey], threshold=p - 0.001)[0].label == "with_mask"
    assert loaded.predict_batch([grey], threshold=p + 0.001)[0].label == "without_mask"
    assert loaded.predict_batch([grey], threshold=p - 0.001)[0].with_mask == p


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
    detector = Predictor.load(model_file, face_centred=True).subject_detector
    assert detector.scales == constants.SUBJECT_DETECTOR["scales"] == (1.0,)
    assert (detector.score_threshold, detector.nms_threshold, detector.max_side) == (
        constants.SUBJECT_DETECTOR["score_threshold"], constants.SUBJECT_DETECTOR["nms_threshold"], constants.SUBJECT_DETECTOR["max_side"]
    )
    assert detector._shared.network is not None  # read at load time, not by the first request


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
    assert called_masked == centred["confusion_matrix"][0][1] + centred["confusion_matrix"][1][1]  # column with_mask
