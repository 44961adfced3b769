"""The AWS Lambda deployment, tested without AWS: the handler with events of both kinds, the lean
import, the image's inputs, the SAM template (cfn-lint), and the local API Gateway stand-in with
the test_aws_api notebook end to end.

The handler's answers are compared with the Flask service's for the same requests (the same
brightness model on both sides, conftest.brightness_model); the deployed model (MODEL) serves the
handler module, the sample events, the stand-in and the notebook.
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from PIL import Image

from tests.samples import dockerfile_instructions, encode, photo
from maskdetect.core import constants
from maskdetect.aws.handler import LambdaApp, http_api_event
from maskdetect.core.errors import INTERNAL_ERROR
from maskdetect.core.faces import YuNetDetector
from maskdetect.core.fetch import Limits
from maskdetect.core.inference import Predictor
from maskdetect.core.weights import DETECTOR_FILE, find_detector_weights

ROOT = constants.PROJECT_ROOT
AWS = ROOT / "deployment" / "aws"
EVENTS = AWS / "events"
# The model the Lambda image serves: the committed export of deployment/maskdetect.h5.
MODEL = ROOT / "deployment" / "maskdetect.tflite"

PHOTO = encode(photo(5, (160, 120)), quality=90)
WHITE = encode(Image.new("RGB", (40, 30), "white"), "PNG")
GREY = encode(Image.new("RGB", (40, 30), (128, 128, 128)), "PNG")  # the brightness model's incorrect
BLACK = encode(Image.new("RGB", (40, 30), "black"))
NOT_AN_IMAGE = b"<html>not an image</html>"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def call(app, method="POST", path="/predict", headers=None, body=b"", **kwargs) -> tuple[int, str, dict]:
    """(status, body text, headers) of the handler's answer to one HTTP API request."""
    answer = app(http_api_event(method, path, headers, body, **kwargs), None)
    assert set(answer) == {"statusCode", "headers", "body", "isBase64Encoded"} and answer["isBase64Encoded"] is False
    return answer["statusCode"], answer["body"], answer["headers"]


def as_json(body: bytes | str, content_type="application/json") -> tuple[dict, bytes]:
    return {"Content-Type": content_type}, body if isinstance(body, bytes) else body.encode()


def multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[dict, bytes]:
    prepared = requests.Request("POST", "http://x/", files=fields).prepare()
    return {"Content-Type": prepared.headers["Content-Type"]}, prepared.body


@pytest.fixture(scope="module")
def lambda_app(model_file):
    """The handler with the brightness model, production settings (no private URLs)."""
    return LambdaApp(model_file, allow_private=False)


# ---------------------------------------------------------------------------- the same answers as /predict

# name -> (Flask test-client keyword arguments, handler headers and body or None for the same
# request as Flask's); the answers must have the same status and, but for NOT_SAME_BODY, the same bytes.
SAME_ANSWER = {
    "raw jpeg": (dict(data=PHOTO, content_type="image/jpeg"), ({"Content-Type": "image/jpeg"}, PHOTO)),
    "raw png, charset parameter": (dict(data=WHITE, content_type="image/png; foo=bar"), ({"content-type": "image/png; foo=bar"}, WHITE)),
    "grey png, incorrect": (dict(data=GREY, content_type="image/png"), ({"Content-Type": "image/png"}, GREY)),
    "black jpeg, without_mask": (dict(data=BLACK, content_type="image/jpeg"), ({"Content-Type": "image/jpeg"}, BLACK)),
    "form upload": (dict(data={"image": (io.BytesIO(PHOTO), "p.jpg")}), multipart({"image": ("p.jpg", PHOTO)})),
    "not an image": (dict(data=NOT_AN_IMAGE, content_type="image/jpeg"), ({"Content-Type": "image/jpeg"}, NOT_AN_IMAGE)),
    "truncated jpeg": (dict(data=PHOTO[:300], content_type="image/jpeg"), ({"Content-Type": "image/jpeg"}, PHOTO[:300])),
    "empty image": (dict(data=b"", content_type="image/jpeg"), ({"Content-Type": "image/jpeg"}, b"")),
    "form without the image field": (dict(data={"photo": (io.BytesIO(PHOTO), "p.jpg")}), multipart({"photo": ("p.jpg", PHOTO)})),
    "text in the form": (dict(data={"image": (io.BytesIO(b"hello"), "a.txt")}), multipart({"image": ("a.txt", b"hello")})),
    "no url string": (dict(json={"link": "https://example.com/a.jpg"}), None),  # status only: the handler also names "image"
    "private url": (dict(json={"url": "http://127.0.0.1:9/a.jpg"}), as_json('{"url": "http://127.0.0.1:9/a.jpg"}')),
    "metadata url": (dict(json={"url": "http://169.254.169.254/latest/"}), as_json('{"url": "http://169.254.169.254/latest/"}')),
    "ftp url": (dict(json={"url": "ftp://example.com/a.jpg"}), as_json('{"url": "ftp://example.com/a.jpg"}')),
    "decimal loopback url": (dict(json={"url": "http://2130706433/a.jpg"}), as_json('{"url": "http://2130706433/a.jpg"}')),
    "GET": (dict(method="GET"), None),
    "PUT": (dict(method="PUT"), None),
}
NOT_SAME_BODY = {"no url string"}  # the handler's message also offers {"image": ...}


def _flask(client, method="POST", path="/predict", **kwargs):
    return client.open(path, method=method, **kwargs)


@pytest.mark.parametrize("name", SAME_ANSWER)
def test_http_events_answer_exactly_what_the_service_answers(name, client, lambda_app):
    flask_kwargs, handler_request = SAME_ANSWER[name]
    expected = _flask(client, **flask_kwargs)
    if handler_request is None:
        method = flask_kwargs.get("method", "POST")
        headers, body = as_json(json.dumps(flask_kwargs["json"])) if "json" in flask_kwargs else ({}, b"")
        status, text, response_headers = call(lambda_app, method, headers=headers, body=body)
    else:
        status, text, response_headers = call(lambda_app, headers=handler_request[0], body=handler_request[1])
    assert status == expected.status_code
    if name in NOT_SAME_BODY:
        assert '"url"' in json.loads(text)["error"] and '"image"' in json.loads(text)["error"]
    else:
        assert text == expected.get_data(as_text=True)
    assert response_headers == {"Content-Type": expected.mimetype, "X-Content-Type-Options": "nosniff"}
    if status != 200:
        assert list(json.loads(text)) == ["error"] and "Traceback" not in text


# Every kind of host a caller could probe with: the answers must not tell them apart.
PROBED_HOSTS = {
    "http://localhost/x.jpg": "127.0.0.1",  # resolved through the table below, like the names
    "http://127.0.0.1:8080/x.jpg": "loopback",
    "http://10.1.2.3/x.jpg": "private",
    "http://192.168.0.1/x.jpg": "private",
    "http://[fe80::1]/x.jpg": "link-local",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://[::1]/x.jpg": "loopback",
    "http://[::ffff:10.0.0.1]/x.jpg": "IPv6-wrapped private",
    "http://[::ffff:169.254.169.254]/x.jpg": "IPv6-wrapped link-local",
    "http://db.default.svc.cluster.local:5432/x.jpg": "10.96.0.12",
    "http://redis.cache.svc.cluster.local/x.jpg": "fd00:10:96::a",
    "http://no-such-service.default.svc.cluster.local/x.jpg": "does not resolve",
}
RESOLVED = {"localhost": ["127.0.0.1", "::1"], "db.default.svc.cluster.local": ["10.96.0.12"],
            "redis.cache.svc.cluster.local": ["fd00:10:96::a"]}


def test_no_answer_names_a_resolved_address(client, lambda_app, monkeypatch, caplog, capsys):
    """Flask and the Lambda (HTTP and direct) answer every refused or unknown host alike, naming no address; their logs have the detail."""
    import socket

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in RESOLVED:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))
                for a in RESOLVED[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    answers = set()
    for url, detail in PROBED_HOSTS.items():
        caplog.clear()
        capsys.readouterr()
        with caplog.at_level("WARNING"):
            flask = client.post("/predict", json={"url": url})
        status, text, _ = call(lambda_app, headers={"Content-Type": "application/json"}, body=json.dumps({"url": url}).encode())
        direct = lambda_app({"url": url}, None)
        lambda_log = capsys.readouterr().out  # the handler logs to stdout (CloudWatch Logs), not through the root logger
        assert flask.status_code == status == direct["status"] == 400, url
        assert text == flask.get_data(as_text=True) and direct["error"] == flask.get_json()["error"], url
        answers.add(text)
        flask_log = [r for r in caplog.records if r.name == "maskdetect.service" and "refused URL host" in r.getMessage()]
        assert len(flask_log) == 1 and detail in flask_log[0].getMessage(), caplog.text
        assert len([line for line in lambda_log.splitlines() if "refused URL host" in line and detail in line]) == 2, lambda_log
    assert len(answers) == 1
    message = json.loads(answers.pop())["error"]
    assert "not a public address" in message and "upload" in message
    for address in ("127.", "::1", "10.", "192.168", "fe80", "169.254", "ffff", "fd00", "resolve to", "loopback", "private"):
        assert address not in message


def test_a_base64_image_in_json_answers_as_the_upload(client, lambda_app):
    upload = client.post("/predict", data=PHOTO, content_type="image/jpeg").get_data(as_text=True)
    wrapped = "\n".join(b64(PHOTO)[i : i + 76] for i in range(0, len(b64(PHOTO)), 76))  # MIME line breaks
    for image in (b64(PHOTO), wrapped, f"data:image/jpeg;base64,{b64(PHOTO)}"):
        assert call(lambda_app, headers={"Content-Type": "application/json"}, body=json.dumps({"image": image}).encode()) == (
            200, upload, {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"})


@pytest.mark.parametrize(
    "headers, body, status, words",
    [
        ({"Content-Type": "application/json"}, b'{"image": "not base64!"}', 400, ['"image"', "base64"]),
        ({"Content-Type": "application/json"}, b'{"image": ""}', 400, ["empty"]),
        ({"Content-Type": "application/json"}, json.dumps({"image": b64(NOT_AN_IMAGE)}).encode(), 422, ["not an image"]),
        ({"Content-Type": "application/json"}, json.dumps({"url": "https://a.example/x.jpg", "image": b64(PHOTO)}).encode(), 400, ["both"]),
        ({"Content-Type": "application/json"}, b"{}", 400, ['"url"', '"image"']),
        ({"Content-Type": "application/json"}, b'{"url": 7}', 400, ['"url"']),
        ({"Content-Type": "application/json"}, b"[1, 2]", 400, ["not a valid JSON object"]),
        ({"Content-Type": "application/json"}, b"{broken", 400, ["not a valid JSON object"]),
        ({"Content-Type": "text/plain"}, b"https://example.com/a.jpg", 415, ["text/plain", "application/json", "image/*"]),
        ({}, PHOTO, 415, ["no Content-Type"]),
    ],
)
def test_bad_requests_answer_a_json_error(headers, body, status, words, lambda_app):
    got, text, _ = call(lambda_app, headers=headers, body=body)
    error = json.loads(text)
    assert got == status and list(error) == ["error"], text
    for word in words:
        assert word in error["error"]


def test_wrong_routes_and_a_body_over_the_limit(client, lambda_app):
    status, text, _ = call(lambda_app, "GET", "/nope")
    assert status == 404 and "/nope" in json.loads(text)["error"] and "POST /predict" in json.loads(text)["error"]
    assert call(lambda_app, "POST", "/predict/")[0] == 404
    too_big = b"\xff\xd8" + b"\0" * (10 * 1024 * 1024)
    expected = client.post("/predict", data=too_big, content_type="image/jpeg")
    assert expected.status_code == 413
    assert call(lambda_app, headers={"Content-Type": "image/jpeg"}, body=too_big)[:2] == (413, expected.get_data(as_text=True))


def test_url_answers_match_the_service(app, client, lambda_app, http_server, monkeypatch):
    """Fetched from 127.0.0.1 with the address rule lifted on both sides, and short time limits."""
    limits = Limits(connect_timeout=1, read_timeout=1, total_timeout=1.5, max_bytes=100_000)
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setitem(app.config, "URL_LIMITS", limits)
    handler = LambdaApp(lambda_app.model, allow_private=True, limits=limits)
    handler._predictor = lambda_app.predictor()  # the same loaded model
    base = http_server.base_url
    http_server["/photo.jpg"] = (200, PHOTO)
    http_server["/text"] = (200, NOT_AN_IMAGE, None, {"Content-Type": "text/html"})
    http_server["/big.jpg"] = (200, b"\xff" * 200_000)
    http_server["/slow.jpg"] = (200, lambda write: time.sleep(2.5), 10)
    expected_statuses = {"photo.jpg": 200, "missing.jpg": 502, "text": 422, "big.jpg": 422, "slow.jpg": 504}
    for path, status in expected_statuses.items():
        url = f"{base}/{path}"
        expected = client.post("/predict", json={"url": url})
        got = call(handler, headers={"Content-Type": "application/json"}, body=json.dumps({"url": url}).encode())
        assert (got[0], got[1]) == (expected.status_code, expected.get_data(as_text=True)) and got[0] == status, path


# ---------------------------------------------------------------------------- direct invocations


def test_direct_invocation_answers_the_predict_dict(client, lambda_app, http_server, monkeypatch):
    """The original project's event {"url": ...}; private addresses only with the variable set."""
    http_server["/photo.jpg"] = (200, PHOTO)
    expected = client.post("/predict", data=PHOTO, content_type="image/jpeg").get_json()
    url = f"{http_server.base_url}/photo.jpg"
    refused = lambda_app({"url": url}, None)
    assert refused["status"] == 400 and refused["error"].startswith("refused URL") and http_server.requests == []
    monkeypatch.setenv("MASKDETECT_ALLOW_PRIVATE_URLS", "1")
    app = LambdaApp(lambda_app.model)  # allow_private from the environment, on each request
    app._predictor = lambda_app.predictor()
    assert app({"url": url}, None) == expected
    assert [path for path, _ in http_server.requests] == ["/photo.jpg"]
    assert app({"image": b64(PHOTO)}, None) == expected
    assert list(expected) == ["label", "with_mask", "incorrect", "without_mask", "model", "face"]


def test_a_grey_image_is_answered_incorrect_by_the_lambda_as_by_the_service(client, lambda_app):
    expected = client.post("/predict", data=GREY, content_type="image/png")
    body = expected.get_json()
    assert body["label"] == "incorrect" and body["incorrect"] > 0.9 and 0 < body["with_mask"] < 0.1 and 0 < body["without_mask"] < 0.1
    shown = [body[label] for label in constants.LABELS]
    assert body[body["label"]] == max(shown) and sum(shown) == pytest.approx(1.0, abs=1e-5)
    assert call(lambda_app, headers={"Content-Type": "image/png"}, body=GREY)[:2] == (200, expected.get_data(as_text=True))
    assert lambda_app({"image": b64(GREY)}, None) == body


def test_a_two_class_model_file_is_served_by_the_lambda_as_by_the_service(two_class_model_file):
    from maskdetect.service import create_app

    client = create_app({"TESTING": True, "MODEL_PATH": str(two_class_model_file)}).test_client()
    handler = LambdaApp(two_class_model_file, allow_private=False)
    for image in (WHITE, GREY, BLACK, PHOTO):
        expected = client.post("/predict", data=image, content_type="image/jpeg")
        body = expected.get_json()
        assert body["incorrect"] == 0.0 and body["label"] == ("with_mask" if body["with_mask"] >= 0.5 else "without_mask")
        assert call(handler, headers={"Content-Type": "image/jpeg"}, body=image)[:2] == (200, expected.get_data(as_text=True))


def test_the_lambda_serves_the_served_model_file_by_default(tmp_path):
    from maskdetect.aws.handler import model_path
    from maskdetect.settings import Settings

    assert constants.SERVED_FILE == "maskdetect.tflite"
    assert model_path(Settings(deployment_dir=tmp_path)) == tmp_path / constants.SERVED_FILE
    assert model_path(Settings(deployment_dir=tmp_path, lambda_task_root=tmp_path / "task")) == tmp_path / "task" / constants.SERVED_FILE
    assert model_path(Settings(model_path=tmp_path / "other.h5", lambda_task_root=tmp_path)) == tmp_path / "other.h5"


@pytest.mark.parametrize(
    "event, status, words",
    [
        ({"image": "%%%"}, 400, ["base64"]),
        ({"image": b64(NOT_AN_IMAGE)}, 422, ["not an image"]),
        ({}, 400, ['"url"', '"image"']),
        ({"url": ""}, 400, ['"url"']),
        ({"url": "file:///etc/passwd"}, 400, ["refused URL", "http"]),
        ("https://example.com/a.jpg", 400, ["not a JSON object", '{"url"']),
        (None, 400, ["not a JSON object"]),
    ],
)
def test_direct_invocation_errors(event, status, words, lambda_app):
    answer = lambda_app(event, None)
    assert set(answer) == {"error", "status"} and answer["status"] == status
    for word in words:
        assert word in answer["error"]


# ---------------------------------------------------------------------------- faults, the model, logs


def test_a_fault_is_a_500_without_a_trace_and_is_logged(lambda_app, monkeypatch, capsys):
    predictor = lambda_app.predictor()

    def broken(batch):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(predictor.backend, "predict", broken)
    status, text, _ = call(lambda_app, headers={"Content-Type": "image/png"}, body=WHITE)
    assert (status, json.loads(text)) == (500, {"error": INTERNAL_ERROR})
    assert lambda_app({"image": b64(WHITE)}, None) == {"error": INTERNAL_ERROR, "status": 500}
    log = capsys.readouterr().out
    assert "Traceback" in log and "secret internal detail" in log  # the details go to the log (stdout)


def test_payload_format_1_is_a_deployment_fault(lambda_app, capsys):
    event = {"version": "1.0", "httpMethod": "POST", "path": "/predict", "headers": {}, "body": "{}", "requestContext": {}}
    answer = lambda_app(event, None)
    assert answer["statusCode"] == 500 and json.loads(answer["body"]) == {"error": INTERNAL_ERROR}
    assert "PayloadFormatVersion" in capsys.readouterr().out


def test_a_named_stage_in_the_path_and_a_base64_body_marked_as_such(lambda_app):
    event = http_api_event("POST", "/prod/predict", {"Content-Type": "image/png"}, WHITE)
    event["requestContext"]["stage"] = "prod"
    assert lambda_app(event, None)["statusCode"] == 200
    event = http_api_event("POST", "/predict", {"Content-Type": "image/png"}, WHITE)
    assert event["isBase64Encoded"] is True
    event["body"] = "*not base64*"
    answer = lambda_app(event, None)
    assert answer["statusCode"] == 400 and "isBase64Encoded" in json.loads(answer["body"])["error"]


def test_the_model_is_loaded_once_and_a_missing_model_is_retried(model_file, tmp_path, capsys):
    path = tmp_path / "maskdetect.h5"
    app = LambdaApp(path)
    assert app.warm_up() is False
    assert app({"image": b64(WHITE)}, None) == {"error": INTERNAL_ERROR, "status": 500}
    assert f"no model at {path}" in capsys.readouterr().out
    shutil.copy(model_file, path)
    first, second = app({"image": b64(WHITE)}, None), app({"image": b64(PHOTO)}, None)
    assert first["label"] == "with_mask" and second["model"] == "maskdetect.h5"
    log = capsys.readouterr().out
    assert log.count("loaded the model") == 1
    lines = [json.loads(line.split(" ", 2)[2]) for line in log.splitlines() if '"status"' in line]
    assert [(line["event"], line["status"]) for line in lines] == [("direct", 200), ("direct", 200)]


def _load_handler_module(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("lambda_function_under_test", AWS / "lambda_function.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_handler_loads_the_model_in_the_init_phase_and_answers_the_sample_events(monkeypatch, http_server, capsys):
    monkeypatch.delenv("MASKDETECT_FACE_CENTRED", raising=False)  # the image sets none: the largest face
    module = _load_handler_module(
        monkeypatch, MODEL_PATH=str(MODEL), AWS_LAMBDA_FUNCTION_NAME="maskdetect-test", MASKDETECT_ALLOW_PRIVATE_URLS="1"
    )
    assert "loaded the model" in capsys.readouterr().out  # at import, before any event
    assert isinstance(module.app.predictor().subject_detector, YuNetDetector)  # loaded with the model, in the init phase
    expected = module.app.predictor().predict(encode(Image.new("RGB", (32, 32), (250, 250, 250)), "PNG")).as_dict()
    photo_expected = module.app.predictor().predict(PHOTO).as_dict()
    http_server["/photo.jpg"] = (200, PHOTO)
    answers = {}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text().replace(_sample_url(), f"{http_server.base_url}/photo.jpg"))
        answer = module.lambda_handler(event, None)
        if path.stem.startswith("http-api"):
            assert answer["statusCode"] == 200, (path.name, answer)
            answers[path.stem] = json.loads(answer["body"])
        else:
            assert "error" not in answer, (path.name, answer)
            answers[path.stem] = answer
    assert set(answers) == {"direct-url", "direct-image", "http-api-url", "http-api-image", "http-api-raw-image"}
    assert answers["direct-image"] == answers["http-api-image"] == answers["http-api-raw-image"] == expected
    assert answers["direct-url"] == answers["http-api-url"] == photo_expected
    assert expected["model"] == json.loads((MODEL.parent / "metrics.json").read_text())["model"]


def _sample_url() -> str:
    return json.loads((EVENTS / "direct-url.json").read_text())["url"]


def test_the_sample_events_are_what_api_gateway_sends():
    for name in ("http-api-url", "http-api-image", "http-api-raw-image"):
        event = json.loads((EVENTS / f"{name}.json").read_text())
        reference = http_api_event("POST", "/predict", {"Content-Type": "application/json"}, b"{}")
        assert set(reference) <= set(event) and set(reference["requestContext"]) == set(event["requestContext"])
        assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /predict"
        assert event["requestContext"]["http"]["method"] == "POST" and event["rawPath"] == "/predict"
        assert all(key == key.lower() for key in event["headers"])
    raw = json.loads((EVENTS / "http-api-raw-image.json").read_text())
    assert raw["isBase64Encoded"] is True and raw["headers"]["content-type"] == "image/png"
    assert _sample_url().startswith("https://raw.githubusercontent.com/prajnasb/observations/")


# ---------------------------------------------------------------------------- the lean image

HEAVY = ("flask", "werkzeug", "jinja2", "gunicorn", "tensorflow", "keras", "h5py", "matplotlib",
         "pandas", "sklearn", "scipy", "jax", "torch", "onnx", "onnxruntime", "tf2onnx", "requests")

# Prints the modules that loading the handler imports (not those the interpreter started with).
LEAN_IMPORT = """
import importlib.util, json, sys
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("lambda_function", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.lambda_handler)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _requirement_names(path: Path) -> set[str]:
    from packaging.utils import canonicalize_name

    return {canonicalize_name(line.split("==")[0]) for line in path.read_text().splitlines() if line and not line.startswith("#")}


def test_importing_the_handler_loads_only_the_lean_runtime(tmp_path):
    """Loading the module only (outside Lambda the model loads on the first event)."""
    from packaging.utils import canonicalize_name

    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "LAMBDA_"))}
    env.update(PYTHONPATH=str(ROOT), MODEL_PATH=str(tmp_path / "none.tflite"))
    result = subprocess.run([sys.executable, "-c", LEAN_IMPORT, str(AWS / "lambda_function.py")],
                            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = json.loads(result.stdout)
    tops = {name.split(".")[0] for name in modules}
    assert not tops & set(HEAVY), tops & set(HEAVY)
    # Every third-party module it imports is installed by the image's requirements.
    installed = _requirement_names(AWS / "requirements.txt")
    distributions = importlib.metadata.packages_distributions()
    third_party = {top for top in tops if top in distributions and top != "maskdetect"}
    assert third_party, "numpy and PIL at least"
    for top in third_party:
        assert {canonicalize_name(d) for d in distributions[top]} & installed, f"{top} is imported but not in deployment/aws/requirements.txt"
    # ...and every module of the package it imports is in what the image copies: the runtime, not training.
    copied = _copied_package_sources()
    for name in (name for name in modules if name.split(".")[0] == "maskdetect"):
        path = name.replace(".", "/")
        assert {f"{path}.py", f"{path}/__init__.py"} & copied or any(path.startswith(f"{folder}/") or path == folder
                                                                       for folder in copied if not folder.endswith(".py")), name
    assert {"maskdetect/core", "maskdetect/aws"} <= copied, "the runtime and the handler are copied whole"


# Loads the handler as the Lambda runtime does (the init phase loads the model and the detector),
# answers one direct invocation with the photo, and prints that answer and the heavy packages imported.
IMAGE_RUN = """
import base64, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import lambda_function
photo = Path(sys.argv[2]).read_bytes()
answer = lambda_function.lambda_handler({"image": base64.b64encode(photo).decode("ascii")}, None)
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "flask", "gunicorn"})
print(json.dumps({"answer": answer, "heavy": heavy}))
"""


def test_the_handler_answers_a_real_portrait_for_its_face_without_tensorflow(observations, tmp_path):
    """A fresh process set up as the image is: the .tflite, the weights in MASKDETECT_WEIGHTS_DIR, no other settings."""
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(find_detector_weights(), weights / DETECTOR_FILE)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "LAMBDA_")) and key not in ("MASKDETECT_FACE_CENTRED", "MASKDETECT_DETECTOR_SOURCE")}
    env.update(PYTHONPATH=str(ROOT), MODEL_PATH=str(MODEL), AWS_LAMBDA_FUNCTION_NAME="maskdetect-test", MASKDETECT_WEIGHTS_DIR=str(weights))
    portrait = observations / "without_mask" / "298.jpg"
    result = subprocess.run([sys.executable, "-c", IMAGE_RUN, str(AWS), str(portrait)],
                            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])  # the lines before it are the handler's log
    answer = report["answer"]
    assert "error" not in answer, answer
    assert report["heavy"] == [], f"the Lambda image has none of {report['heavy']}"
    width, height = Image.open(portrait).size
    left, top, right, bottom = answer["face"]  # a box, not null: the face was found and classified
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert (right - left) * (bottom - top) > 0.1 * width * height  # a portrait's face, not a speck
    assert answer["label"] in constants.LABELS and answer["model"] == json.loads((MODEL.parent / "metrics.json").read_text())["model"]


def _copies() -> list[tuple[list[str], str]]:
    rows = []
    for keyword, rest in dockerfile_instructions(AWS / "Dockerfile"):
        if keyword == "COPY":
            words = [word for word in rest.split() if not word.startswith("--")]
            rows.append((words[:-1], words[-1]))
    return rows


def _copied_package_sources() -> set[str]:
    return {source.rstrip("/") for sources, _ in _copies() for source in sources if source.startswith("maskdetect/")}


def test_the_lambda_dockerfile():
    instructions = dockerfile_instructions(AWS / "Dockerfile")
    assert instructions[0] == ("ARG", "LAMBDA_IMAGE=public.ecr.aws/lambda/python:3.12")
    assert ("FROM", "${LAMBDA_IMAGE}") in instructions
    assert dict(instructions)["CMD"] == '["lambda_function.lambda_handler"]'
    # It answers for the face, as the service does: nothing turns face-centring off, and the
    # detector's weights are copied to where MASKDETECT_WEIGHTS_DIR points.
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "MASKDETECT_FACE_CENTRED" not in env
    assert "MASKDETECT_WEIGHTS_DIR=${LAMBDA_TASK_ROOT}/deployment/weights" in env.split()
    assert ([f"deployment/weights/{DETECTOR_FILE}"], "${LAMBDA_TASK_ROOT}/deployment/weights/") in _copies()
    install = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "--require-hashes" in install and "--no-deps" in install and "-r /tmp/requirements.txt" in install
    sources = [source for sources, _ in _copies() for source in sources]
    assert "deployment/aws/requirements.txt" in sources and "deployment/aws/lambda_function.py" in sources
    assert f"deployment/{constants.SERVED_FILE}" in sources and "deployment/metrics.json" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
    assert not [s for s in sources if s.rstrip("/") in ("maskdetect", "deployment", ".")], "copy the runtime, not the whole package"
    destinations = {destination for _, destination in _copies()}
    assert destinations >= {"${LAMBDA_TASK_ROOT}/", "${LAMBDA_TASK_ROOT}/maskdetect/"}
    # `sam build` uses the repository root as the context: .dockerignore must let these in.
    allowed = [line.strip()[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for source in sources:
        if not source.startswith("/tmp"):
            assert any(source == pattern or source.startswith(pattern + "/") for pattern in allowed), f"{source} not in .dockerignore"


def test_lambda_requirements_match_pipfile_lock_and_stay_lean():
    spec = importlib.util.spec_from_file_location("docker_requirements", ROOT / "deployment" / "docker" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = module.TARGETS["aws"]
    assert target.output == AWS / "requirements.txt" and target.environment["python_version"] == "3.12"
    assert target.output.read_text() == module.render(top_level=target.top_level, environment=target.environment), (
        "deployment/aws/requirements.txt is out of date with Pipfile.lock or its requirements.in: run `make docker-requirements`"
    )
    names = _requirement_names(target.output)
    assert {"ai-edge-litert", "numpy", "pillow", "tqdm", "opencv-python-headless"} <= names  # opencv runs YuNet
    assert not names & {"tensorflow", "keras", "h5py", "flask", "gunicorn", "jax"}
    assert all("--hash=sha256:" in line for line in target.output.read_text().splitlines() if not line.startswith("#"))


# ---------------------------------------------------------------------------- the SAM template


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads the short forms (!Ref, !Sub, !If...) as {"Ref": ...} / {"Fn::Sub": ...}."""


def _tag(loader, suffix, node):
    value = loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_scalar(node)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _tag)


@pytest.mark.slow
def test_the_template_passes_cfn_lint_and_cfn_lint_catches_a_broken_one(tmp_path):
    template = AWS / "template.yaml"
    lint = [str(Path(sys.executable).with_name("cfn-lint"))]
    clean = subprocess.run([*lint, str(template)], capture_output=True, text=True, timeout=300)
    assert (clean.returncode, clean.stdout + clean.stderr) == (0, ""), clean.stdout + clean.stderr  # no error, no warning
    broken = tmp_path / "template.yaml"
    broken.write_text(template.read_text().replace("      Timeout: 25", "      Timeoutt: 25"))
    failed = subprocess.run([*lint, str(broken)], capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "E3002" in failed.stdout


def _references(node) -> set[str]:
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                found.add(value)
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
            elif key == "Fn::GetAtt":
                found.add(value.split(".")[0] if isinstance(value, str) else value[0])
            found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def test_the_template_routes_post_predict_to_the_image_function_within_the_limits():
    template = yaml.load((AWS / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    resources = template["Resources"]
    function = resources["PredictFunction"]
    properties = function["Properties"]
    assert function["Type"] == "AWS::Serverless::Function" and properties["PackageType"] == "Image"
    context = (AWS / function["Metadata"]["DockerContext"]).resolve()
    assert context == ROOT and (context / function["Metadata"]["Dockerfile"]) == AWS / "Dockerfile"
    event = properties["Events"]["Predict"]
    assert event["Type"] == "HttpApi"
    assert (event["Properties"]["Method"], event["Properties"]["Path"], event["Properties"]["PayloadFormatVersion"]) == (
        "POST", "/predict", "2.0")
    assert event["Properties"]["ApiId"] == {"Ref": "PredictApi"} and resources["PredictApi"]["Type"] == "AWS::Serverless::HttpApi"
    # A URL fetch may take URL_TOTAL_TIMEOUT; the function stops before the API's integration timeout.
    assert constants.URL_TOTAL_TIMEOUT < properties["Timeout"] < event["Properties"]["TimeoutInMillis"] / 1000 <= 30
    throttling = resources["PredictApi"]["Properties"]["DefaultRouteSettings"]
    assert set(throttling) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    assert "ReservedConcurrentExecutions" in properties and properties["MemorySize"] == {"Ref": "MemorySize"}
    assert "/predict" in template["Outputs"]["PredictUrl"]["Value"]["Fn::Sub"]
    known = set(resources) | set(template["Parameters"]) | {"AWS::Region", "AWS::URLSuffix", "AWS::StackName", "AWS::NoValue"}
    assert _references(template) <= known, _references(template) - known


# ---------------------------------------------------------------------------- the stand-in and the notebook


@pytest.fixture(scope="module")
def local_api(tmp_path_factory):
    """`python deployment/aws/local_api.py --port 0` with the deployed model; URLs to 127.0.0.1 allowed."""
    log = tmp_path_factory.mktemp("local-api") / "local_api.log"
    env = {key: value for key, value in os.environ.items() if key not in ("MODEL_PATH",) and not key.startswith("AWS_")}
    env.update(PYTHONPATH=str(ROOT), MASKDETECT_ALLOW_PRIVATE_URLS="1", PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(AWS / "local_api.py"), "--port", "0", "--model", str(MODEL)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while not (found := re.search(r"POST (http://127\.0\.0\.1:\d+/predict)", log.read_text())):
            assert process.poll() is None, f"local_api.py exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "local_api.py did not start within 180 s"
            time.sleep(0.2)
        yield found.group(1), log
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.slow
def test_the_stand_in_answers_for_the_face_as_the_service_does(local_api, observations):
    api_url, _ = local_api
    portrait = (observations / "without_mask" / "298.jpg").read_bytes()
    answer = requests.post(api_url, data=portrait, headers={"Content-Type": "image/jpeg"}, timeout=30).json()
    assert answer["face"] is not None
    assert answer == Predictor.load(MODEL, face_centred=True).predict(portrait).as_dict()


@pytest.mark.slow
def test_the_stand_in_turns_http_requests_into_events(local_api, images, image_site):
    api_url, log = local_api
    data = (images / "photo.jpg").read_bytes()
    by_url = requests.post(api_url, json={"url": f"{image_site}/photo.jpg"}, timeout=30)
    by_base64 = requests.post(api_url, json={"image": b64(data)}, timeout=30)
    raw = requests.post(api_url, data=data, headers={"Content-Type": "image/jpeg"}, timeout=30)
    form = requests.post(api_url, files={"image": ("photo.jpg", data)}, timeout=30)
    chunked = requests.post(api_url, data=iter([data[:1000], data[1000:]]), headers={"Content-Type": "image/jpeg"}, timeout=30)
    answers = [r.json() for r in (by_url, by_base64, raw, form, chunked)]
    assert all(r.status_code == 200 for r in (by_url, by_base64, raw, form, chunked))
    assert all(answer == answers[0] for answer in answers) and answers[0]["label"] in constants.LABELS
    assert by_url.headers["Content-Type"] == "application/json" and by_url.headers["X-Content-Type-Options"] == "nosniff"
    wrong = requests.get(api_url, timeout=10)
    assert wrong.status_code == 405 and wrong.json() == {"error": "GET is not allowed on /predict; use POST"}
    missing = requests.post(api_url.replace("/predict", "/nope"), json={}, timeout=10)
    assert missing.status_code == 404
    lines = [json.loads(line.split(" ", 2)[2]) for line in log.read_text().splitlines() if line.startswith("INFO") and '"status"' in line]
    assert [line["status"] for line in lines[-7:]] == [200, 200, 200, 200, 200, 405, 404]
    assert all(line["event"] == "http" and line["request_id"] for line in lines)


@pytest.mark.slow
def test_the_notebook_calls_the_api_by_url_and_base64_and_shows_the_answers(local_api, images, image_site, tmp_path):
    import nbformat
    import papermill

    api_url, _ = local_api
    executed = tmp_path / "test_aws_api.ipynb"
    papermill.execute_notebook(
        str(ROOT / "deployment" / "test_aws_api.ipynb"),
        str(executed),
        parameters={
            "api_url": api_url,
            "image_url": f"{image_site}/photo.jpg",
            "image_file": str(images / "photo.jpg"),
        },
        cwd=str(ROOT / "deployment"),
        progress_bar=False,
        kernel_name="python3",
    )
    notebook = nbformat.read(executed, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    results = [json.loads(line) for line in text.splitlines() if line.startswith('{"sent"')]
    assert [(r["sent"], r["status"]) for r in results] == [("url", 200), ("image", 200)]
    assert {k: v for k, v in results[0].items() if k not in ("sent", "input")} == {
        k: v for k, v in results[1].items() if k not in ("sent", "input")}  # the same photo, two ways
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert "400 {'error': 'refused URL" in text and "400 {'error': 'the \"image\" field is not valid base64" in text


def test_the_committed_notebook_has_its_run_against_the_stand_in():
    import nbformat

    notebook = nbformat.read(ROOT / "deployment" / "test_aws_api.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "api_url" in parameters[0].source and "image_url" in parameters[0].source
    run = [cell for cell in code if not {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", []))]
    assert run and all(cell.get("outputs") for cell in run), "run it against the stand-in and commit the outputs"
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    markdown = " ".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "local_api.py" in markdown and "stand-in" in markdown


# ---------------------------------------------------------------------------- the benchmark


@pytest.mark.slow
def test_the_handler_benchmark_reports(model_file, observations, tmp_path, monkeypatch, capsys):
    """A short run of benchmarks/lambda_handler.py (documentation/deployment.md, "AWS Lambda" has a full one).

    In this process, where TensorFlow is already imported (a fresh one would spend most of its
    time importing it again); the script's settings are undone by monkeypatch afterwards.
    """
    import runpy

    script = ROOT / "benchmarks" / "lambda_handler.py"
    monkeypatch.setenv("MODEL_PATH", "unset")
    monkeypatch.setenv("MASKDETECT_FACE_CENTRED", "0")  # the script unsets it (as the image runs): undone afterwards
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "lambda_function", raising=False)
    portrait = observations / "without_mask" / "298.jpg"
    monkeypatch.setattr(sys, "argv", [str(script), "--model", str(model_file), "--image", str(portrait), "--requests", "3"])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(script), run_name="__main__")
    assert exit.value.code == 0
    report = json.loads(capsys.readouterr().out)  # the handler's log lines stay out of the report
    assert report["model"] == "maskdetect.h5" and report["requests"] == 3 and report["image_bytes"] > 1000
    # The package is already imported in this process, so importing the handler can round to 0.000 s.
    assert 0 <= report["import_s"] < 60 and 0 < report["first_event_s"] and 0 < report["p50_ms"] <= report["p95_ms"]
    assert report["max_rss_mb"] > 50 and report["tensorflow_imported"] is True  # a Keras model needs it
    assert "MASKDETECT_FACE_CENTRED" not in os.environ and report["face"] is not None  # timed for the face, as the image answers
    missing = subprocess.run([sys.executable, str(script), "--model", str(tmp_path / "none.tflite")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no model at" in missing.stderr
