"""The timings behind tests/test_reliability.py, which asserts only what happens and in what order.

    .venv/bin/python benchmarks/reliability.py            # ~1 min; prints one line per figure

`maskdetect serve` (nginx in front of 2 sync workers, the committed .tflite) on 127.0.0.1:
the slowest /health and /predict answer while 16 clients trickle uploads (deployment/docker/smoke.py,
5 rounds), how long after connecting a stalled request is cut off (client deadline 2 s, in the
headers and in the body), a burst of 64 uploads at the default 1 s queue budget and at 0.05 s, and
how long a reload (HUP) and a killed worker (KILL) take until the master has only new workers, and
the statuses 4 clients got meanwhile.
The client shares the machine's cores: a busy machine shows larger numbers, not a failure.
"""

from __future__ import annotations

import argparse
import collections
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "deployment" / "docker")]  # this checkout's package and test helpers; smoke.py

import smoke  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402
from tests.servers import gunicorn_master, serve  # noqa: E402

TFLITE = ROOT / "deployment" / "maskdetect.tflite"


def stalled_close_s(base_url: str, partial: bytes) -> float:
    host, port = base_url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(partial)
        try:
            connection.recv(4096)
        except ConnectionResetError:
            pass
    return time.monotonic() - start


def burst(base_url: str, jpeg: bytes, count: int = 64) -> tuple[float, list[int]]:
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        return requests.post(f"{base_url}/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=60).status_code

    start = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(one, range(count)))
    return time.monotonic() - start, statuses


def restart_s(base_url: str, process, jpeg: bytes, kill: bool) -> tuple[float, dict[int, int]]:
    """Seconds from the signal until the master has only new workers; the statuses under 4 clients (0: no answer)."""
    answers, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                answers.append(requests.post(f"{base_url}/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=60).status_code)
            except requests.RequestException:
                answers.append(0)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    master = gunicorn_master(process.pid)
    before = {worker.pid for worker in master.children()}
    start = time.monotonic()
    if kill:
        psutil.Process(min(before)).send_signal(signal.SIGKILL)
        replaced = {min(before)}
    else:
        process.send_signal(signal.SIGHUP)
        replaced = before
    while True:
        pids = {worker.pid for worker in master.children()}
        if len(pids) == 2 and not pids & replaced:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    return seconds, dict(sorted(collections.Counter(answers).items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, help="a JPEG with a face (default: the shared data's observations/with_mask/0-with-mask.jpg)")
    args = parser.parse_args(argv)
    jpeg = (args.photo or Settings.from_env().shared_data / "observations" / "with_mask" / "0-with-mask.jpg").read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        with serve(Path(folder) / "serve.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_CLIENT_TIMEOUT_S=2) as (base_url, process):
            slowest = smoke.check_under_slow_clients(base_url, jpeg, count=16, rounds=5, limit_s=60)
            print(f"16 slow clients: the slowest of 5 /health and 5 /predict answered in {slowest * 1000:.0f} ms")
            for where, partial in (("headers", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le"),
                                   ("body", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")):
                print(f"a request stalled in its {where} was cut off {stalled_close_s(base_url, partial):.2f} s after connecting (deadline 2 s)")
            seconds, statuses = burst(base_url, jpeg)
            print(f"burst of 64, 1 s budget: {seconds:.2f} s, {statuses.count(200)} x 200, {statuses.count(503)} x 503")
            for kill in (False, True):
                seconds, statuses = restart_s(base_url, process, jpeg, kill)
                print(f"{'kill -9 of a worker' if kill else 'kill -HUP'} under 4 clients: replaced after {seconds:.2f} s; "
                      f"statuses {statuses}")
        with serve(Path(folder) / "shed.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_QUEUE_BUDGET_S=0.05) as (base_url, _):
            seconds, statuses = burst(base_url, jpeg)
            print(f"burst of 64, 0.05 s budget: {seconds:.2f} s, {statuses.count(200)} x 200, {statuses.count(503)} x 503")
    return 0


if __name__ == "__main__":
    sys.exit(main())
