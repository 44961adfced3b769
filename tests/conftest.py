"""Shared fixtures: where the real data lives, and an isolated data folder per test."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdetect import config

SHARED = Path(os.environ.get("MASKDETECT_SHARED_DATA", config.PROJECT_ROOT.parent / "shared" / "data"))

# The face detector's weights: the shared copy, as in CI (.ci/run), unless the environment names one.
SHARED_MODELS = config.PROJECT_ROOT.parent / "shared" / "models"
if not os.environ.get("MASKDETECT_DETECTOR_SOURCE") and SHARED_MODELS.is_dir():
    os.environ["MASKDETECT_DETECTOR_SOURCE"] = str(SHARED_MODELS)
# The real training faces: the shared copy too, never a download.
if not os.environ.get("MASKDETECT_REALFACES_SOURCE") and (SHARED / "realfaces-train").is_dir():
    os.environ["MASKDETECT_REALFACES_SOURCE"] = str(SHARED / "realfaces-train")


@pytest.fixture(autouse=True)
def only_loopback_traffic(monkeypatch):
    """A safety net: the URL fetcher may connect to loopback addresses only, in every test.

    Tests that lift the address rule (MASKDETECT_ALLOW_PRIVATE_URLS) and follow a redirect
    must never reach a real private or public host.
    """
    import ipaddress

    from maskdetect import fetch

    open_socket = fetch._PinnedHTTPConnection._open_socket

    def loopback_only(self):
        address = ipaddress.ip_address(self.address[4][0])
        if not address.is_loopback:
            raise AssertionError(f"a test tried to connect to {address}: tests talk to 127.0.0.1 only")
        return open_socket(self)

    monkeypatch.setattr(fetch._PinnedHTTPConnection, "_open_socket", loopback_only)


def _require(path: Path) -> Path:
    """Real-data tests never skip in CI; elsewhere they say what is missing."""
    if not path.exists():
        message = f"{path} is missing: set MASKDETECT_SHARED_DATA to the folder with the shared data"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def observations() -> Path:
    """The real training photos (a verified copy of the upstream folder)."""
    return _require(SHARED / "observations")


@pytest.fixture(scope="session")
def reference_groups() -> Path:
    return _require(SHARED / "observations_groups.csv")


@pytest.fixture(scope="session")
def reference_pairs() -> Path:
    return _require(SHARED / "observations_pairs.csv")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A private MASKDETECT_DATA_DIR, and no data source from the environment."""
    target = tmp_path / "data"
    monkeypatch.setenv("MASKDETECT_DATA_DIR", str(target))
    monkeypatch.delenv("MASKDETECT_DATA_SOURCE", raising=False)
    monkeypatch.delenv("MASKDETECT_DATA_URL", raising=False)
    monkeypatch.setenv("MASKDETECT_REALFACES_SOURCE", str(SHARED / "realfaces-train"))  # never the network
    monkeypatch.delenv("MASKDETECT_REALFACES_URL", raising=False)
    return target


def photo(seed: int, size=(120, 160)) -> Image.Image:
    """A synthetic 'photo': smooth background and random ellipses and bars, seeded."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * rng.uniform(0.5, 2) + y * rng.uniform(0.5, 2)) % 255 for _ in range(3)], -1)
    image = base.astype(np.uint8)
    for _ in range(12):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        rx, ry = rng.integers(5, width // 3), rng.integers(5, height // 3)
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        image[inside] = rng.integers(0, 256, 3)
    return Image.fromarray(image)


@pytest.fixture
def tiny_source(tmp_path):
    """A small source folder (with_mask/, without_mask/) and its manifest entries."""
    from maskdetect import data

    source = tmp_path / "source"
    for label, seeds in (("with_mask", range(6)), ("without_mask", range(100, 106))):
        (source / label).mkdir(parents=True)
        for seed in seeds:
            photo(seed).save(source / label / f"{seed}.jpg", quality=90)
    manifest = data.write_manifest(source, tmp_path / "manifest.csv")
    return source, manifest


class _Routes(dict):
    """path -> (status, body[, declared_length[, headers]]); ``requests`` records what arrived."""


@pytest.fixture
def http_server():
    """A server on 127.0.0.1 that answers the routes a test sets.

    ``routes[path] = (status, body[, length[, headers]])`` (path ``"*"``: every other path): ``body`` is bytes, or a function
    that gets ``write(bytes)`` and streams (slowly, endlessly...); ``length`` None sends no
    Content-Length (the body then ends when the connection closes); ``headers`` is a dict.
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    routes = _Routes()
    routes.requests = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            routes.requests.append((self.path, dict(self.headers)))
            status, body, *rest = routes.get(self.path) or routes.get("*", (404, b"not found"))
            length = rest[0] if rest else (len(body) if isinstance(body, bytes) else None)
            headers = rest[1] if len(rest) > 1 else {}
            try:
                self.send_response(status)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if callable(body):
                    body(self.wfile.write)
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    routes.port = server.server_address[1]
    routes.base_url = f"http://127.0.0.1:{routes.port}"
    yield routes
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------- the service


def brightness_model(path: Path) -> Path:
    """A tiny Keras model saved like the deployment one: p(with_mask) grows with brightness.

    Input (None, 100, 100, 3) in [0, 1], one sigmoid unit named with_mask; a white image
    answers with_mask (p ~ 1), a black one without_mask (p ~ 0), so tests can check that
    the right pixels reach the model and the right label comes back.
    """
    import keras

    inputs = keras.Input((100, 100, 3), name="image")
    mean = keras.layers.GlobalAveragePooling2D(name="mean")(inputs)
    output = keras.layers.Dense(1, activation="sigmoid", name="with_mask")(mean)
    model = keras.Model(inputs, output, name="brightness")
    model.get_layer("with_mask").set_weights([np.full((3, 1), 8.0, np.float32), np.array([-12.0], np.float32)])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path, include_optimizer=False)
    return path


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """The brightness model as tmp/.../maskdetect.h5 (no metrics.json beside it)."""
    return brightness_model(tmp_path_factory.mktemp("model") / "maskdetect.h5")


@pytest.fixture(scope="module")
def app(model_file):
    """The service with the brightness model and the default (production) settings.

    One per test module: each app loads and warms up its model (a fraction of a second).
    """
    from maskdetect.service import create_app

    return create_app({"TESTING": True, "MODEL_PATH": str(model_file), "ALLOW_PRIVATE_URLS": False})


@pytest.fixture
def client(app):
    return app.test_client()


def encode(image: Image.Image, format: str = "JPEG", **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- gunicorn


@contextlib.contextmanager
def serve_folder(folder: Path):
    """http://127.0.0.1:PORT serving the files in ``folder`` (the URLs a service fetches)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A folder of images (and one text file) for services to fetch by URL."""
    folder = tmp_path_factory.mktemp("images")
    Image.new("RGB", (60, 80), "white").save(folder / "white.png")
    Image.new("RGB", (60, 80), "black").save(folder / "black.jpg")
    photo(11, (240, 320)).save(folder / "photo.jpg", quality=90)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def image_site(images):
    """http://127.0.0.1:PORT/ serving the images folder (the URLs a service fetches)."""
    with serve_folder(images) as base_url:
        yield base_url


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    import re

    text = re.sub(r"\\\n", " ", path.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(**settings) -> dict:
    """The environment of a child process: this checkout's package first."""
    env = {key: value for key, value in os.environ.items() if key not in ("MODEL_PATH", "HOST", "PORT", "WORKERS")}
    env["PYTHONPATH"] = os.pathsep.join([str(config.PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({key: str(value) for key, value in settings.items()})
    return env


def wait_for_health(base_url: str, process, seconds: float = 90) -> dict:
    import time

    import requests

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
        time.sleep(0.2)
    raise AssertionError(f"no /health answer from {base_url} within {seconds} s")


@contextlib.contextmanager
def gunicorn(log: Path, **settings):
    """``gunicorn -c deployment/gunicorn.conf.py`` on 127.0.0.1 and a free port, as people run it.

    ``settings`` become environment variables (MODEL_PATH, WORKERS...); yields (base URL, the
    master process) once /health answers, and stops gunicorn afterwards. Output goes to ``log``.
    """
    import sys

    command = [sys.executable, "-m", "gunicorn", "-c", str(config.PROJECT_ROOT / "deployment" / "gunicorn.conf.py")]
    with _running(command, log, settings) as running:
        yield running


@contextlib.contextmanager
def serve(log: Path, **settings):
    """``maskdetect serve`` (nginx in front of gunicorn) on 127.0.0.1 and a free port, as `make serve` runs it.

    Yields (base URL, the serve process) once /health answers through nginx; stops it afterwards.
    """
    import sys

    command = [sys.executable, "-m", "maskdetect.serve"]
    with _running(command, log, settings) as running:
        yield running


def gunicorn_master(serve_pid: int):
    """The gunicorn master under a `maskdetect serve` process (its children are the workers)."""
    import psutil

    (master,) = [child for child in psutil.Process(serve_pid).children() if "gunicorn" in " ".join(child.cmdline())]
    return master


@contextlib.contextmanager
def _running(command: list[str], log: Path, settings: dict):
    import subprocess

    port = free_port()
    env = service_env(PORT=port, HOST="127.0.0.1", **settings)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=config.PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
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


# ---------------------------------------------------------------------------- a network that stays here


class OfflineNetwork:
    """What :func:`offline_network` saw: the names looked up and the connections refused."""

    def __init__(self):
        self.names_resolve_to: str | None = None
        self.every_host_is: int | None = None  # the port of a server on 127.0.0.1
        self.lookups: list[str] = []
        self.refused: list[str] = []

    @property
    def attempts(self) -> int:
        return len(self.lookups) + len(self.refused)


@pytest.fixture
def offline_network(monkeypatch) -> OfflineNetwork:
    """The URL fetcher on a machine without a network, for tests that feed it generated URLs.

    Name resolution never leaves the machine: numeric hosts resolve to themselves, ``localhost``
    to 127.0.0.1, and every other name fails as an unknown host does, or, with
    ``names_resolve_to = ADDRESS``, resolves to that address. Connections to anything but
    loopback are refused at once (ECONNREFUSED), where the guard above would fail the request
    with an AssertionError: a generated URL with a public address literal answers like an
    unreachable host (502), not like a fault of the service.

    With ``every_host_is = PORT`` the network is instead one where every address answers: each
    connection the fetcher opens, to any address and port, reaches 127.0.0.1:PORT. TLS is not
    simulated: https:// URLs are served in clear by the same server (test_fetch.py checks TLS).
    """
    import errno
    import ipaddress
    import socket

    from maskdetect import fetch

    network = OfflineNetwork()
    numeric = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        network.lookups.append(str(host))
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.lower().rstrip(".") == "localhost":
            name = "127.0.0.1"
        try:
            return numeric(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            if network.names_resolve_to is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (offline test network)") from None
            return numeric(network.names_resolve_to, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    open_socket = fetch._PinnedHTTPConnection._open_socket  # the loopback guard above

    def refuse_but_loopback(self):
        if network.every_host_is is not None:
            self.address = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", network.every_host_is))
        address = ipaddress.ip_address(self.address[4][0])
        if not address.is_loopback:
            network.refused.append(str(address))
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused (offline test network)")
        return open_socket(self)

    def in_clear(self):
        if network.every_host_is is None:
            return tls_connect(self)
        self.sock = self._open_socket()

    tls_connect = fetch._PinnedHTTPSConnection.connect
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(fetch._PinnedHTTPConnection, "_open_socket", refuse_but_loopback)
    monkeypatch.setattr(fetch._PinnedHTTPSConnection, "connect", in_clear)
    return network


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's headless Chromium and its driver; CI installs them (.ci/run) and never skips."""
    import shutil

    found = [shutil.which(name) for name in ("chromium", "chromedriver")]
    if not all(found):
        message = "chromium and chromedriver are missing: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(found[0])
