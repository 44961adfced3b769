"""The prediction API on AWS Lambda: ``POST /predict`` behind API Gateway, or a direct invocation.

``deployment/aws/lambda_function.py`` (the image's handler) is a thin caller of :class:`LambdaApp`.
Two kinds of event are answered:

- **API Gateway HTTP API proxy events** (payload format 2.0) for ``POST /predict``: a JSON
  body ``{"url": "https://..."}`` or ``{"image": "<the file, base64-encoded>"}``
  (``Content-Type: application/json``), a multipart form with the file in field ``image``, or
  the image itself (``Content-Type: image/*``); API Gateway passes binary bodies on
  base64-encoded (``isBase64Encoded: true``). The answer is
  ``{"statusCode", "headers", "body"}`` whose body and status are exactly what the Flask
  service's ``POST /predict`` answers: the prediction (``label``, the most probable of
  ``with_mask``, ``incorrect`` and ``without_mask``, those three probabilities, ``model``,
  ``face``), or ``{"error": ...}`` with the status
  from :mod:`maskdetect.core.errors`.
- **Direct invocations** (``aws lambda invoke``, the original project's ``{"url": ...}``): the
  event itself is ``{"url": ...}`` or ``{"image": ...}``; the answer is the prediction dict
  that ``POST /predict`` answers, or ``{"error": ..., "status": <the HTTP status /predict gives>}``.

The same preprocessing and model call (:class:`maskdetect.core.inference.Predictor`) and the same
SSRF-safe fetching (:mod:`maskdetect.core.fetch`) as the service. The model is loaded once per
container: in AWS Lambda during the init phase (:func:`handler_app`), elsewhere on the first
event. Every answer is JSON, never a trace; each request logs one line to stdout (CloudWatch
Logs in AWS). This module imports neither Flask nor TensorFlow: the Lambda image has neither.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..core.constants import MAX_IMAGE_BYTES, SERVED_FILE
from ..core.errors import INTERNAL_ERROR, KNOWN_ERRORS, ApiError, body_too_large_message, status_and_message
from ..core.fetch import HostRefused, Limits
from ..core.inference import ModelError, Predictor
from ..core.requests import image_from_body, image_from_payload
from ..settings import Settings

MODEL_FILE = SERVED_FILE  # what the Lambda image serves, beside the handler (deployment/aws/local_api.py reads this name)
METHOD, PATH = "POST", "/predict"
ROUTE_KEY = f"{METHOD} {PATH}"
HEADERS = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}
# Content types API Gateway passes on as text; any other body arrives base64-encoded.
_TEXT_TYPES = re.compile(r"text/.*|application/(json|xml|javascript)|application/[\w.+-]+\+(json|xml)")

log = logging.getLogger(__name__)


def model_path(settings: Settings) -> Path:
    """MODEL_PATH; else the served model file (``constants.SERVED_FILE``, the .tflite) in LAMBDA_TASK_ROOT
    (beside the handler in the image); else the deployment folder's."""
    return settings.model_path or (settings.lambda_task_root or settings.deployment_dir) / SERVED_FILE


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case, as API Gateway sends them
    body: bytes

    @property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_http_event(event) -> bool:
    """An API Gateway proxy event (any payload format), as opposed to a direct invocation."""
    return isinstance(event, dict) and isinstance(event.get("requestContext"), dict) and (
        "httpMethod" in event or event.get("version") == "2.0"
    )


def http_request(event: dict) -> HttpRequest:
    """The HTTP request inside an HTTP API payload-2.0 event."""
    if event.get("version") != "2.0":
        # A REST API or payload format 1.0: the template sets 2.0, so this is a deployment fault.
        raise RuntimeError("the event is API Gateway payload format 1.0; set the integration's PayloadFormatVersion to 2.0")
    context = event["requestContext"]
    http = context.get("http") if isinstance(context.get("http"), dict) else {}
    path = event.get("rawPath") or http.get("path") or "/"
    stage = context.get("stage")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]  # a named stage is part of rawPath
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "the request body is marked isBase64Encoded but is not valid base64") from None
    else:
        data = body.encode("utf-8") if isinstance(body, str) else b""
    return HttpRequest(str(http.get("method", "")).upper(), path, headers, data)


def http_api_event(
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    source_ip: str = "127.0.0.1",
    host: str = "localhost",
    route_key: str | None = None,
) -> dict:
    """The event API Gateway's HTTP API (payload format 2.0) sends for one request.

    ``target`` is the path with its query string; ``headers`` are combined and lower-cased as
    API Gateway does; ``body`` is passed as text for JSON and text types, else base64-encoded
    with ``isBase64Encoded: true``. ``route_key`` defaults to ``POST /predict`` for that route
    and ``$default`` for any other (a real API with only ``POST /predict`` answers those itself).
    Used by the local stand-in (``deployment/aws/local_api.py``) and the tests.
    """
    path, _, query = target.partition("?")
    lowered: dict[str, str] = {}
    for name, value in (headers or {}).items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else str(value)
    route_key = route_key or (ROUTE_KEY if (method.upper(), path) == (METHOD, PATH) else "$default")
    now = datetime.now(timezone.utc)
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        parameters: dict[str, str] = {}
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
        event["queryStringParameters"] = parameters
    if "cookie" in lowered:
        event["cookies"] = [cookie.strip() for cookie in lowered["cookie"].split(";")]
    if body:
        mimetype = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
        if _TEXT_TYPES.fullmatch(mimetype):
            try:
                event["body"] = body.decode("utf-8")
                return event
            except UnicodeDecodeError:
                pass
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
    return event


# ---------------------------------------------------------------------------- the handler


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a record is emitted (Lambda sends it to CloudWatch Logs)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def _log_to_stdout() -> None:
    if not any(isinstance(handler, _StdoutHandler) for handler in log.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # Lambda's root handler would print every line a second time


class LambdaApp:
    """The Lambda handler: ``LambdaApp()(event, context)``; one per container.

    ``settings``: default ``Settings.from_env()``; ``model``: the model file (default
    :func:`model_path`, read when the model is first loaded); ``allow_private``: let URLs reach
    private addresses (default ``settings.allow_private_urls``); ``limits``: the URL fetch limits;
    ``max_body``: the request body cap.
    """

    def __init__(
        self,
        model: Path | str | None = None,
        *,
        settings: Settings | None = None,
        allow_private: bool | None = None,
        limits: Limits | None = None,
        max_body: int = MAX_IMAGE_BYTES,
    ):
        self.settings = settings or Settings.from_env()
        self.model = Path(model) if model else model_path(self.settings)
        self.allow_private = self.settings.allow_private_urls if allow_private is None else allow_private
        self.limits = limits or Limits()
        self.max_body = max_body
        self._predictor: Predictor | None = None
        self._lock = threading.Lock()
        _log_to_stdout()

    def predictor(self) -> Predictor:
        """The model, loaded on the first call (ModelError when it cannot be; the next call tries again)."""
        with self._lock:
            if self._predictor is None:
                started = time.perf_counter()
                self._predictor = Predictor.load(
                    self.model, self.settings.face_centred, detector_weights=self.settings.detector_weights
                )
                log.info("loaded the model %s (%s) in %.2f s", self.model, self._predictor.name, time.perf_counter() - started)
            return self._predictor

    def warm_up(self) -> bool:
        """Load the model now (Lambda's init phase); a failure is logged and retried on the first event."""
        try:
            self.predictor()
            return True
        except ModelError as error:
            log.error("%s", error)
            return False

    def __call__(self, event, context=None) -> dict:
        started = time.perf_counter()
        http = is_http_event(event)
        request = None
        try:
            if http:
                request = http_request(event)
                image = self._image_from_http(request)
            else:
                image = image_from_payload(event, direct=True)
            status, answer = 200, self._predict(image)
        except KNOWN_ERRORS as error:
            if isinstance(error, HostRefused):  # the answer names no address; the log does
                log.warning("refused URL host: %s", error.detail)
            status, message = status_and_message(error)
            answer = {"error": message}
        except ModelError as error:
            log.error("%s", error)
            status, answer = 500, {"error": INTERNAL_ERROR}
        except Exception:  # noqa: BLE001 - a fault of the service: logged with its trace, answered without
            log.exception("unhandled error on %s", "an HTTP event" if http else "a direct invocation")
            status, answer = 500, {"error": INTERNAL_ERROR}
        self._log(context, request, http, status, answer, started)
        if http:
            return {
                "statusCode": status,
                "headers": dict(HEADERS),
                "body": json.dumps(answer, separators=(",", ":")) + "\n",  # what Flask's jsonify writes
                "isBase64Encoded": False,
            }
        return answer if status == 200 else {**answer, "status": status}

    def _image_from_http(self, request: HttpRequest) -> bytes | str:
        """The image's bytes, or the URL, from a POST /predict request; ApiError for anything else."""
        if request.path != PATH:
            raise ApiError(404, f"no such path: {request.path}; this API has {ROUTE_KEY}")
        if request.method != METHOD:
            raise ApiError(405, f"{request.method} is not allowed on {PATH}; use {METHOD}")
        if len(request.body) > self.max_body:
            raise ApiError(413, body_too_large_message(self.max_body))
        return image_from_body(request.headers.get("content-type", ""), request.body)

    def _predict(self, image: bytes | str) -> dict:
        predictor = self.predictor()
        if isinstance(image, str):
            return predictor.predict_url(image, allow_private=self.allow_private, limits=self.limits).as_dict()
        if len(image) > self.max_body:
            raise ApiError(413, body_too_large_message(self.max_body))
        return predictor.predict(image).as_dict()

    @staticmethod
    def _log(context, request: HttpRequest | None, http: bool, status: int, answer: dict, started: float) -> None:
        line = {
            "request_id": getattr(context, "aws_request_id", None),
            "event": "http" if http else "direct",
            "method": request.method if request else None,
            "path": request.path if request else None,
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
        line.update({"label": answer["label"]} if status == 200 else {"error": answer["error"]})
        log.info("%s", json.dumps(line))


def handler_app() -> LambdaApp:
    """The handler's LambdaApp; inside AWS Lambda the model is loaded now, in the init phase, so
    that the first request does not wait for it (and provisioned concurrency pre-loads it)."""
    app = LambdaApp()
    if app.settings.in_aws_lambda:
        app.warm_up()
    return app
