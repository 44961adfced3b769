"""Slow clients, bursts, reloads and killed workers: `maskdetect serve` (nginx in front of
gunicorn) on 127.0.0.1, serving the committed .tflite (its workers boot in under a second).

The same slow-client check runs against the container in `make docker-check`
(deployment/docker/smoke.py --slow-clients 16).
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from tests.servers import gunicorn_master, serve
from maskdetect.core import constants

sys.path.insert(0, str(constants.PROJECT_ROOT / "deployment" / "docker"))
import smoke  # noqa: E402  (standard library only: it also runs on the host against the container)

TFLITE = constants.PROJECT_ROOT / "deployment" / "maskdetect.tflite"


@pytest.fixture(scope="module")
def jpeg(observations) -> bytes:
    """A real photo of a masked face: /predict runs the detector and the model on it."""
    return (observations / "with_mask" / "0-with-mask.jpg").read_bytes()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve(log, MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_CLIENT_TIMEOUT_S=2) as (base_url, process):
        yield base_url, process, log


def wait_for_workers(process, count: int, other_than: set[int] = frozenset(), seconds: float = 30) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = {worker.pid for worker in gunicorn_master(process.pid).children()}
        if len(pids) == count and not pids & other_than:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"no {count} new workers within {seconds} s")


class Load:
    """``threads`` clients POSTing the photo to /predict back to back until stopped; every answer kept."""

    def __init__(self, base_url: str, jpeg: bytes, threads: int = 4):
        self.base_url, self.jpeg = base_url, jpeg
        self.answers: list[tuple[int, dict, dict]] = []  # (status, body, headers)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                reply = requests.post(f"{self.base_url}/predict", data=self.jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30)
                self.answers.append((reply.status_code, reply.json(), dict(reply.headers)))
            except (requests.RequestException, ValueError) as error:
                self.answers.append((0, {"error": repr(error)}, {}))

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def failures(self) -> list[tuple[int, dict, dict]]:
        return [answer for answer in self.answers if answer[0] != 200]


# ---------------------------------------------------------------------------- slow clients


@pytest.mark.slow
def test_sixteen_slow_clients_leave_health_and_predict_answering_within_2_s(stack, jpeg):
    base_url, _, _ = stack
    slowest = smoke.check_under_slow_clients(base_url, jpeg, count=16, rounds=5, limit_s=2.0)
    print(f"16 slow clients: the slowest /health or /predict answered in {slowest * 1000:.0f} ms")
    assert slowest < 2.0


@pytest.mark.slow
def test_a_client_that_stops_sending_is_disconnected_after_the_client_timeout(stack):
    base_url, _, _ = stack
    host, port = base_url.removeprefix("http://").split(":")
    for partial in (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"):
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(partial)
            start = time.monotonic()
            try:
                answer = connection.recv(4096)  # b"" when closed, else the start of a 408
            except ConnectionResetError:  # closed with a reset (nginx's reset_timedout_connection)
                answer = b""
            waited = time.monotonic() - start
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert 1.5 < waited < 6, waited  # MASKDETECT_CLIENT_TIMEOUT_S=2


# ---------------------------------------------------------------------------- bursts and shedding


def _burst(base_url: str, jpeg: bytes, count: int = 64) -> tuple[list[tuple[int, dict, dict]], float]:
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        reply = requests.post(f"{base_url}/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=30)
        return reply.status_code, reply.json(), dict(reply.headers)

    start = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(one, range(count)))
    return answers, time.monotonic() - start


@pytest.mark.slow
def test_a_burst_of_64_uploads_is_answered_in_full_within_15_s(stack, jpeg):
    base_url, _, _ = stack
    answers, seconds = _burst(base_url, jpeg)
    print(f"burst of 64, 1 s budget: {seconds:.2f} s, {sum(a[0] == 200 for a in answers)} x 200, {sum(a[0] == 503 for a in answers)} x 503")
    assert seconds < 15
    assert all(status in (200, 503) for status, _, _ in answers), [a[:2] for a in answers if a[0] not in (200, 503)]
    assert all(body["label"] == "with_mask" and {"with_mask", "incorrect", "without_mask"} <= set(body) for status, body, _ in answers if status == 200)
    assert all(headers.get("Retry-After") == "1" and "busy" in body["error"] for status, body, headers in answers if status == 503)
    assert sum(status == 200 for status, _, _ in answers) >= 32  # the default 1 s budget sheds little or nothing here


@pytest.mark.slow
def test_past_the_queue_budget_a_burst_is_shed_with_503_and_retry_after(tmp_path, jpeg):
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_QUEUE_BUDGET_S=0.05) as (base_url, _):
        answers, seconds = _burst(base_url, jpeg)
        print(f"burst of 64, 0.05 s budget: {seconds:.2f} s, {sum(a[0] == 200 for a in answers)} x 200, {sum(a[0] == 503 for a in answers)} x 503")
        assert seconds < 15
        statuses = [status for status, _, _ in answers]
        assert set(statuses) == {200, 503}, statuses  # the first ones answered, the late ones shed
        for status, body, headers in answers:
            if status == 503:
                assert headers["Retry-After"] == "1" and headers["Content-Type"] == "application/json"
                assert "waited" in body["error"] and "0.05 s budget" in body["error"] and "retry after 1 s" in body["error"]
        assert requests.get(f"{base_url}/health", timeout=5).status_code == 200  # the queue drained


# ---------------------------------------------------------------------------- restarts


def _disrupted_under_load(base_url, process, jpeg, disrupt) -> tuple[Load, set[int], set[int]]:
    """4 clients for 1 s, then ``disrupt(workers)`` (which returns the pids to be replaced), until
    new workers serve and for 1 s more: the load, the workers before and after."""
    before = wait_for_workers(process, 2)
    with Load(base_url, jpeg) as load:
        time.sleep(1.0)
        replaced = disrupt(before)
        after = wait_for_workers(process, 2, other_than=replaced)
        time.sleep(1.0)
    return load, before, after


@pytest.mark.slow
def test_a_reload_under_load_fails_no_request(stack, jpeg):
    base_url, process, _ = stack

    def reload(workers):
        process.send_signal(signal.SIGHUP)
        return workers  # every worker is replaced

    load, before, after = _disrupted_under_load(base_url, process, jpeg, reload)
    print(f"reload under load: {len(load.answers)} answers, {len(load.failures())} failed")
    assert after.isdisjoint(before)
    assert len(load.answers) > 20 and load.failures() == []


@pytest.mark.slow
def test_a_killed_worker_fails_at_most_the_request_it_was_serving(stack, jpeg):
    base_url, process, _ = stack

    def kill_one(workers):
        victim = min(workers)
        psutil.Process(victim).send_signal(signal.SIGKILL)
        return {victim}

    load, before, after = _disrupted_under_load(base_url, process, jpeg, kill_one)
    failures = load.failures()
    print(f"killed worker under load: {len(load.answers)} answers, {len(failures)} failed {[f[0] for f in failures]}")
    assert min(before) not in after and len(after & before) == 1
    assert len(load.answers) > 20 and len(failures) <= 1, failures
    for status, body, headers in failures:
        assert status == 502 and headers["Retry-After"] == "1" and "retry after 1 s" in body["error"]


@pytest.mark.slow
def test_stopping_finishes_the_requests_in_flight_then_exits_0(tmp_path, jpeg, http_server):
    """TERM while a /predict waits on a slow image URL: the answer still comes, then serve exits 0."""
    def after_two_seconds(write):
        time.sleep(2.0)
        write(jpeg)

    http_server["/slow.jpg"] = (200, after_two_seconds, len(jpeg), {"Content-Type": "image/jpeg"})
    slow_url = f"{http_server.base_url}/slow.jpg"
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=1, MASKDETECT_ALLOW_PRIVATE_URLS=1) as (base_url, process):
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(requests.post, f"{base_url}/predict", json={"url": slow_url}, timeout=30)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            reply = pending.result()
        assert reply.status_code == 200 and reply.json()["label"] == "with_mask"
        assert process.wait(timeout=30) == 0
    assert "Shutting down: Master" in (tmp_path / "serve.log").read_text()


# ---------------------------------------------------------------------------- the configuration


def test_the_nginx_configuration_is_complete_and_accepted_by_nginx(tmp_path):
    import subprocess

    from maskdetect import serve as stack_module

    text = stack_module.render_nginx_config(tmp_path, tmp_path / "g.sock", "127.0.0.1", 9, 3.0)
    assert "@" not in text.replace("@too_large", "").replace("@too_many", "").replace("@unavailable", "").replace("@timed_out", "")
    assert "client_header_timeout 3s;" in text and "client_body_timeout 3s;" in text
    assert f"client_max_body_size {constants.MAX_IMAGE_BYTES};" in text and f"server unix:{tmp_path / 'g.sock'};" in text
    (tmp_path / "nginx.conf").write_text(text)
    check = subprocess.run([stack_module.find_nginx(), "-t", "-q", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path), "-e", "stderr"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_serve_says_what_to_do_without_nginx_or_with_a_bad_setting(monkeypatch, capsys):
    from maskdetect import serve as stack_module

    monkeypatch.setattr(stack_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(stack_module.os, "access", lambda path, mode: False)
    assert stack_module.main([]) == 1
    said = capsys.readouterr().err
    assert "nginx is not installed" in said and "apt-get install nginx" in said and "--no-proxy" in said

    monkeypatch.undo()
    monkeypatch.setenv("MASKDETECT_QUEUE_BUDGET_S", "soon")
    assert stack_module.main([]) == 1
    assert "MASKDETECT_QUEUE_BUDGET_S='soon' is not a number of seconds over 0" in capsys.readouterr().err


@pytest.mark.slow
def test_the_serve_log_names_the_address_and_both_processes(stack):
    _, _, log = stack
    line = next(line for line in log.read_text().splitlines() if line.startswith("maskdetect serve: http://127.0.0.1:"))
    assert "(nginx, pid " in line and "-> gunicorn (pid " in line
