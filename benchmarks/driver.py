"""The load driver: a separate process that sends the benchmark's HTTP requests and times them.

    python benchmarks/driver.py < spec.json > result.json

Standard library only (asyncio and raw sockets): it imports neither requests nor locust, costs
little CPU per request (the service shares the machine with it), and times each request from
opening the connection to the last byte of the answer. A closed loop: ``concurrency``
connections, each sending its next request as soon as the previous answer is in, until
``requests`` answers are in or ``seconds`` have passed, after ``warmup`` untimed requests.

The spec (JSON on stdin)::

    {"host": "127.0.0.1", "port": 8000, "timeout": 60,
     "items": [{"tag": "100KB", "method": "POST", "path": "/predict",
                "upload": "/tmp/x.jpg"} | {"json": {...}} | {} ...],
     "concurrency": 4, "requests": 1000, "seconds": 30, "warmup": 8}

Items are sent in turn (round robin). The answer (JSON on stdout): the run's wall time, the driver's CPU time, and per
request its tag, status (0: the connection failed, -1: timed out) and latency in seconds; the
warm-up's (status, latency) apart.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

BOUNDARY = b"maskdetect-bench-8a3f0c"


def build_request(item: dict, host: str, port: int) -> bytes:
    """One HTTP/1.1 request as bytes, built once and sent many times."""
    method, path = item.get("method", "GET"), item["path"]
    headers = [f"Host: {host}:{port}", "User-Agent: maskdetect-bench", "Connection: close"]
    body = b""
    if "upload" in item:  # a multipart form with the file in field "image", as a browser sends it
        data = Path(item["upload"]).read_bytes()
        body = (
            b"--" + BOUNDARY + b"\r\n"
            b'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--" + BOUNDARY + b"--\r\n"
        )
        headers.append("Content-Type: multipart/form-data; boundary=" + BOUNDARY.decode())
    elif "json" in item:
        body = json.dumps(item["json"]).encode()
        headers.append("Content-Type: application/json")
    if body or method == "POST":
        headers.append(f"Content-Length: {len(body)}")
    head = f"{method} {path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode("latin-1") + body


async def send(host: str, port: int, request: bytes) -> int:
    """Send ``request`` on a new connection and read the whole answer; its status code."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            await reader.read()  # no length: the body ends when the server closes
        else:
            await reader.readexactly(length)
        return status
    finally:
        writer.close()


async def run(spec: dict) -> dict:
    host, port, timeout = spec["host"], spec["port"], float(spec.get("timeout", 60))
    requests = [(item.get("tag", item["path"]), build_request(item, host, port)) for item in spec["items"]]
    concurrency, total, seconds = int(spec["concurrency"]), int(spec["requests"]), float(spec["seconds"])
    results: list[tuple[str, int, float]] = []
    counter = {"next": 0}

    def take():
        index = counter["next"]
        counter["next"] += 1
        return requests[index % len(requests)]

    async def timed(request: bytes) -> tuple[int, float]:
        begin = time.perf_counter()
        try:
            status = await asyncio.wait_for(send(host, port, request), timeout)
        except asyncio.TimeoutError:
            status = -1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0  # refused, reset, or an answer that is not HTTP
        return status, time.perf_counter() - begin

    # Warm-up, not in the results: rounds of `concurrency` requests at once (so that every worker
    # gets some while the others are busy); their statuses and times are reported apart.
    warmup = []
    for _ in range(int(spec.get("warmup", 0))):
        warmup.extend(await asyncio.gather(*(timed(take()[1]) for _ in range(concurrency))))
    counter["next"] = 0

    deadline = time.perf_counter() + seconds

    async def connection():
        while counter["next"] < total and time.perf_counter() < deadline:
            tag, request = take()
            status, latency = await timed(request)
            results.append((tag, status, latency))

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,  # the driver's own CPU while timed: it shares the machine
        "results": results,
        "warmup": warmup,
    }


def main() -> int:
    spec = json.load(sys.stdin)
    json.dump(asyncio.run(run(spec)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
