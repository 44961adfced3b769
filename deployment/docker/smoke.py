"""Smoke-test a running prediction service: /health, then /predict with a JPEG.

    python3 deployment/docker/smoke.py BASE_URL JPEG [--wait SECONDS] [--health-only] [--detect] [--slow-clients N]

Waits up to --wait seconds for GET /health to answer 200 {"status": "ok"}, then POSTs the JPEG
as a multipart upload (field "image") and as a raw image/jpeg body, and checks each answer's
shape. With --detect it also POSTs it to /detect (the crowd: every face the detector finds) and
checks that the counts add up. With --slow-clients N it then holds N connections that send
their headers and trickle their body a byte a second, and checks that /health and /predict
still answer every time within 2 s (tests/test_reliability.py does the same). Standard library only, so it runs on the host without the project's environment.
Prints one line per check; exits 1 on the first failure, saying what was wrong.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

# What the model answers (maskdetect.core.constants.LABELS; standard library only here, so copied:
# tests/test_docker.py checks they agree). A two-class model's answers carry no "incorrect".
LABELS = ("with_mask", "incorrect", "without_mask")
REQUIRED = ("with_mask", "without_mask")


class SmokeError(RuntimeError):
    pass


def call(request: urllib.request.Request, timeout: float = 30) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body)
    except ValueError:
        raise SmokeError(f"{request.full_url}: HTTP {status}, not JSON: {body[:200]!r}") from None


def wait_for_health(base: str, wait: float, alive=lambda: True) -> float:
    """Seconds until GET /health answered 200 with status ok."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < wait:
        try:
            status, body = call(urllib.request.Request(f"{base}/health"), timeout=5)
            if status == 200 and body.get("status") == "ok":
                return time.monotonic() - start
            last = f"HTTP {status} {body}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, SmokeError) as error:
            last = str(getattr(error, "reason", error))
        time.sleep(0.25)
    raise SmokeError(f"GET {base}/health: no 200 {{'status': 'ok'}} within {wait:.0f} s (last: {last})")


def _number(value) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def check_prediction(what: str, status: int, body: dict) -> None:
    """A label of LABELS and the probabilities of LABELS (or of the two of a two-class model): each
    in [0, 1], summing to 1, the label's the largest."""
    if status != 200:
        raise SmokeError(f"POST /predict ({what}): HTTP {status} {body}")
    label = body.get("label")
    probabilities = {name: body[name] for name in LABELS if name in body}
    if label not in LABELS or not set(REQUIRED) <= set(probabilities) or not all(map(_number, probabilities.values())):
        raise SmokeError(f"POST /predict ({what}): unexpected answer {body}")
    if (
        not all(0 <= p <= 1 for p in probabilities.values())
        or abs(sum(probabilities.values()) - 1) > 1e-6
        or probabilities.get(label, -1) < max(probabilities.values()) - 1e-9
    ):
        raise SmokeError(f"POST /predict ({what}): inconsistent answer {body}")


def predict_multipart(base: str, jpeg: bytes) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="image"; filename="smoke.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return call(urllib.request.Request(f"{base}/predict", data=body, headers=headers, method="POST"))


def predict_raw(base: str, jpeg: bytes) -> tuple[int, dict]:
    headers = {"Content-Type": "image/jpeg"}
    return call(urllib.request.Request(f"{base}/predict", data=jpeg, headers=headers, method="POST"))


def check_detection(status: int, body: dict) -> None:
    if status != 200:
        raise SmokeError(f"POST /detect: HTTP {status} {body}")
    faces, total = body.get("faces"), body.get("total")
    counts = [body.get(label, 0) for label in LABELS]  # "incorrect" absent from a two-class service's answer
    if not isinstance(faces, list) or total != len(faces) or sum(counts) != total:
        raise SmokeError(f"POST /detect: unexpected answer {body}")
    if any(face.get("label") not in LABELS for face in faces):
        raise SmokeError(f"POST /detect: a face with an unknown label in {body}")


class SlowClients:
    """``count`` connections that send a POST's headers, then its body one byte every ``interval`` s.

    What a slow or hostile client does to a server that takes a worker per connection. ``closed``
    counts the connections the server has closed (deadlines) so far.
    """

    def __init__(self, base: str, count: int, interval: float = 1.0, body_bytes: int = 100_000):
        host_port = base.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        self.address = (host.strip("[]"), int(port))
        self.count, self.interval, self.body_bytes = count, interval, body_bytes
        self.sockets: list[socket.socket] = []
        self.closed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> "SlowClients":
        head = (
            f"POST /predict HTTP/1.1\r\nHost: {self.address[0]}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {self.body_bytes}\r\n\r\n"
        ).encode()
        for _ in range(self.count):
            connection = socket.create_connection(self.address, timeout=5)
            connection.sendall(head + b"\xff")
            self.sockets.append(connection)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            for connection in list(self.sockets):
                try:
                    connection.sendall(b"\xd8")
                except OSError:
                    self.sockets.remove(connection)
                    self.closed += 1

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.sockets:
            connection.close()


def check_under_slow_clients(base: str, jpeg: bytes, count: int = 16, rounds: int = 5, limit_s: float = 2.0) -> float:
    """With ``count`` slow clients connected, /health and /predict answer 200 within ``limit_s``
    each, ``rounds`` times; the slowest answer's seconds."""
    slowest = 0.0
    with SlowClients(base, count):
        time.sleep(1.0)  # every slow connection accepted and stalled
        for _ in range(rounds):
            for what, send in (("GET /health", lambda: call(urllib.request.Request(f"{base}/health"), timeout=limit_s)),
                               ("POST /predict", lambda: call(urllib.request.Request(
                                   f"{base}/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, method="POST"), timeout=limit_s))):
                start = time.monotonic()
                try:
                    status, body = send()
                except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                    raise SmokeError(f"{what} with {count} slow clients connected: no answer ({getattr(error, 'reason', error)})") from None
                seconds = time.monotonic() - start
                if status != 200 or seconds > limit_s:
                    raise SmokeError(f"{what} with {count} slow clients connected: HTTP {status} in {seconds:.2f} s {body}")
                slowest = max(slowest, seconds)
    return slowest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("jpeg")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for /health")
    parser.add_argument("--health-only", action="store_true", help="only wait for /health, quietly")
    parser.add_argument("--detect", action="store_true", help="also POST the JPEG to /detect")
    parser.add_argument("--slow-clients", type=int, default=0, metavar="N", help="then check /health and /predict with N slow clients connected")
    args = parser.parse_args(argv)
    base = args.base_url.rstrip("/")
    try:
        seconds = wait_for_health(base, args.wait)
        if args.health_only:
            return 0
        print(f"GET /health: 200 ({seconds:.1f} s)")
        with open(args.jpeg, "rb") as file:
            jpeg = file.read()
        for what, send in (("multipart image", predict_multipart), ("raw image/jpeg", predict_raw)):
            start = time.monotonic()
            status, body = send(base, jpeg)
            check_prediction(what, status, body)
            print(f"POST /predict ({what}, {len(jpeg)} bytes): 200 in "
                  f"{(time.monotonic() - start) * 1000:.0f} ms {json.dumps(body)}")
        if args.detect:
            start = time.monotonic()
            request = urllib.request.Request(f"{base}/detect", data=jpeg, headers={"Content-Type": "image/jpeg"}, method="POST")
            status, body = call(request)  # the detector is loaded at start-up, as the model is
            check_detection(status, body)
            print(f"POST /detect (raw image/jpeg): 200 in {time.monotonic() - start:.1f} s, {body['total']} faces")
        if args.slow_clients:
            slowest = check_under_slow_clients(base, jpeg, args.slow_clients)
            print(f"{args.slow_clients} slow clients connected: /health and /predict answered 200, the slowest in {slowest * 1000:.0f} ms")
    except SmokeError as error:
        if not args.health_only:
            print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
