"""The worst photo the service accepts, through `maskdetect serve` on loopback: each annotated answer stays
under 10 MB and 1920 px, and what the stack writes to its /tmp stays under the pod's emptyDir sizeLimit.

The stack runs with TMPDIR set to a folder of the test's own, so that folder is the pod's /tmp: nginx's
run folder (its config, socket and temp paths) and anything a worker spools land there, and are polled.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from PIL import Image

from maskdetect.core import constants
from maskdetect.core.video import video_writer
from tests.servers import serve

TFLITE = constants.PROJECT_ROOT / "deployment" / "maskdetect.tflite"
DEPLOYMENT = constants.PROJECT_ROOT / "deployment" / "kubernetes" / "deployment.yaml"
MAX_ANSWER_BYTES = 10_000_000  # issue 25's target: at most 10 MB
SIDE = 6324  # 6324 x 6324 = 39,992,976 pixels: the largest square within MAX_IMAGE_PIXELS, the PNG cap's worst shape


def tmp_size_limit() -> int:
    """The Deployment's /tmp emptyDir sizeLimit in bytes (a quantity in Mi or Gi)."""
    volumes = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["volumes"]
    (limit,) = [volume["emptyDir"]["sizeLimit"] for volume in volumes if volume["name"] == "tmp"]
    number, unit = int(limit[:-2]), limit[-2:]
    return number * {"Mi": 2**20, "Gi": 2**30}[unit]


@pytest.fixture(scope="module")
def worst_photo() -> bytes:
    """40 megapixels of noise in 4-pixel blocks, a JPEG near the 10 MB body limit: shrunk to the PNG cap it stays noise."""
    blocks = -(-SIDE // 4)
    noise = np.random.default_rng(25).integers(0, 256, (blocks, blocks, 3), dtype=np.uint8)
    photo = Image.fromarray(noise).resize((blocks * 4, blocks * 4), Image.Resampling.NEAREST).crop((0, 0, SIDE, SIDE))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=30)
    body = buffer.getvalue()
    assert 8 * 2**20 < len(body) <= constants.MAX_IMAGE_BYTES  # accepted, and close to the limit
    return body


class DiskWatch:
    """Polls a folder's bytes on disk (what `du` counts) every few milliseconds; the peak, and the peak under nginx's temp paths."""

    def __init__(self, folder: Path):
        self.folder, self.peak, self.peak_nginx_temp, self.polls = folder, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _used(self) -> tuple[int, int]:
        total = nginx_temp = 0
        for root, _, files in os.walk(self.folder):
            for name in files:
                try:
                    used = os.lstat(os.path.join(root, name)).st_blocks * 512
                except FileNotFoundError:  # removed between the listing and the look
                    continue
                total += used
                if Path(root).name in ("client_body", "proxy") or Path(root).parent.name in ("client_body", "proxy"):
                    nginx_temp += used
        return total, nginx_temp

    def _run(self) -> None:
        while not self._stop.is_set():
            total, nginx_temp = self._used()
            self.peak, self.peak_nginx_temp, self.polls = max(self.peak, total), max(self.peak_nginx_temp, nginx_temp), self.polls + 1
            time.sleep(0.002)

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_the_worst_photo_is_accepted_and_noisy_enough_to_be_the_png_worst_case(worst_photo):
    photo = Image.open(io.BytesIO(worst_photo))
    assert photo.width * photo.height <= constants.MAX_IMAGE_PIXELS and photo.width == photo.height
    shrunk = photo.convert("RGB").resize((1788, 1788), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    shrunk.save(buffer, "PNG")
    assert buffer.tell() > 0.95 * 1788 * 1788 * 3  # barely compressible: within 5 % of the raw pixels


@pytest.fixture
def tmp():
    """The pod's /tmp for one stack: a world-writable folder in /tmp (as root, serve runs nginx's workers as nobody)."""
    folder = Path(tempfile.mkdtemp(prefix="maskdetect-pod-tmp-"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # the stack, and the detector on 40 megapixels four times
def test_the_worst_accepted_photo_answers_at_most_10_mb_and_1920_px_and_tmp_stays_under_the_pods_limit(tmp_path, tmp, worst_photo):
    limit = tmp_size_limit()
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, TMPDIR=tmp) as (base_url, _):
        with DiskWatch(tmp) as watch:
            answers = {}
            for answer_format in ("png", "jpeg", "webp"):
                started = time.monotonic()
                response = requests.post(f"{base_url}/detect?format={answer_format}", data=worst_photo,
                                         headers={"Content-Type": "image/jpeg"}, timeout=120)
                answers[answer_format] = (response, time.monotonic() - started)
            started = time.monotonic()  # the same photo as a multipart form, as curl -F sends it
            response = requests.post(f"{base_url}/detect?format=png", files={"image": ("worst.jpg", worst_photo, "image/jpeg")}, timeout=120)
            answers["png (form)"] = (response, time.monotonic() - started)
    for name, (response, seconds) in answers.items():
        assert response.status_code == 200, (name, response.text[:300])
        drawn = Image.open(io.BytesIO(response.content))
        print(f"format={name}: {drawn.format} {drawn.width}x{drawn.height}, {len(response.content):,} bytes, {seconds:.1f} s")
        assert len(response.content) <= MAX_ANSWER_BYTES and max(drawn.size) <= constants.ANNOTATED_MAX_SIDE
        assert response.headers["Content-Type"] == Image.MIME[drawn.format]
    png = Image.open(io.BytesIO(answers["png"][0].content))
    assert png.size == (1788, 1788) and len(answers["png"][0].content) > 9_000_000  # the cap was what bounded it
    print(f"body {len(worst_photo):,} bytes; /tmp peak {watch.peak:,} bytes over {watch.polls} polls "
          f"(nginx temp paths {watch.peak_nginx_temp:,}); the pod's sizeLimit {limit:,}")
    assert watch.polls > 100
    assert watch.peak < limit
    assert watch.peak_nginx_temp == 0  # bodies and answers stay in nginx's memory (deployment/nginx.conf)


@pytest.mark.slow  # the stack, and a clip tracked and drawn
def test_a_clip_in_flight_is_what_tmp_holds_and_it_is_gone_once_answered(tmp_path, tmp):
    clip = tmp_path / "noise.mp4"  # 10 s of noise at 640x360 and 5 fps: every frame tracked and drawn
    rng = np.random.default_rng(25)
    with video_writer(clip, 5.0, (640, 360)) as write:
        for _ in range(50):
            write(Image.fromarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)))
    body = clip.read_bytes()
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, TMPDIR=tmp) as (base_url, _):
        with DiskWatch(tmp) as watch:
            response = requests.post(f"{base_url}/detect?format=mp4", data=body, headers={"Content-Type": "video/mp4"}, timeout=120)
        after = DiskWatch(tmp)._used()[0]
    assert response.status_code == 200, response.text[:300]
    print(f"clip {len(body):,} bytes, answer {len(response.content):,}; /tmp peak {watch.peak:,} bytes, "
          f"{after:,} after; the pod's sizeLimit {tmp_size_limit():,}")
    assert watch.peak >= len(body)  # the clip was on disk while the worker read it (the watch sees what it should)
    assert watch.peak < len(body) + len(response.content) + 1_000_000 < tmp_size_limit()  # the clip and its answer, no more
    assert after < 1_000_000 and watch.peak_nginx_temp == 0


def _encoded(side: int, kind: str) -> bytes:
    noise = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.slow  # the stack
def test_past_the_large_requests_at_once_another_large_one_gets_a_json_429_and_small_uploads_still_pass(tmp_path):
    small, large = _encoded(64, "JPEG"), _encoded(800, "PNG")
    assert len(small) < 10**6 <= len(large)
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_LARGE_REQUESTS=1) as (base_url, _):
        host, port = base_url.removeprefix("http://").split(":")
        held = socket.create_connection((host, int(port)))  # a large upload whose body never comes: it holds the one slot
        held.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 2000000\r\n\r\n" + large[:1000])
        try:
            for _ in range(50):  # until nginx has read the held request's header (milliseconds)
                refused = requests.post(f"{base_url}/predict", data=large, headers={"Content-Type": "image/png"}, timeout=60)
                if refused.status_code == 429:
                    break
            annotated = requests.post(f"{base_url}/detect?format=jpeg", data=small, headers={"Content-Type": "image/jpeg"}, timeout=60)
            chunked = requests.post(f"{base_url}/predict", data=iter([small]), headers={"Content-Type": "image/jpeg"}, timeout=60)
            json_large = requests.post(f"{base_url}/detect?format=png", json={"image": base64.b64encode(small).decode()}, timeout=60)
            uploads = [requests.post(f"{base_url}/predict", data=small, headers={"Content-Type": "image/jpeg"}, timeout=60) for _ in range(3)]
            detected = requests.post(f"{base_url}/detect", data=small, headers={"Content-Type": "image/jpeg"}, timeout=60)
            health = requests.get(f"{base_url}/health", timeout=60)
        finally:
            held.close()
        for _ in range(50):  # until nginx has closed the held request and freed its slot
            after = requests.post(f"{base_url}/predict", data=large, headers={"Content-Type": "image/png"}, timeout=60)
            if after.status_code != 429:
                break
    for answer in (refused, annotated, chunked):
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "1", (answer.status_code, answer.text)
        assert answer.json()["error"].startswith("too many large requests in the service: at most 1 at once")
    assert json_large.status_code == 429 and "or too many large requests in the service" in json_large.json()["error"]
    assert [answer.status_code for answer in (*uploads, detected, health)] == [200] * 5
    assert after.status_code == 200 and after.json()["label"] in ("with_mask", "incorrect", "without_mask")
