"""Load in CI-sized form: the service as deployed survives 5,000 uploads at concurrency 16.

``maskdetect serve`` starts nginx in front of gunicorn (``deployment/gunicorn.conf.py``, 2 sync
workers) with the committed LiteRT model (``deployment/maskdetect.tflite``, the lean path: no TensorFlow, YuNet looking for the face
in every upload, as deployed) on 127.0.0.1; 16 client threads in this process upload JPEGs of about 20 KB to 1 MB as
multipart forms over kept-alive connections to nginx (which opens one to gunicorn per request). It checks: no
5xx and no connection error, every answer a prediction and the same one for the same image,
no worker restarted, and each worker's RSS grown by at most 10% from after the first 1,000
requests to the end (a leak per request would show). The numbers (requests/s, latency
percentiles, RSS) are printed so a CI log shows them.

A benchmark this is not (``make bench`` is): the client shares the machine's cores with the
server, so no speed is asserted. The run is guarded against a hang, not timed: if no answer comes
for ``STALL_LIMIT_S`` the test fails and says how far it got. ``MASKDETECT_LOAD_MODEL`` serves another model file (e.g. ``deployment/maskdetect.h5``).
"""

from __future__ import annotations

import io
import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.samples import encode, photo
from tests.servers import gunicorn_master, serve
from maskdetect.core import constants

pytestmark = pytest.mark.slow  # a server under 5,000 requests

MODEL = Path(os.environ.get("MASKDETECT_LOAD_MODEL") or constants.PROJECT_ROOT / "deployment" / "maskdetect.tflite")
REQUESTS = 5_000
CONCURRENCY = 16
WORKERS = 2
CHECKPOINT = 1_000  # RSS is compared from here to the end: start-up and warm-up are over by then
MAX_RSS_GROWTH = 0.10
STALL_LIMIT_S = 120  # a hang guard: no answer for this long stops the drive (a busy machine only slows it)


def jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: smooth shapes plus a little noise, so it compresses like a photo."""
    image = np.asarray(photo(seed, (width, height)), np.int16)
    noise = np.random.default_rng(seed).integers(-12, 13, image.shape)
    return encode(Image.fromarray(np.clip(image + noise, 0, 255).astype(np.uint8)), quality=92)


@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    """The mix of uploads, in the order they are sent, cycled: mostly small, some large."""
    sizes = {(320, 240): 4, (640, 480): 3, (1024, 768): 2, (1800, 1350): 1}  # ~20, 90, 270, 1000 KB
    mix = []
    for seed, ((width, height), count) in enumerate(sizes.items()):
        image = jpeg(width, height, seed)
        mix.extend([image] * count)
    return mix


@pytest.fixture(scope="module")
def deployed_service(tmp_path_factory):
    if not MODEL.is_file():
        pytest.fail(f"no model at {MODEL}: the load test serves the committed model (or MASKDETECT_LOAD_MODEL)")
    log = tmp_path_factory.mktemp("load") / "serve.log"
    # As deployed (nginx in front of gunicorn), with a queue budget that sheds nothing: this test
    # is about every request being answered; shedding has its own (tests/test_reliability.py).
    with serve(log, MODEL_PATH=MODEL, WORKERS=WORKERS, MASKDETECT_QUEUE_BUDGET_S=60) as (base_url, process):
        yield base_url, process, log


def worker_rss(master) -> dict[int, int]:
    """RSS in bytes of each gunicorn worker, by pid."""
    return {child.pid: child.memory_info().rss for child in master.children()}


def test_5000_uploads_at_concurrency_16(deployed_service, bodies, capsys):
    import psutil

    base_url, process, log = deployed_service
    master = gunicorn_master(process.pid)
    assert len(master.children()) == WORKERS

    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[str] = []  # connection errors, timeouts, answers that are not predictions
    answers: dict[int, set] = {}  # body index -> the answers it got
    checkpoint: dict[int, int] = {}
    last_answer = [time.monotonic()]  # when an answer last came: the hang guard

    def client():
        with requests.Session() as session:
            while (number := next(counter)) < REQUESTS and time.monotonic() - last_answer[0] < STALL_LIMIT_S:
                which = number % len(bodies)
                started = time.perf_counter()
                try:
                    response = session.post(
                        f"{base_url}/predict", files={"image": ("photo.jpg", io.BytesIO(bodies[which]), "image/jpeg")}, timeout=60
                    )
                    body = response.json() if response.status_code == 200 else None
                except (requests.RequestException, ValueError) as error:
                    with lock:
                        failures.append(f"request {number}: {error.__class__.__name__}: {error}")
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    last_answer[0] = time.monotonic()
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if body is not None:
                        answers.setdefault(which, set()).add((body.get("label"), body.get("with_mask"), body.get("incorrect"), body.get("without_mask")))
                    if len(latencies) == CHECKPOINT:
                        checkpoint.update(worker_rss(master))

    def cpu_seconds(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    me, workers = psutil.Process(), master.children()
    cpu_before = [cpu_seconds(me)] + [cpu_seconds(worker) for worker in workers]
    started = time.monotonic()
    threads = [threading.Thread(target=client, name=f"load-{i}") for i in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    end = worker_rss(master)
    cpu = [cpu_seconds(process) - before for process, before in zip([me, *workers], cpu_before)]

    done = len(latencies) + len(failures)
    latency_ms = sorted(1000 * value for value in latencies)
    percentile = lambda p: latency_ms[min(len(latency_ms) - 1, int(p / 100 * len(latency_ms)))]  # noqa: E731
    growth = {pid: end[pid] / checkpoint[pid] - 1 for pid in checkpoint if pid in end}
    with capsys.disabled():
        print(
            f"\nload: {done} uploads ({len(bodies)}-image mix, {min(map(len, bodies)) // 1024}-"
            f"{max(map(len, bodies)) // 1024} KB) at concurrency {CONCURRENCY}, {WORKERS} workers, model {MODEL.name}: "
            f"{seconds:.1f} s, {done / seconds:.1f} requests/s; latency p50 {percentile(50):.0f} ms, "
            f"p95 {percentile(95):.0f} ms, p99 {percentile(99):.0f} ms, max {latency_ms[-1]:.0f} ms; "
            f"statuses {statuses}; connection errors {len(failures)}; CPU seconds: client {cpu[0]:.0f}, "
            f"workers {' + '.join(f'{value:.0f}' for value in cpu[1:])}; load average {os.getloadavg()[0]:.1f}"
        )
        for pid in sorted(end):
            before = checkpoint.get(pid)
            shown = f"{before / 2**20:.0f} MB after {CHECKPOINT} requests -> " if before else ""
            print(f"load: worker {pid} RSS {shown}{end[pid] / 2**20:.0f} MB at the end ({100 * growth.get(pid, 0):+.1f}%)")

    assert done == REQUESTS, (
        f"only {done} of {REQUESTS} requests: no answer came for {STALL_LIMIT_S} s (the service hung); see {log}"
    )
    assert not failures, f"{len(failures)} requests failed, e.g. {failures[:3]}"
    assert statuses == {200: REQUESTS}, f"statuses {statuses}; see {log}"
    assert all(len(seen) == 1 and None not in next(iter(seen)) for seen in answers.values()), answers
    assert set(end) == set(checkpoint), f"workers changed during the run ({sorted(checkpoint)} -> {sorted(end)}); see {log}"
    assert all(value <= MAX_RSS_GROWTH for value in growth.values()), f"worker RSS grew by {growth} (limit 10%)"
