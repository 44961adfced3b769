"""POST /detect: real YuNet on a real street scene, three labels and their counts, the three input forms,
the annotated answers (PNG, JPEG, WebP) in three colours and capped, errors."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tests.samples import SHARED, require
from tests.samples import encode
from maskdetect.core import constants
from maskdetect.core.crowd import COLOURS, capped_size
from test_service import assert_error

# scene000.jpg (512x366): its three labelled faces, which the crowd detector finds.
SCENE = "scene000.jpg"
FOUND = [(79, 105, 109, 142), (185, 100, 226, 144), (325, 90, 360, 141)]


@pytest.fixture(scope="module")
def scene() -> bytes:
    return (require(SHARED / "scenes-dev" / "images") / SCENE).read_bytes()


@pytest.fixture(scope="module")
def detected(app, scene) -> dict:
    response = app.test_client().post("/detect", data=scene, content_type="image/jpeg")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def iou(a, b) -> float:
    from maskdetect.training.scenes import box_iou

    return box_iou(tuple(a), tuple(b))


def test_detect_finds_the_faces_of_a_real_scene_and_counts_each_label(app, detected):
    assert list(detected) == [
        "faces", "total", "with_mask", "incorrect", "without_mask", "unmasked_ratio", "counted", "close_pairs", "model"]
    for truth in FOUND:
        assert any(iou(face["box"], truth) >= 0.4 for face in detected["faces"]), detected["faces"]
    assert detected["total"] == len(detected["faces"]) == sum(detected[label] for label in constants.LABELS)
    for label in constants.LABELS:
        assert detected[label] == sum(face["label"] == label for face in detected["faces"])
    # The brightness model calls the scene's mid-grey faces incorrect: the share and the pairs count them as not masked.
    assert detected["incorrect"] >= 1
    sure = [face for face in detected["faces"] if face["score"] >= constants.SHARE_MIN_SCORE] or detected["faces"]
    assert detected["counted"] == len(sure)
    not_masked = sum(face["label"] in ("incorrect", "without_mask") for face in sure)
    assert detected["unmasked_ratio"] == pytest.approx(not_masked / len(sure), abs=1e-4)
    for face in detected["faces"]:
        xmin, ymin, xmax, ymax = face["box"]
        assert 0 <= xmin < xmax <= 512 and 0 <= ymin < ymax <= 366
        shown = [face[label] for label in constants.LABELS]
        assert face[face["label"]] == max(shown) and constants.LABELS.index(face["label"]) == shown.index(max(shown))
        assert sum(shown) == pytest.approx(1.0, abs=1e-5)
        assert constants.DETECTOR["score_threshold"] <= face["score"] <= 1
    not_masked = {i for i, face in enumerate(detected["faces"]) if face["label"] != "with_mask"}
    for pair in detected["close_pairs"]:
        assert {pair["a"], pair["b"]} <= not_masked and pair["a"] < pair["b"] and 0 < pair["distance_m"] < 1.5
    assert any(detected["faces"][i]["label"] == "incorrect" for pair in detected["close_pairs"] for i in (pair["a"], pair["b"]))
    assert detected["model"] == "maskdetect.h5"


def test_each_face_is_answered_as_predict_batch_answers_its_crop(app, scene, detected):
    analyzer = app.extensions["maskdetect.analyzer"]
    from maskdetect.core.images import decode_image

    crops = analyzer.crops(decode_image(scene), [tuple(face["box"]) for face in detected["faces"]])
    for face, answer in zip(detected["faces"], analyzer.predictor.predict_batch(crops)):
        assert {k: face[k] for k in ("label", *constants.LABELS)} == {k: answer.as_dict()[k] for k in ("label", *constants.LABELS)}


def test_a_two_class_model_answers_detect_with_no_incorrect_face(two_class_model_file, scene):
    from maskdetect.service import create_app

    body = create_app({"TESTING": True, "MODEL_PATH": str(two_class_model_file)}).test_client().post(
        "/detect", data=scene, content_type="image/jpeg").get_json()
    assert body["total"] >= 3 and body["incorrect"] == 0 and body["with_mask"] + body["without_mask"] == body["total"]
    for face in body["faces"]:
        assert face["incorrect"] == 0 and face["label"] == ("with_mask" if face["with_mask"] >= 0.5 else "without_mask")


def test_detect_answer_matches_the_documented_schema(client, detected):
    import jsonschema

    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    jsonschema.validate(detected, schemas["Detection"])


def test_the_three_forms_give_the_same_faces(app, client, scene, detected, http_server, monkeypatch):
    http_server["/scene.jpg"] = (200, scene, len(scene), {"Content-Type": "image/jpeg"})
    form = client.post("/detect", data={"image": (io.BytesIO(scene), SCENE)}).get_json()
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_URLS", True)
    url = client.post("/detect", json={"url": f"{http_server.base_url}/scene.jpg"}).get_json()
    assert form == url == detected


def test_png_answer_draws_the_boxes_in_label_colours(client, scene, detected):
    response = client.post("/detect?format=png", data=scene, content_type="image/jpeg")
    assert response.status_code == 200 and response.mimetype == "image/png"
    drawn = Image.open(io.BytesIO(response.data))
    assert drawn.format == "PNG" and drawn.size == (512, 366)
    rgb = drawn.convert("RGB")
    for face in detected["faces"]:
        xmin, ymin, xmax, ymax = face["box"]
        edge = Counter(rgb.getpixel((xmin, y)) for y in range(ymin, ymax))  # a close pair's red line may cross it
        assert edge.most_common(1)[0][0] == COLOURS[face["label"]], (face, edge)
    assert "incorrect" in {face["label"] for face in detected["faces"]} and COLOURS["incorrect"] == (235, 140, 0)  # amber drawn


def test_jpeg_and_webp_answers_draw_the_same_photo_smaller(client, scene):
    png = Image.open(io.BytesIO(client.post("/detect?format=png", data=scene, content_type="image/jpeg").data)).convert("RGB")
    for answer_format, pillow_format in (("jpeg", "JPEG"), ("webp", "WEBP")):
        response = client.post(f"/detect?format={answer_format}", data=scene, content_type="image/jpeg")
        assert response.status_code == 200 and response.mimetype == f"image/{answer_format}"
        assert f"detected.{answer_format}" in response.headers["Content-Disposition"]
        drawn = Image.open(io.BytesIO(response.data))
        assert drawn.format == pillow_format and drawn.size == png.size
        difference = np.abs(np.asarray(drawn.convert("RGB"), dtype=np.int16) - np.asarray(png, dtype=np.int16))
        assert difference.mean() < 4, (answer_format, difference.mean())  # lossy, but the same boxes on the same photo


def test_a_large_photo_is_answered_shrunk_with_its_boxes_where_the_faces_are(client, scene):
    large = Image.open(io.BytesIO(scene)).resize((2048, 1464), Image.Resampling.LANCZOS)  # 4x scene000
    body = encode(large, "PNG")
    detected = client.post("/detect", data=body, content_type="image/png").get_json()
    assert detected["faces"] and max(face["box"][2] for face in detected["faces"]) > 1000  # boxes in the original's pixels
    response = client.post("/detect?format=png", data=body, content_type="image/png")
    drawn = Image.open(io.BytesIO(response.data)).convert("RGB")
    assert drawn.size == (constants.ANNOTATED_MAX_SIDE, 1372)  # 2048x1464 * 1920/2048, the aspect kept
    scale = constants.ANNOTATED_MAX_SIDE / 2048
    for face in detected["faces"]:
        xmin, ymin, xmax, ymax = (round(v * scale) for v in face["box"])
        edge = Counter(drawn.getpixel((xmin + 1, y)) for y in range(ymin, ymax))  # inside the line, sized for 1920 px
        assert edge.most_common(1)[0][0] == COLOURS[face["label"]], (face, edge)


@pytest.mark.parametrize("answer_format", ["png", "jpeg", "webp"])
def test_a_noisy_square_photo_is_answered_within_the_cap_and_under_10_mb(client, answer_format):
    noise = Image.fromarray(np.random.default_rng(25).integers(0, 256, (2400, 2400, 3), dtype=np.uint8))
    body = encode(noise, "JPEG", quality=90)  # noise in a JPEG under the 10 MB body limit: the worst PNG answer's kind
    assert len(body) <= constants.MAX_IMAGE_BYTES
    response = client.post(f"/detect?format={answer_format}", data=body, content_type="image/jpeg")
    assert response.status_code == 200, response.get_data(as_text=True)
    drawn = Image.open(io.BytesIO(response.data))
    assert max(drawn.size) <= constants.ANNOTATED_MAX_SIDE and len(response.data) <= 10_000_000
    if answer_format == "png":  # lossless: also the pixel cap, 1788x1788 for a square
        assert drawn.size == (1788, 1788) and drawn.width * drawn.height <= constants.ANNOTATED_PNG_MAX_PIXELS
    else:
        assert drawn.size == (1920, 1920)


def test_capped_size_keeps_the_aspect_and_meets_both_caps():
    assert capped_size((512, 366), 1920, 3_200_000) == (512, 366)
    assert capped_size((7000, 1000), 1920) == (1920, 274)
    assert capped_size((1000, 7000), 1920) == (274, 1920)
    assert capped_size((1920, 1080), 1920, 3_200_000) == (1920, 1080)
    assert capped_size((6324, 6324), 1920, 3_200_000) == (1788, 1788)
    assert capped_size((10000, 1), 1920) == (1920, 1)


def test_no_face_gives_a_null_ratio(client):
    body = client.post("/detect", data=encode(Image.new("RGB", (200, 150), (128, 128, 128))), content_type="image/jpeg").get_json()
    assert body["faces"] == [] and body["total"] == 0 and body["unmasked_ratio"] is None and body["close_pairs"] == []


def test_detect_refuses_what_predict_refuses(client, scene):
    assert_error(client.post("/detect?format=gif", data=scene, content_type="image/jpeg"), 400, "format=jpeg, webp or png")
    assert_error(client.post("/detect", data=b"", content_type="image/jpeg"), 400, "empty")
    assert_error(client.post("/detect", data=b"not an image", content_type="image/jpeg"), 422, "not an image")
    assert_error(client.post("/detect", data=scene, content_type="text/plain"), 415, "image/*")
    assert_error(client.post("/detect", json={"url": "http://127.0.0.1/x.jpg"}), 400, "refused URL")
    assert_error(client.get("/detect"), 405, "POST")


# ---------------------------------------------------------------------------- a clip


@pytest.fixture(scope="module")
def street_clip(tmp_path_factory) -> bytes:
    """One second of MPEG-4 at 10 fps: the real street scene panned 2 px a frame."""
    import cv2

    scene = cv2.imread(str(require(SHARED / "scenes-dev" / "images") / SCENE))
    width, height = scene.shape[1] - 40, scene.shape[0] - 20
    path = tmp_path_factory.mktemp("clip") / "street.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
    for index in range(10):
        writer.write(scene[10 : 10 + height, 2 * index : 2 * index + width])
    writer.release()
    return path.read_bytes()


def test_a_clips_answer_counts_people_by_label_and_matches_the_documented_schema(client, street_clip):
    import jsonschema

    response = client.post("/detect?frames=1", data=street_clip, content_type="video/mp4")
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    jsonschema.validate(answer, {"$ref": "#/components/schemas/ClipSummary", "components": {"schemas": schemas}})
    by_label = answer["people_by_label"]
    assert list(by_label) == list(constants.LABELS) and sum(by_label.values()) == answer["unique_people"] >= 3
    assert answer["unique_unmasked_people"] == by_label["incorrect"] + by_label["without_mask"]  # incorrect is not masked
    assert by_label["incorrect"] >= 1  # the brightness model's mid-grey faces
    assert {label: sum(p["label"] == label for p in answer["people"]) for label in constants.LABELS} == by_label
    for person in answer["people"]:
        assert person[person["label"]] == max(person[label] for label in constants.LABELS)
    faces = [face for frame in answer["tracked_frames"] for face in frame["faces"]]
    assert faces and all(face["track_label"] in constants.LABELS and face["label"] in constants.LABELS for face in faces)


def test_a_clip_refuses_a_format_for_photos_and_a_photo_one_for_clips(client, scene, street_clip):
    assert_error(client.post("/detect?format=png", data=street_clip, content_type="video/mp4"), 400, "format=png")
    assert_error(client.post("/detect?format=mp4", data=scene, content_type="image/jpeg"), 400, "format=mp4")
    assert_error(client.post("/predict", data=street_clip, content_type="video/mp4"), 415, "POST /detect")
