"""The Flask service: three labels, the ways to send an image, every error, odd images, OpenAPI, the page."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.samples import SHARED, require
from tests.samples import encode, photo
from maskdetect.core import constants

WHITE = encode(Image.new("RGB", (64, 48), "white"))
BLACK = encode(Image.new("RGB", (64, 48), "black"))
GREY = encode(Image.new("RGB", (64, 48), (128, 128, 128)))  # the brightness model's incorrect: a mask below the nose


def shown(body: dict) -> list[float]:
    return [body[label] for label in constants.LABELS]


def assert_label_is_the_most_probable_shown(body: dict) -> None:
    """The label is the most probable of the three numbers in the answer, a tie going to the earlier label."""
    assert body["label"] == constants.LABELS[shown(body).index(max(shown(body)))], body
    assert sum(shown(body)) == pytest.approx(1.0, abs=1e-5) and all(0 <= p <= 1 for p in shown(body)), body


def assert_error(response, status: int, *words: str) -> dict:
    """An error answer: the status, JSON {"error": text}, no trace, the words the caller needs."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["error"] and body["error"].strip()
    assert "Traceback" not in body["error"] and 'File "' not in body["error"]
    for word in words:
        assert word in body["error"]
    return body


# ---------------------------------------------------------------------------- answers


def test_health_names_the_model(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "model": "maskdetect.h5"}


def test_answer_has_the_documented_shape_and_order(client):
    response = client.post("/predict", data=WHITE, content_type="image/jpeg")
    assert response.status_code == 200
    body = response.get_json()
    assert list(json.loads(response.get_data(as_text=True))) == ["label", "with_mask", "incorrect", "without_mask", "model", "face"]
    assert body["label"] == "with_mask" and body["with_mask"] > 0.99
    assert body["face"] is None  # no face in a white image: the whole image was classified
    assert_label_is_the_most_probable_shown(body)
    assert body["model"] == "maskdetect.h5"


def test_a_grey_image_is_answered_incorrect_with_its_three_probabilities(client):
    body = client.post("/predict", data=GREY, content_type="image/jpeg").get_json()
    assert body["label"] == "incorrect" and body["incorrect"] > 0.9
    assert 0 < body["with_mask"] < 0.1 and 0 < body["without_mask"] < 0.1
    assert_label_is_the_most_probable_shown(body)
    assert body["without_mask"] != pytest.approx(1 - body["with_mask"])  # no longer the complement, as documented


def test_a_two_class_model_file_is_still_served_with_incorrect_zero(two_class_model_file):
    from maskdetect.service import create_app

    client = create_app({"TESTING": True, "MODEL_PATH": str(two_class_model_file)}).test_client()
    for image, label in ((WHITE, "with_mask"), (GREY, "with_mask"), (BLACK, "without_mask")):  # grey: p(with_mask) ~ 0.51
        body = client.post("/predict", data=image, content_type="image/jpeg").get_json()
        assert (body["label"], body["incorrect"]) == (label, 0.0), body
        assert body["with_mask"] + body["without_mask"] == pytest.approx(1.0, abs=2e-6)
        assert_label_is_the_most_probable_shown(body)
        assert body["label"] == ("with_mask" if body["with_mask"] >= 0.5 else "without_mask")  # as the two-class API said


def test_a_photo_is_answered_for_its_face_unless_face_centring_is_off(app, model_file, observations):
    from maskdetect.service import create_app

    photo_bytes = (observations / "without_mask" / "298.jpg").read_bytes()
    centred = app.test_client().post("/predict", data=photo_bytes, content_type="image/jpeg").get_json()
    predictor = app.extensions["maskdetect.predictor"]
    assert centred == predictor.predict(photo_bytes).as_dict() and len(centred["face"]) == 4
    # /predict looks for one large face at 1x, then for a small one at 1x and 2x; /detect runs the crowd settings
    assert predictor.subject_detector.scales == constants.SUBJECT_DETECTOR["scales"]
    assert predictor.second_look.scales == constants.SECOND_LOOK["scales"]
    assert app.extensions["maskdetect.analyzer"].detector.scales == constants.DETECTOR["scales"]
    whole_app = create_app({"TESTING": True, "MODEL_PATH": str(model_file), "FACE_CENTRED": False})
    whole = whole_app.test_client().post("/predict", data=photo_bytes, content_type="image/jpeg").get_json()
    assert whole["face"] is None and whole["with_mask"] != centred["with_mask"]
    assert whole_app.extensions["maskdetect.predictor"].subject_detector is None
    assert whole_app.extensions["maskdetect.predictor"].second_look is None


@pytest.mark.parametrize("face_centred", [True, False])
def test_missing_detector_weights_stop_the_start_up_with_a_clear_model_error(model_file, tmp_path, monkeypatch, face_centred):
    from maskdetect.core.inference import ModelError
    from maskdetect.service import create_app
    from maskdetect.core.weights import DETECTOR_FILE

    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(tmp_path))
    with pytest.raises(ModelError, match="MASKDETECT_DETECTOR_SOURCE") as error:
        create_app({"TESTING": True, "MODEL_PATH": str(model_file), "FACE_CENTRED": face_centred})
    assert f"the face detector's weights file {tmp_path / DETECTOR_FILE} is missing" in str(error.value)


def test_the_label_follows_the_probabilities(client):
    body = client.post("/predict", data=BLACK, content_type="image/jpeg").get_json()
    assert body["label"] == "without_mask" and body["with_mask"] < 0.01 and body["without_mask"] > 0.99
    for level in range(0, 256, 5):
        assert_label_is_the_most_probable_shown(client.post("/predict", data=encode(Image.new("RGB", (16, 16), (level,) * 3), "PNG"),
                                                             content_type="image/png").get_json())


def test_concurrent_predict_and_detect_answer_as_one_at_a_time(app, observations):
    """Worker threads share one predictor and two detectors: answers must not depend on what runs beside them."""
    from concurrent.futures import ThreadPoolExecutor

    portraits = [(observations / "without_mask" / "298.jpg").read_bytes(), (observations / "with_mask" / "0-with-mask.jpg").read_bytes()]
    scenes = [(require(SHARED / "scenes-dev" / "images") / name).read_bytes() for name in ("scene000.jpg", "scene002.jpg")]
    requests = [("/predict", image) for image in portraits] + [("/detect", image) for image in scenes]

    def answer(request):
        path, image = request
        response = app.test_client().post(path, data=image, content_type="image/jpeg")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    one_at_a_time = [answer(request) for request in requests]
    assert all(body["face"] for body in one_at_a_time[:2]) and all(body["total"] for body in one_at_a_time[2:])
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(answer, requests * 6))
    assert together == one_at_a_time * 6


def test_the_four_forms_give_the_same_answer(app, client, http_server, monkeypatch):
    image = encode(photo(3, (200, 150)), quality=85)
    http_server["/photo.jpg"] = (200, image, len(image), {"Content-Type": "image/jpeg"})
    raw = client.post("/predict", data=image, content_type="image/jpeg").get_json()
    form = client.post("/predict", data={"image": (io.BytesIO(image), "photo.jpg")}).get_json()
    encoded = client.post("/predict", json={"image": "data:image/jpeg;base64," + base64.b64encode(image).decode()}).get_json()
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_URLS", True)
    url = client.post("/predict", json={"url": f"{http_server.base_url}/photo.jpg"}).get_json()
    assert raw == form == encoded == url
    # the brightness model by hand: logits (10 S - 20, 0, 10 - 10 S) of S, the sum of the channel means in [0, 1]
    pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB").resize((100, 100), Image.Resampling.BILINEAR), np.float64)
    brightness = pixels.mean((0, 1)).sum() / 255
    logits = np.array([10 * brightness - 20, 0.0, 10 - 10 * brightness])
    expected = np.exp(logits) / np.exp(logits).sum()
    assert shown(raw) == pytest.approx(expected.tolist(), abs=1e-3)


def test_the_content_type_of_a_raw_body_need_not_match_the_bytes(client):
    assert client.post("/predict", data=encode(Image.new("RGB", (8, 8), "white"), "PNG"), content_type="image/jpeg").status_code == 200


def _rgb(seed=1, size=(80, 60)):
    return photo(seed, size)


def _palette_with_transparency():
    image = _rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def _animated_gif():
    frames = [Image.new("RGB", (40, 40), colour) for colour in ("white", "black", "red")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _rotated_jpeg():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    return encode(_rgb(size=(90, 30)), exif=exif)


ODD_IMAGES = {
    "1x1 png": lambda: encode(Image.new("RGB", (1, 1), "white"), "PNG"),
    "1x1 jpeg": lambda: encode(Image.new("RGB", (1, 1), "white")),
    "16-bit grey png": lambda: encode(Image.fromarray(np.full((30, 20), 40000, np.uint16)), "PNG"),
    "palette png": lambda: encode(_rgb().convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
    "palette png with transparency": _palette_with_transparency,
    "rgba png": lambda: encode(_rgb().convert("RGBA"), "PNG"),
    "la png": lambda: encode(_rgb().convert("LA"), "PNG"),
    "grey jpeg": lambda: encode(_rgb().convert("L")),
    "cmyk jpeg": lambda: encode(_rgb().convert("CMYK")),
    "progressive jpeg": lambda: encode(_rgb(), progressive=True),
    "exif-rotated jpeg": _rotated_jpeg,
    "animated gif": _animated_gif,
    "1-bit bmp": lambda: encode(_rgb().convert("1"), "BMP"),
    "tiff": lambda: encode(_rgb(), "TIFF"),
    "float tiff with NaN": lambda: encode(Image.fromarray(np.where(np.eye(64, dtype=bool), np.nan, 0.5).astype(np.float32), mode="F"), "TIFF"),
    "webp": lambda: encode(_rgb(), "WEBP"),
    "very wide": lambda: encode(Image.new("RGB", (12000, 3), "white")),
    "very tall": lambda: encode(Image.new("RGB", (2, 9000), "white"), "PNG"),
    "large photo": lambda: encode(photo(7, (2000, 1500)), quality=70),
}


@pytest.mark.parametrize("name", ODD_IMAGES)
def test_odd_but_valid_images_are_answered(name, client):
    response = client.post("/predict", data=ODD_IMAGES[name](), content_type="image/x-anything")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["label"] in constants.LABELS
    assert_label_is_the_most_probable_shown(response.get_json())


def test_transparency_is_white_and_an_animation_answers_for_its_first_frame(client):
    clear = encode(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), "PNG")
    assert client.post("/predict", data=clear, content_type="image/png").get_json()["label"] == "with_mask"
    assert client.post("/predict", data=_animated_gif(), content_type="image/gif").get_json()["label"] == "with_mask"


# ---------------------------------------------------------------------------- errors


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb's shape)."""
    real = encode(Image.new("L", (1, 1)), "PNG")
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return real[:8] + ihdr + real[8 + 25 :]


BAD_REQUESTS = {
    # name: (request keyword arguments, status, words in the message)
    "invalid json": (dict(data=b'{"url": ', content_type="application/json"), 400, ["JSON"]),
    "json array": (dict(json=["https://example.com/a.jpg"]), 400, ["JSON object"]),
    "json null": (dict(data=b"null", content_type="application/json"), 400, ["JSON object"]),
    "json without url": (dict(json={"picture": "https://example.com/a.jpg"}), 400, ['"url"', '"image"']),
    "json image not base64": (dict(json={"image": "https://example.com/a.jpg"}), 400, ['"image"', "base64"]),
    "json url and image": (dict(json={"url": "https://example.com/a.jpg", "image": "AAAA"}), 400, ["one of them"]),
    "json url not a string": (dict(json={"url": 42}), 400, ['"url"']),
    "json url empty": (dict(json={"url": "  "}), 400, ['"url"']),
    "ftp url": (dict(json={"url": "ftp://example.com/a.jpg"}), 400, ["refused URL", "http"]),
    "file url": (dict(json={"url": "file:///etc/passwd"}), 400, ["refused URL"]),
    "loopback url": (dict(json={"url": "http://127.0.0.1:9696/health"}), 400, ["refused URL", "not a public address", "upload"]),
    "decimal loopback url": (dict(json={"url": "http://2130706433/"}), 400, ["not a public address"]),
    "metadata url": (dict(json={"url": "http://169.254.169.254/latest/meta-data/"}), 400, ["not a public address"]),
    "multipart without image": (dict(data={"file": (io.BytesIO(WHITE), "a.jpg")}), 400, ['"image"']),
    "multipart image as text field": (dict(data={"image": "not a file"}, content_type="multipart/form-data"), 400, ['"image"']),
    "multipart empty image": (dict(data={"image": (io.BytesIO(b""), "a.jpg")}), 400, ["empty"]),
    "empty raw body": (dict(data=b"", content_type="image/jpeg"), 400, ["empty"]),
    "no content type": (dict(data=WHITE), 415, ["Content-Type"]),
    "text/plain": (dict(data=b"https://example.com/a.jpg", content_type="text/plain"), 415, ["text/plain", "application/json"]),
    "form-urlencoded": (dict(data={"url": "https://example.com/a.jpg"}), 415, ["application/x-www-form-urlencoded"]),
    "random bytes": (dict(data=bytes(range(256)) * 4, content_type="image/png"), 422, ["not an image"]),
    "text as multipart image": (dict(data={"image": (io.BytesIO(b"hello"), "a.txt")}), 422, ["not an image"]),
    "truncated jpeg": (dict(data=WHITE[: len(WHITE) // 2], content_type="image/jpeg"), 422, ["not an image"]),
    "jpeg header only": (dict(data=b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", content_type="image/jpeg"), 422, ["not an image"]),
    "gif header only": (dict(data=b"GIF89a\x10\x00\x10\x00\x80\x00\x00", content_type="image/gif"), 422, ["not an image"]),
    "svg": (dict(data=b'<svg xmlns="http://www.w3.org/2000/svg"/>', content_type="image/svg+xml"), 422, ["not an image"]),
    "icon": (dict(data=encode(Image.new("RGB", (32, 32), "white"), "ICO"), content_type="image/x-icon"), 422,
             ["not an image", "JPEG, PNG, GIF, WebP, BMP or TIFF"]),
    "targa in a form": (dict(data={"image": (io.BytesIO(encode(Image.new("RGB", (32, 32)), "TGA")), "a.tga")}), 422,
                        ["not an image"]),
    "50 MP png": (dict(data=_png_declaring(10_000, 5_000), content_type="image/png"), 422, ["10000x5000", "megapixel"]),
    "400 MP png": (dict(data=_png_declaring(20_000, 20_000), content_type="image/png"), 422, ["pixels"]),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_input_answers_a_json_error_with_the_right_status(name, client):
    kwargs, status, words = BAD_REQUESTS[name]
    assert_error(client.post("/predict", **kwargs), status, *words)


def test_a_body_over_the_limit_is_413(client):
    too_big = b"\xff\xd8" + b"\0" * (10 * 1024 * 1024)
    assert_error(client.post("/predict", data=too_big, content_type="image/jpeg"), 413, "10 MB")
    form = {"image": (io.BytesIO(too_big), "big.jpg")}
    assert_error(client.post("/predict", data=form), 413, "10 MB")


@pytest.mark.parametrize(
    "method, path, status, words",
    [
        ("get", "/predict", 405, ["GET", "POST"]),
        ("put", "/predict", 405, ["PUT"]),
        ("post", "/health", 405, ["GET"]),
        ("delete", "/", 405, ["GET"]),
        ("get", "/nope", 404, ["/nope", "/predict"]),
        ("post", "/predict/", 404, []),
        ("get", "/static/missing.js", 404, []),
    ],
)
def test_wrong_paths_and_methods(method, path, status, words, client):
    assert_error(getattr(client, method)(path), status, *words)


@pytest.fixture
def url_client(app, monkeypatch):
    """The app fetching from 127.0.0.1 (the rule lifted) with short time limits."""
    from maskdetect.core.fetch import Limits

    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setitem(app.config, "URL_LIMITS", Limits(connect_timeout=1, read_timeout=1, total_timeout=1.5, max_bytes=100_000))
    return app.test_client()


def test_url_failures(url_client, http_server):
    base = http_server.base_url
    http_server["/text"] = (200, b"<html>not an image</html>", None, {"Content-Type": "text/html"})
    http_server["/big.jpg"] = (200, b"\xff" * 200_000)
    http_server["/slow.jpg"] = (200, lambda write: time.sleep(2.5), 10)
    http_server["/loop"] = (302, b"", 0, {"Location": "/loop"})
    assert_error(url_client.post("/predict", json={"url": f"{base}/missing.jpg"}), 502, "HTTP 404")
    assert_error(url_client.post("/predict", json={"url": "http://127.0.0.1:9/a.jpg"}), 502, "could not connect")
    assert_error(url_client.post("/predict", json={"url": f"{base}/loop"}), 502, "redirects more than 3")
    assert_error(url_client.post("/predict", json={"url": f"{base}/text"}), 422, "not an image")
    assert_error(url_client.post("/predict", json={"url": f"{base}/big.jpg"}), 422, "100000-byte cap")
    started = time.monotonic()
    assert_error(url_client.post("/predict", json={"url": f"{base}/slow.jpg"}), 504)
    assert time.monotonic() - started < 2.5


def test_a_redirect_to_a_private_address_is_refused(app, client, http_server, monkeypatch, caplog):
    """127.0.0.1 stands in for a public host; its redirect to the metadata address is a 400 that names no address."""
    from maskdetect.core import fetch

    real = fetch.address_problem
    monkeypatch.setattr(fetch, "address_problem", lambda a: None if str(a) == "127.0.0.1" else real(a))
    http_server["/to-metadata"] = (302, b"", 0, {"Location": "http://169.254.169.254/latest/meta-data/"})
    http_server["/to-internal"] = (302, b"", 0, {"Location": "http://db.internal.example/"})
    real_lookup = fetch.socket.getaddrinfo

    def unknown_internal_name(host, *args, **kwargs):  # no DNS query leaves the machine
        if host == "db.internal.example":
            raise fetch.socket.gaierror(fetch.socket.EAI_NONAME, "Name or service not known")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(fetch.socket, "getaddrinfo", unknown_internal_name)
    with caplog.at_level("WARNING"):
        to_metadata = client.post("/predict", json={"url": f"{http_server.base_url}/to-metadata"})
        to_unknown = client.post("/predict", json={"url": f"{http_server.base_url}/to-internal"})
    body = assert_error(to_metadata, 400, "not a public address")
    assert to_unknown.get_json() == body and "169.254" not in body["error"]
    assert [path for path, _ in http_server.requests] == ["/to-metadata", "/to-internal"]
    assert "169.254.169.254 is a link-local address" in caplog.text and "db.internal.example does not resolve" in caplog.text


def test_a_fault_of_the_service_is_a_500_without_a_trace(app, client, monkeypatch):
    predictor = app.extensions["maskdetect.predictor"]

    def broken(batch):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(predictor.backend, "predict", broken)
    body = assert_error(client.post("/predict", data=WHITE, content_type="image/jpeg"), 500, "log")
    assert "secret" not in body["error"]


# ---------------------------------------------------------------------------- OpenAPI


def test_openapi_document_is_valid_and_describes_every_route(app, client):
    from openapi_spec_validator import validate

    document = client.get("/openapi.json").get_json()
    validate(document)
    routes = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if not rule.endpoint.endswith("static")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    predict = document["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"application/json", "multipart/form-data", "image/*"}
    statuses = {status for _, status, _ in BAD_REQUESTS.values()} | {200, 413, 500, 502, 504}
    assert {str(s) for s in statuses} <= set(predict["responses"])
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detect = document["paths"]["/detect"]["post"]
    assert set(detect["requestBody"]["content"]) == {"application/json", "multipart/form-data", "image/*", "video/*"}
    assert set(detect["responses"]["200"]["content"]) == {
        "application/json", "image/png", "image/jpeg", "image/webp", "video/mp4", "video/webm"}
    assert {p["name"]: p["schema"].get("enum") for p in detect["parameters"]} == {
        "format": ["json", "png", "jpeg", "webp", "mp4", "webm"], "frames": None, "zone": None, "ignore_zone": None}


def test_the_document_gives_every_answer_three_labels_and_says_what_the_old_fields_mean(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    labels = list(constants.LABELS)
    prediction = schemas["Prediction"]
    assert prediction["required"] == ["label", *labels, "model", "face"] and prediction["properties"]["label"]["enum"] == labels
    face = schemas["Detection"]["properties"]["faces"]["items"]
    assert face["required"] == ["box", "score", "label", *labels] and face["properties"]["label"]["enum"] == labels
    assert set(labels) <= set(schemas["Detection"]["required"])
    for label in labels:
        for probability in (prediction["properties"][label], face["properties"][label]):
            assert (probability["type"], probability["minimum"], probability["maximum"]) == ("number", 0, 1)
    clip = schemas["ClipSummary"]
    assert {"people_by_label", "unique_unmasked_people", "people"} <= set(clip["required"])
    person = clip["properties"]["people"]["items"]
    assert person["required"][:5] == ["id", "label", *labels]
    tracked = clip["properties"]["tracked_frames"]["items"]["properties"]["faces"]["items"]
    assert {"track_label", *(f"track_{label}" for label in labels)} <= set(tracked["required"])
    # the decision, in the words a client of the two-class API needs
    decision = prediction["description"]
    for words in ("sum to 1", "below the nose", "`with_mask` keeps its meaning", "`with_mask >= 0.5`",
                  "no longer `1 - with_mask`", "answers `incorrect` 0"):
        assert words in decision, words
    assert decision in client.get("/openapi.json").get_json()["info"]["description"]
    described = json.dumps(client.get("/openapi.json").get_json()["paths"]["/detect"])
    assert "amber" in described and "incorrect or without_mask" in described  # the share and the pairs count both


def test_answers_match_the_documented_schemas(client, two_class_model_file, observations):
    import jsonschema

    from maskdetect.service import create_app

    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    portrait = (observations / "without_mask" / "0.jpg").read_bytes()  # a face, answered incorrect by the brightness model
    answers = [client.post("/predict", data=image, content_type="image/jpeg").get_json() for image in (WHITE, GREY, BLACK, portrait)]
    assert [a["label"] for a in answers] == ["with_mask", "incorrect", "without_mask", "incorrect"] and answers[-1]["face"]
    old = create_app({"TESTING": True, "MODEL_PATH": str(two_class_model_file)}).test_client()
    answers.append(old.post("/predict", data=GREY, content_type="image/jpeg").get_json())
    for answer in answers:
        jsonschema.validate(answer, schemas["Prediction"])
    jsonschema.validate(client.post("/detect", data=GREY, content_type="image/jpeg").get_json(), schemas["Detection"])
    jsonschema.validate(client.get("/health").get_json(), schemas["Health"])
    jsonschema.validate(client.get("/nope").get_json(), schemas["Error"])
    for name in ("Prediction", "Detection"):
        jsonschema.validate(schemas[name]["example"], schemas[name])


# ---------------------------------------------------------------------------- the page


def test_the_page_offers_a_file_and_a_url_and_loads_nothing_from_elsewhere(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'type="file"' in html and 'type="url"' in html and "maskdetect.h5" in html
    assert "src=\"http" not in html and "href=\"http" not in html and "//cdn" not in html
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    for asset in ("/static/page.js", "/static/page.css"):
        assert client.get(asset).status_code == 200


# ---------------------------------------------------------------------------- one label rule, the committed model


@pytest.fixture(scope="module")
def committed_app():
    """The service as deployed: the committed model file it serves by default (the .tflite)."""
    from maskdetect.service import create_app

    return create_app({"TESTING": True, "MODEL_PATH": str(constants.PROJECT_ROOT / "deployment" / constants.SERVED_FILE)})


@pytest.fixture(scope="module")
def real_uploads(observations) -> dict[str, list[bytes]]:
    """Real photos for /predict (five test-split photos of each class) and /detect (street scenes)."""
    from maskdetect.data.split import read_splits

    test_split = [row for row in read_splits() if row["split"] == "test"]
    portraits = [observations / row["source"] for label in constants.CLASSES for row in [r for r in test_split if r["class"] == label][:5]]
    scenes = require(SHARED / "scenes-dev" / "images")
    return {
        "/predict": [path.read_bytes() for path in portraits],
        "/detect": [(scenes / f"scene{n:03d}.jpg").read_bytes() for n in (0, 2, 12, 34, 52)],
    }


def labelled_answers(client, uploads: dict[str, list[bytes]]) -> dict[str, list[dict]]:
    """Every /predict answer, and every face of every /detect answer."""
    answers = {}
    for path, images in uploads.items():
        bodies = []
        for image in images:
            response = client.post(path, data=image, content_type="image/jpeg")
            assert response.status_code == 200, response.get_data(as_text=True)
            bodies.append(response.get_json())
        answers[path] = bodies if path == "/predict" else [face for b in bodies for face in b["faces"]]
    return answers


def test_the_label_always_agrees_with_the_probabilities_shown_on_both_endpoints(committed_app, real_uploads):
    predictor = committed_app.extensions["maskdetect.predictor"]
    assert committed_app.extensions["maskdetect.analyzer"].predictor is predictor  # one model, one rule, both endpoints
    assert not hasattr(predictor, "threshold")
    answers = labelled_answers(committed_app.test_client(), real_uploads)
    assert len(answers["/predict"]) == 10 and len(answers["/detect"]) >= 10
    for path, found in answers.items():
        for answer in found:
            assert_label_is_the_most_probable_shown(answer)
        assert {answer["label"] for answer in found} >= {"with_mask", "without_mask"}, path  # real photos of both kinds


# ---------------------------------------------------------------------------- load shedding


@pytest.mark.parametrize(
    "header, waited",
    [("t=1000.5", 2.5), ("1000.5", 2.5), (" t=1003.25 ", 0.0), ("t=1004", 0.0), ("t=soon", None), ("t=nan", None), ("", None), (None, None)],
)
def test_the_wait_for_a_worker_is_read_from_nginxs_stamp(header, waited):
    from maskdetect.service.shedding import waited_s

    assert waited_s(header, now=1003.0) == waited  # a stamp from the future (clock skew) counts as no wait


def test_a_post_that_waited_past_the_budget_is_shed_with_retry_after_and_the_rest_answered(app, client):
    photo = encode(_rgb())
    late = client.post("/predict", data=photo, content_type="image/jpeg", headers={"X-Request-Start": f"t={time.time() - 5:.3f}"})
    assert late.status_code == 503 and late.headers["Retry-After"] == "1"
    assert late.get_json() == {"error": "the service is busy: this request waited 5.0 s for a worker, over the 1 s budget; retry after 1 s"}
    scene = client.post("/detect", data=photo, content_type="image/jpeg", headers={"X-Request-Start": f"t={time.time() - 5:.3f}"})
    assert scene.status_code == 503 and scene.headers["Retry-After"] == "1"

    on_time = client.post("/predict", data=photo, content_type="image/jpeg", headers={"X-Request-Start": f"t={time.time() - 0.2:.3f}"})
    unstamped = client.post("/predict", data=photo, content_type="image/jpeg")
    assert on_time.status_code == unstamped.status_code == 200
    health = client.get("/health", headers={"X-Request-Start": f"t={time.time() - 60:.3f}"})
    assert health.status_code == 200  # a GET is never shed: readiness stays honest under load

    app.config["QUEUE_BUDGET_S"] = None  # shedding off
    try:
        assert client.post("/predict", data=photo, content_type="image/jpeg", headers={"X-Request-Start": "t=1"}).status_code == 200
    finally:
        app.config["QUEUE_BUDGET_S"] = 1.0



def test_a_form_upload_comes_through_byte_for_byte_whatever_it_holds():
    """The multipart cutter keeps every byte of the file, line breaks and dashes included, and skips text fields."""
    import urllib3

    from maskdetect.core.requests import file_from_form

    data = b"\r\n--\r\n\r\n" + bytes(range(256)) * 4000 + b"\r\n"
    body, content_type = urllib3.encode_multipart_formdata([("note", "hello"), ("image", ("p.jpg", data, "image/jpeg"))])
    assert file_from_form(content_type, body) == data
    assert file_from_form(content_type.replace("boundary=", 'boundary="') + '"', body) == data  # a quoted boundary
