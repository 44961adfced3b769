"""Image URLs that stall, and clients with addresses of their own: tests/test_url_stalls.py and benchmarks/url_stalls.py.

Every address is on loopback: the service listens on 127.0.0.1, each client binds its own source
address in 127.0.0.0/8 so that nginx's per-client limits see distinct clients.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_S = 10.0  # as long as the fetch deadline (maskdetect.core.constants.URL_TOTAL_TIMEOUT)


@dataclass
class Answer:
    """One request from a client: when it was sent and answered (time.monotonic()), the status, headers and JSON body."""

    kind: str
    source: str
    sent: float
    answered: float
    status: int
    headers: dict
    body: dict | None

    @property
    def seconds(self) -> float:
        return self.answered - self.sent


def request(base_url: str, method: str, path: str, *, source: str, body: bytes | None = None,
            content_type: str | None = None, kind: str = "", timeout: float = 90) -> Answer:
    """One request over a new connection from ``source`` (an address in 127.0.0.0/8)."""
    address = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout, source_address=(source, 0))
    headers = {"Content-Type": content_type} if content_type else {}
    sent = time.monotonic()
    try:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
        status, reply_headers = reply.status, dict(reply.getheaders())
    except OSError as error:  # a connection reset or timeout: status 0, the error as the body
        return Answer(kind, source, sent, time.monotonic(), 0, {}, {"error": repr(error)})
    finally:
        connection.close()
    try:
        parsed = json.loads(data) if reply_headers.get("Content-Type", "").startswith("application/json") else None
    except ValueError:
        parsed = None
    return Answer(kind, source, sent, time.monotonic(), status, reply_headers, parsed)


def post_json(base_url: str, path: str, payload: dict, *, source: str, kind: str = "") -> Answer:
    return request(base_url, "POST", path, source=source, body=json.dumps(payload).encode(), content_type="application/json", kind=kind)


def post_image(base_url: str, path: str, jpeg: bytes, *, source: str, kind: str = "upload") -> Answer:
    return request(base_url, "POST", path, source=source, body=jpeg, content_type="image/jpeg", kind=kind)


def base64_payload(jpeg: bytes) -> dict:
    return {"image": base64.b64encode(jpeg).decode()}


class StallingSite:
    """http://127.0.0.1:PORT/stall.jpg sends nothing for STALL_S seconds, then the photo; ``opened`` records when each fetch arrived."""

    def __init__(self, jpeg: bytes, stall_s: float = STALL_S):
        self.jpeg, self.stall_s = jpeg, stall_s
        self.opened: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with site._lock:
                    site.opened.append(time.monotonic())
                site._stop.wait(site.stall_s)
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(site.jpeg)))
                    self.end_headers()
                    self.wfile.write(site.jpeg)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stall.jpg"

    def wait_for_open(self, count: int, seconds: float = 30) -> float:
        """When the count-th fetch arrived; AssertionError if it does not within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.opened) >= count:
                    return self.opened[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"{len(self.opened)} fetches of {self.url} arrived within {seconds} s, not {count}")

    def __enter__(self) -> StallingSite:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class StallRun:
    """What the stall scenario saw: every answer, and when all the stalled fetches were open."""

    stalled: list[Answer] = field(default_factory=list)
    uploads: list[Answer] = field(default_factory=list)
    health: list[Answer] = field(default_factory=list)
    all_open: float = 0.0

    @property
    def first_stall_answered(self) -> float:
        return min(answer.answered for answer in self.stalled)

    def during_stall(self, answers: list[Answer]) -> list[Answer]:
        """The answers sent after every stalled fetch was open and answered before any stalled request was."""
        return [a for a in answers if a.sent >= self.all_open and a.answered <= self.first_stall_answered]


def stall_scenario(base_url: str, jpeg: bytes, site: StallingSite, clients: int = 8, rounds: int = 2,
                   at_once: int | None = None) -> StallRun:
    """``clients`` clients (127.0.0.2...) POST /predict {"url": the stalling URL} back to back, each
    ``rounds`` times; meanwhile 127.0.0.10 uploads the photo to /predict and asks /health,
    alternately, until every stalled client has had its answer. ``at_once``: the fetches the
    service opens at once (default ``clients``; gunicorn alone fetches one per worker)."""
    run = StallRun()
    lock = threading.Lock()
    stop = threading.Event()

    def stalling(source: str):
        for _ in range(rounds):
            answer = post_json(base_url, "/predict", {"url": site.url}, source=source, kind="stalled")
            with lock:
                run.stalled.append(answer)

    def uploading():
        while not stop.is_set():
            upload = post_image(base_url, "/predict", jpeg, source="127.0.0.10")
            health = request(base_url, "GET", "/health", source="127.0.0.10", kind="health", timeout=30)
            with lock:
                run.uploads.append(upload)
                run.health.append(health)

    threads = [threading.Thread(target=stalling, args=(f"127.0.0.{2 + i}",)) for i in range(clients)]
    uploader = threading.Thread(target=uploading)
    before = len(site.opened)
    uploader.start()
    for thread in threads:
        thread.start()
    try:
        run.all_open = site.wait_for_open(before + (at_once or clients))
    finally:
        for thread in threads:
            thread.join()
        stop.set()
        uploader.join()
    return run
