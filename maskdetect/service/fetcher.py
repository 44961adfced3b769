"""The URL fetch stage: JSON bodies to ``POST /predict`` and ``POST /detect``, kept off the compute workers.

``maskdetect serve`` runs this app in a second gunicorn (``deployment/gunicorn-fetch.conf.py``: one
gthread process, no model), and nginx sends it the POSTs whose Content-Type is application/json.
For each it reads the body under the one request contract (:mod:`maskdetect.core.requests`),
fetches a URL under the service's rules (at most ``URL_FETCHES`` at once in this process; past that
a 503 with Retry-After at once) or decodes ``{"image": base64}``, then forwards the bytes to the
compute gunicorn over its unix socket as an ``image/*`` POST to the same path and query string,
stamped afresh (``X-Request-Start``: load shedding measures only the wait for a compute worker),
and answers what the compute stage answered. So a URL that stalls for 10 s holds a thread here,
never a worker that answers uploads or ``/health``. Errors are the service's table
(:mod:`.errors`): a caller sees the same answers as from a worker fetching the URL itself.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from pathlib import Path

from flask import Flask, Response, current_app, request

from . import errors, metrics, shedding
from ..core import constants
from ..core.fetch import Limits, fetch_bytes
from ..core.requests import image_from_body
from ..settings import Settings

FORWARDED_TYPE = "image/*"  # the compute stage reads the bytes as an upload; decode_image tells the format by its content
COMPUTE_TIMEOUT_S = 35  # gunicorn's worker timeout (30 s) and then some: the compute stage answers first
# Hop-by-hop or recomputed here: every other header of the compute stage's answer is passed on.
NOT_RELAYED = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
UNAVAILABLE = "the service could not answer this request (a worker stopped or is starting); retry after {retry} s"
TIMED_OUT = "the service took longer than {seconds} s to answer; retry later or send a smaller image"
TOO_MANY_FETCHES = ("the service is fetching {fetches} image URLs already, as many as it fetches at once; "
                    "retry after {retry} s, or upload the image itself")


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the compute gunicorn's unix socket."""

    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def create_fetch_app(test_config: dict | None = None, settings: Settings | None = None) -> Flask:
    """The fetch stage's WSGI application, configured from ``settings`` (default ``Settings.from_env()``).

    Config keys: COMPUTE_SOCKET (the compute gunicorn's unix socket; ``MASKDETECT_COMPUTE_SOCKET``),
    URL_FETCHES (URLs fetched at once), and as in :func:`maskdetect.service.create_app`
    MAX_CONTENT_LENGTH, ALLOW_PRIVATE_URLS, URL_LIMITS and QUEUE_BUDGET_S (this stage sheds a request
    that waited longer for a thread).
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(
        COMPUTE_SOCKET=settings.compute_socket,
        URL_FETCHES=settings.url_fetches,
        MAX_CONTENT_LENGTH=constants.MAX_IMAGE_BYTES,
        ALLOW_PRIVATE_URLS=settings.allow_private_urls,
        URL_LIMITS=Limits(),
        QUEUE_BUDGET_S=settings.queue_budget_s,
    )
    if test_config is not None:
        app.config.update(test_config)
    if app.config["COMPUTE_SOCKET"] is None:
        raise ValueError("MASKDETECT_COMPUTE_SOCKET is not set: the fetch stage forwards to the compute gunicorn's "
                         "unix socket; run it with `maskdetect serve`, which sets it")
    app.extensions["maskdetect.fetches"] = threading.BoundedSemaphore(app.config["URL_FETCHES"])

    errors.register(app)
    shedding.register(app)
    app.add_url_rule("/predict", "predict", forward, methods=["POST"])
    app.add_url_rule("/detect", "detect", forward, methods=["POST"])
    return app


def _image_bytes() -> bytes:
    """The JSON body's image: decoded base64, or the URL's bytes, fetched within this process's cap."""
    image = image_from_body(request.content_type or "", request.get_data(cache=False))
    if not isinstance(image, str):
        return image
    fetches = current_app.extensions["maskdetect.fetches"]
    if not fetches.acquire(blocking=False):
        answer = errors.error_response(503, TOO_MANY_FETCHES.format(fetches=current_app.config["URL_FETCHES"], retry=constants.RETRY_AFTER_S))
        answer.headers["Retry-After"] = str(constants.RETRY_AFTER_S)
        raise _Answered(answer)
    try:
        with metrics.url_fetch_in_flight():  # the autoscaler's signal for waiting on URLs (hpa.yaml)
            return fetch_bytes(image, allow_private=current_app.config["ALLOW_PRIVATE_URLS"], limits=current_app.config["URL_LIMITS"])
    finally:
        fetches.release()


class _Answered(Exception):
    """An answer made before forwarding (the fetch cap)."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def forward():
    """``POST /predict`` or ``/detect`` with a JSON body: the image's bytes, answered by the compute stage."""
    try:
        data = _image_bytes()
    except _Answered as answered:
        return answered.response
    headers = {
        "Content-Type": FORWARDED_TYPE,
        "X-Request-Start": f"t={time.time():.3f}",  # from now on the request waits for a compute worker
    }
    for name in ("Host", "X-Forwarded-For", "X-Forwarded-Proto"):
        if name in request.headers:
            headers[name] = request.headers[name]
    target = request.full_path if request.query_string else request.path
    connection = _UnixHTTPConnection(current_app.config["COMPUTE_SOCKET"], COMPUTE_TIMEOUT_S)
    try:
        connection.request("POST", target, body=data, headers=headers)
        reply = connection.getresponse()
        body = reply.read()
    except TimeoutError:
        return errors.error_response(504, TIMED_OUT.format(seconds=COMPUTE_TIMEOUT_S))
    except (OSError, http.client.HTTPException):  # no socket, refused, or a worker killed mid-request
        current_app.logger.warning("the compute stage did not answer %s", target, exc_info=True)
        answer = errors.error_response(502, UNAVAILABLE.format(retry=constants.RETRY_AFTER_S))
        answer.headers["Retry-After"] = str(constants.RETRY_AFTER_S)
        return answer
    finally:
        connection.close()
    relayed = [(name, value) for name, value in reply.getheaders() if name.lower() not in NOT_RELAYED]
    return Response(body, status=reply.status, headers=relayed)
