"""POST /detect: real YuNet on a real street scene, the three input forms, the PNG answer, errors."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.samples import SHARED, require
from tests.samples import encode
from maskdetect.core import constants
from maskdetect.core.crowd import COLOURS
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


def test_detect_finds_the_faces_of_a_real_scene(app, detected):
    assert list(detected) == ["faces", "total", "with_mask", "without_mask", "unmasked_ratio", "counted", "close_pairs", "model"]
    for truth in FOUND:
        assert any(iou(face["box"], truth) >= 0.4 for face in detected["faces"]), detected["faces"]
    assert detected["total"] == len(detected["faces"]) == detected["with_mask"] + detected["without_mask"]
    sure = [face for face in detected["faces"] if face["score"] >= constants.SHARE_MIN_SCORE] or detected["faces"]
    assert detected["counted"] == len(sure)
    unmasked = sum(face["label"] == "without_mask" for face in sure)
    assert detected["unmasked_ratio"] == pytest.approx(unmasked / len(sure), abs=1e-4)
    threshold = app.extensions["maskdetect.predictor"].threshold
    for face in detected["faces"]:
        xmin, ymin, xmax, ymax = face["box"]
        assert 0 <= xmin < xmax <= 512 and 0 <= ymin < ymax <= 366
        assert face["label"] == ("with_mask" if face["with_mask"] >= threshold else "without_mask")
        assert constants.DETECTOR["score_threshold"] <= face["score"] <= 1
    unmasked = {i for i, face in enumerate(detected["faces"]) if face["label"] == "without_mask"}
    for pair in detected["close_pairs"]:
        assert {pair["a"], pair["b"]} <= unmasked and pair["a"] < pair["b"] and 0 < pair["distance_m"] < 1.5
    assert detected["model"] == "maskdetect.h5"


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
    for face in detected["faces"]:
        xmin, ymin, xmax, ymax = face["box"]
        assert drawn.convert("RGB").getpixel((xmin, (ymin + ymax) // 2)) == COLOURS[face["label"]]


def test_no_face_gives_a_null_ratio(client):
    body = client.post("/detect", data=encode(Image.new("RGB", (200, 150), (128, 128, 128))), content_type="image/jpeg").get_json()
    assert body["faces"] == [] and body["total"] == 0 and body["unmasked_ratio"] is None and body["close_pairs"] == []


def test_detect_refuses_what_predict_refuses(client, scene):
    assert_error(client.post("/detect?format=gif", data=scene, content_type="image/jpeg"), 400, "format=png")
    assert_error(client.post("/detect", data=b"", content_type="image/jpeg"), 400, "empty")
    assert_error(client.post("/detect", data=b"not an image", content_type="image/jpeg"), 422, "not an image")
    assert_error(client.post("/detect", data=scene, content_type="text/plain"), 415, "image/*")
    assert_error(client.post("/detect", json={"url": "http://127.0.0.1/x.jpg"}), 400, "refused URL")
    assert_error(client.get("/detect"), 405, "POST")
