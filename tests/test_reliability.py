"""Slow clients, bursts, reloads and killed workers: `maskdetect serve` (nginx in front of
gunicorn) on 127.0.0.1, serving the committed .tflite (its workers boot in under a second).

The tests assert what happens and in what order, never how fast: the machine is shared and a busy
moment only delays answers. Timeouts here are hang guards that fail saying what hung. The speed
figures (the slowest answer under slow clients, a burst's seconds, how long a restart takes) are
printed by benchmarks/reliability.py and by `make docker-check` (deployment/docker/smoke.py
--slow-clients 16, which also holds answers to 2 s).
"""

from __future__ import annotations

import re
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
HANG_GUARD_S = 60  # no answer this long is a hang, not a slow machine


@pytest.fixture(scope="module")
def jpeg(observations) -> bytes:
    """A real photo of a masked face: /predict runs the detector and the model on it."""
    return (observations / "with_mask" / "0-with-mask.jpg").read_bytes()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The service as deployed, with its default 10 s client deadline: a client thread this busy machine
    stalls for 2 s (the deadline these tests once used) was cut off, and its request counted as lost."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve(log, MODEL_PATH=TFLITE, WORKERS=2) as (base_url, process):
        yield base_url, process, log


def wait_for_workers(process, count: int, other_than: set[int] = frozenset(), seconds: float = HANG_GUARD_S) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = {worker.pid for worker in gunicorn_master(process.pid).children()}
        if len(pids) == count and not pids & other_than:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"no {count} new workers within {seconds} s")


class Load:
    """``threads`` clients POSTing the photo to /predict back to back until stopped; every answer kept,
    with when its request was sent and answered (time.monotonic()), so failures can be put in order."""

    def __init__(self, base_url: str, jpeg: bytes, threads: int = 4):
        self.base_url, self.jpeg = base_url, jpeg
        self.answers: list[tuple[int, dict, dict]] = []  # (status, body, headers)
        self.times: list[tuple[float, float]] = []  # (sent, answered or failed), one per answer
        self._lock = threading.Lock()  # an answer and its times are appended together
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                reply = requests.post(f"{self.base_url}/predict", data=self.jpeg, headers={"Content-Type": "image/jpeg"}, timeout=HANG_GUARD_S)
                answer = (reply.status_code, reply.json(), dict(reply.headers))
            except (requests.RequestException, ValueError) as error:
                answer = (0, {"error": repr(error)}, {})
            with self._lock:
                self.times.append((sent, time.monotonic()))
                self.answers.append(answer)

    def wait_for_answers(self, count: int) -> None:
        """Until ``count`` answers in all have come; a hang guard fails the test."""
        deadline = time.monotonic() + HANG_GUARD_S
        while len(self.answers) < count:
            assert time.monotonic() < deadline, f"only {len(self.answers)} of {count} answers within {HANG_GUARD_S} s"
            time.sleep(0.05)

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def failures(self) -> list[tuple[int, dict, dict, tuple[float, float]]]:
        """The requests lost: neither a 200 nor shed by the queue budget (a busy machine's restart can
        take longer than the budget; a shed request was answered, by a worker, with Retry-After)."""
        return [(*answer, times) for answer, times in zip(self.answers, self.times) if answer[0] != 200 and not _shed(*answer)]

    def shed(self) -> int:
        return sum(_shed(*answer) for answer in self.answers)


def _shed(status: int, body: dict, headers: dict) -> bool:
    """A 503 from the app's queue budget (the default 1 s), with Retry-After, for a request that waited past it."""
    return status == 503 and headers.get("Retry-After") == "1" and "busy" in body.get("error", "") and _waited_past(body, constants.QUEUE_BUDGET_S)


# ---------------------------------------------------------------------------- slow clients


def still_open(connection: socket.socket) -> bool:
    """Whether the server has neither closed nor answered ``connection`` (nothing to read, no EOF)."""
    connection.setblocking(False)
    try:
        connection.recv(1, socket.MSG_PEEK)  # an answer's first byte, or b"" at EOF
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        connection.setblocking(True)


@pytest.mark.slow
def test_health_and_predict_are_answered_while_sixteen_slow_clients_hold_their_connections(stack, jpeg):
    """Without nginx, 16 trickling uploads hold both sync workers and these requests hang until the guard."""
    base_url, _, _ = stack
    with smoke.SlowClients(base_url, 16) as slow:
        for _ in range(5):
            try:
                health = requests.get(f"{base_url}/health", timeout=HANG_GUARD_S)
                predict = requests.post(f"{base_url}/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=HANG_GUARD_S)
            except requests.Timeout:
                pytest.fail(f"no answer within {HANG_GUARD_S} s while 16 slow clients were connected: they hold the workers")
            assert health.status_code == 200 and predict.status_code == 200 and predict.json()["label"] == "with_mask"
        # the order that matters: every slow upload was still open, unanswered, after those answers
        open_now = [still_open(connection) for connection in slow.sockets]
        assert slow.closed == 0 and len(open_now) == 16 and all(open_now), (slow.closed, open_now)


def _disconnected_after(host: str, port: int, partial: bytes) -> tuple[bytes, float]:
    """Send ``partial`` and stop: what the server sent before closing, and the seconds from connecting."""
    start = time.monotonic()  # before connecting: nginx's header deadline starts at the connection
    with socket.create_connection((host, port), timeout=HANG_GUARD_S) as connection:
        connection.sendall(partial)
        try:
            answer = connection.recv(4096)  # b"" when closed, else the start of a 408
        except ConnectionResetError:  # closed with a reset (nginx's reset_timedout_connection)
            answer = b""
        except TimeoutError:
            pytest.fail(f"a stalled request was still open after {HANG_GUARD_S} s: no client deadline")
        return answer, time.monotonic() - start


@pytest.mark.slow
def test_a_client_that_stops_sending_is_disconnected_by_the_client_deadline_and_not_before(stack):
    base_url, _, _ = stack
    host, port = base_url.removeprefix("http://").split(":")
    deadline = constants.CLIENT_TIMEOUT_S  # the stack's: nginx's client_header_timeout and client_body_timeout
    for partial in (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"):
        answer, waited = _disconnected_after(host, int(port), partial)
        print(f"a stalled request ({partial[-12:]!r}) was closed after {waited:.2f} s (deadline {deadline:g} s)")
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:100]  # closed, never answered
        # a busy machine can only close it later: before the deadline it was another cause
        assert waited >= deadline - 0.1, f"closed after {waited:.2f} s, before the {deadline} s client deadline"


# ---------------------------------------------------------------------------- bursts and shedding


def _burst(base_url: str, jpeg: bytes, count: int = 64) -> tuple[list[tuple[int, dict, dict]], float]:
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        reply = requests.post(f"{base_url}/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=HANG_GUARD_S)
        return reply.status_code, reply.json(), dict(reply.headers)

    start = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(one, range(count)))
    return answers, time.monotonic() - start


def _waited_past(body: dict, budget_s: float) -> bool:
    """Whether a shed request says it waited longer than ``budget_s`` (the message rounds to 0.1 s)."""
    return float(re.search(r"waited ([\d.]+) s", body["error"]).group(1)) >= round(budget_s, 1)


@pytest.mark.slow
def test_a_burst_of_64_uploads_is_answered_in_full_and_only_what_waited_past_the_budget_is_shed(stack, jpeg):
    base_url, _, _ = stack
    answers, seconds = _burst(base_url, jpeg)
    print(f"burst of 64, 1 s budget: {seconds:.2f} s, {sum(a[0] == 200 for a in answers)} x 200, {sum(a[0] == 503 for a in answers)} x 503")
    assert all(status in (200, 503) for status, _, _ in answers), [a[:2] for a in answers if a[0] not in (200, 503)]
    assert all(body["label"] == "with_mask" and {"with_mask", "incorrect", "without_mask"} <= set(body) for status, body, _ in answers if status == 200)
    assert all(headers.get("Retry-After") == "1" and "busy" in body["error"] for status, body, headers in answers if status == 503)
    # how many are shed depends on the machine's speed; that each shed one waited past the 1 s budget does not
    assert all(_waited_past(body, constants.QUEUE_BUDGET_S) for status, body, _ in answers if status == 503)
    assert sum(status == 200 for status, _, _ in answers) >= 2  # a free worker each: the first ones never wait


@pytest.mark.slow
def test_past_the_queue_budget_a_burst_is_shed_with_503_and_retry_after(tmp_path, jpeg):
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_QUEUE_BUDGET_S=0.05) as (base_url, _):
        answers, seconds = _burst(base_url, jpeg)
        print(f"burst of 64, 0.05 s budget: {seconds:.2f} s, {sum(a[0] == 200 for a in answers)} x 200, {sum(a[0] == 503 for a in answers)} x 503")
        statuses = [status for status, _, _ in answers]
        assert set(statuses) == {200, 503}, statuses  # the first ones answered, the late ones shed
        for status, body, headers in answers:
            if status == 503:
                assert headers["Retry-After"] == "1" and headers["Content-Type"] == "application/json"
                assert "0.05 s budget" in body["error"] and "retry after 1 s" in body["error"] and _waited_past(body, 0.05)
        assert requests.get(f"{base_url}/health", timeout=5).status_code == 200  # the queue drained


# ---------------------------------------------------------------------------- restarts


def _disrupted_under_load(base_url, process, jpeg, disrupt) -> tuple[Load, set[int], set[int], float]:
    """4 clients until 8 answers came, then ``disrupt(workers)`` (which returns the pids to be replaced),
    until new workers serve and 8 more answers came: the load, the workers before and after, and
    when the disruption began (counts, not seconds, so a busy machine only makes it longer)."""
    before = wait_for_workers(process, 2)
    with Load(base_url, jpeg) as load:
        load.wait_for_answers(8)
        disrupted_at = time.monotonic()
        replaced = disrupt(before)
        after = wait_for_workers(process, 2, other_than=replaced)
        load.wait_for_answers(len(load.answers) + 8)
    return load, before, after, disrupted_at


@pytest.mark.slow
def test_a_reload_under_load_fails_no_request(stack, jpeg):
    base_url, process, _ = stack

    def reload(workers):
        process.send_signal(signal.SIGHUP)
        return workers  # every worker is replaced

    load, before, after, _ = _disrupted_under_load(base_url, process, jpeg, reload)
    print(f"reload under load: {len(load.answers)} answers, {load.shed()} shed (503), {len(load.failures())} failed")
    assert after.isdisjoint(before)
    assert len(load.answers) >= 16 and load.failures() == []


@pytest.mark.slow
def test_a_killed_worker_fails_at_most_the_request_it_was_serving(stack, jpeg):
    base_url, process, _ = stack

    def kill_one(workers):
        victim = min(workers)
        psutil.Process(victim).send_signal(signal.SIGKILL)
        return {victim}

    load, before, after, killed_at = _disrupted_under_load(base_url, process, jpeg, kill_one)
    failures = load.failures()
    print(f"killed worker under load: {len(load.answers)} answers, {load.shed()} shed (503), {len(failures)} failed {[f[:2] for f in failures]}")
    assert min(before) not in after and len(after & before) == 1
    assert len(load.answers) >= 16 and len(failures) <= 1, failures
    for status, body, headers, (sent, ended) in failures:
        # the one request the worker was serving: sent before the kill, failed after it
        assert sent <= killed_at <= ended, (sent, killed_at, ended)
        if status == 0:
            # killed between writing its answer's header and its body: nginx had passed the header on,
            # so it can only cut the connection (a broken read, never a client timeout)
            assert re.search(r"ChunkedEncodingError|ConnectionError|IncompleteRead|ProtocolError", body["error"]), body
            assert "Timeout" not in body["error"], body
        else:  # killed before answering: nginx's 502
            assert status == 502 and headers["Retry-After"] == "1" and "retry after 1 s" in body["error"]


@pytest.mark.slow
def test_stopping_finishes_the_requests_in_flight_then_exits_0(tmp_path, jpeg, http_server):
    """TERM while a /predict waits on a slow image URL: the answer still comes, then serve exits 0."""
    fetching, stopping = threading.Event(), threading.Event()

    def once_stopping(write):  # the image comes only after TERM was sent: the request is in flight then
        fetching.set()
        stopping.wait(HANG_GUARD_S)
        time.sleep(0.5)
        write(jpeg)

    http_server["/slow.jpg"] = (200, once_stopping, len(jpeg), {"Content-Type": "image/jpeg"})
    slow_url = f"{http_server.base_url}/slow.jpg"
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=1, MASKDETECT_ALLOW_PRIVATE_URLS=1) as (base_url, process):
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(requests.post, f"{base_url}/predict", json={"url": slow_url}, timeout=HANG_GUARD_S)
            assert fetching.wait(HANG_GUARD_S), "the worker never fetched the image URL"
            process.send_signal(signal.SIGTERM)
            stopping.set()
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
