"""Services under test and the benchmark: free ports, the service as people run it, a folder served on loopback.

Shared by tests/ and benchmarks/bench.py; every address is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import requests

from maskdetect.core.constants import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(**settings) -> dict:
    """The environment of a child process: this checkout's package first."""
    env = {key: value for key, value in os.environ.items() if key not in ("MODEL_PATH", "HOST", "PORT", "WORKERS")}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({key: str(value) for key, value in settings.items()})
    return env


def wait_for_health(base_url: str, process, seconds: float = 90, interval: float = 0.2) -> dict:
    """The first 200 answer of ``base_url``/health, asked every ``interval`` seconds; AssertionError if none comes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode}")
        try:
            answer = requests.get(f"{base_url}/health", timeout=5)
            if answer.status_code == 200:
                return answer.json()
        except (requests.ConnectionError, requests.Timeout):  # bound, but the workers still boot
            pass
        time.sleep(interval)
    raise AssertionError(f"no /health answer from {base_url} within {seconds} s")


@contextlib.contextmanager
def gunicorn(log: Path, **settings):
    """``gunicorn -c deployment/gunicorn.conf.py`` on 127.0.0.1 and a free port, as people run it.

    ``settings`` become environment variables (MODEL_PATH, WORKERS...); yields (base URL, the
    master process) once /health answers, and stops gunicorn afterwards. Output goes to ``log``.
    """
    command = [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "deployment" / "gunicorn.conf.py")]
    with _running(command, log, settings) as running:
        yield running


@contextlib.contextmanager
def serve(log: Path, **settings):
    """``maskdetect serve`` (nginx in front of gunicorn) on 127.0.0.1 and a free port, as `make serve` runs it.

    Yields (base URL, the serve process) once /health answers through nginx; stops it afterwards.
    """
    command = [sys.executable, "-m", "maskdetect.serve"]
    with _running(command, log, settings) as running:
        yield running


def gunicorn_master(serve_pid: int):
    """The compute gunicorn's master under a `maskdetect serve` process (its children are the workers), not the fetch stage's."""
    (master,) = [child for child in psutil.Process(serve_pid).children() if "gunicorn.conf.py" in " ".join(child.cmdline())]
    return master


@contextlib.contextmanager
def _running(command: list[str], log: Path, settings: dict):
    port = int(settings.pop("PORT", 0)) or free_port()  # PORT=9696: the docs' requests, as written
    env = service_env(PORT=port, HOST="127.0.0.1", **settings)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base_url, process)
        yield base_url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request on the output
        pass


@contextlib.contextmanager
def serve_folder(folder: Path):
    """http://127.0.0.1:PORT serving the files in ``folder`` (the URLs a service fetches)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
