"""Fixtures: where the real data lives, isolated folders, loopback servers, the service, the network guard.

Helpers that are not fixtures live in samples.py (what tests make) and servers.py (what tests run).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from maskdetect.data.source import write_manifest
from tests.samples import SHARED, SHARED_MODELS, require, brightness_model, photo
from tests.servers import serve_folder

# The face detector's weights: the shared copy, as in CI (.ci/run), unless the environment names one.
if not os.environ.get("MASKDETECT_DETECTOR_SOURCE") and SHARED_MODELS.is_dir():
    os.environ["MASKDETECT_DETECTOR_SOURCE"] = str(SHARED_MODELS)
# The real training faces: the shared copy too, never a download.
if not os.environ.get("MASKDETECT_REALFACES_SOURCE") and (SHARED / "realfaces-train").is_dir():
    os.environ["MASKDETECT_REALFACES_SOURCE"] = str(SHARED / "realfaces-train")
if not os.environ.get("MASKDETECT_MASKWEAR_SOURCE") and (SHARED / "maskwear-train").is_dir():
    os.environ["MASKDETECT_MASKWEAR_SOURCE"] = str(SHARED / "maskwear-train")


@pytest.fixture(autouse=True)
def only_loopback_traffic(monkeypatch):
    """A safety net: the URL fetcher may connect to loopback addresses only, in every test.

    Tests that lift the address rule (MASKDETECT_ALLOW_PRIVATE_URLS) and follow a redirect
    must never reach a real private or public host.
    """
    import ipaddress

    from maskdetect.core import fetch

    open_socket = fetch._PinnedHTTPConnection._open_socket

    def loopback_only(self):
        address = ipaddress.ip_address(self.address[4][0])
        if not address.is_loopback:
            raise AssertionError(f"a test tried to connect to {address}: tests talk to 127.0.0.1 only")
        return open_socket(self)

    monkeypatch.setattr(fetch._PinnedHTTPConnection, "_open_socket", loopback_only)


@pytest.fixture(scope="session")
def observations() -> Path:
    """The real training photos (a verified copy of the upstream folder)."""
    return require(SHARED / "observations")


@pytest.fixture(scope="session")
def reference_groups() -> Path:
    return require(SHARED / "observations_groups.csv")


@pytest.fixture(scope="session")
def reference_pairs() -> Path:
    return require(SHARED / "observations_pairs.csv")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A private MASKDETECT_DATA_DIR, and no data source from the environment."""
    target = tmp_path / "data"
    monkeypatch.setenv("MASKDETECT_DATA_DIR", str(target))
    monkeypatch.delenv("MASKDETECT_DATA_SOURCE", raising=False)
    monkeypatch.delenv("MASKDETECT_DATA_URL", raising=False)
    monkeypatch.setenv("MASKDETECT_REALFACES_SOURCE", str(SHARED / "realfaces-train"))  # never the network
    monkeypatch.delenv("MASKDETECT_REALFACES_URL", raising=False)
    monkeypatch.setenv("MASKDETECT_MASKWEAR_SOURCE", str(SHARED / "maskwear-train"))
    monkeypatch.delenv("MASKDETECT_MASKWEAR_URL", raising=False)
    return target


@pytest.fixture
def tiny_source(tmp_path):
    """A small source folder (with_mask/, without_mask/) and its manifest entries."""


    source = tmp_path / "source"
    for label, seeds in (("with_mask", range(6)), ("without_mask", range(100, 106))):
        (source / label).mkdir(parents=True)
        for seed in seeds:
            photo(seed).save(source / label / f"{seed}.jpg", quality=90)
    manifest = write_manifest(source, tmp_path / "manifest.csv")
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


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """The three-class brightness model as tmp/.../maskdetect.h5 (no metrics.json beside it): white
    answers with_mask, black without_mask, mid grey incorrect (samples.brightness_model)."""
    return brightness_model(tmp_path_factory.mktemp("model") / "maskdetect.h5")


@pytest.fixture(scope="session")
def two_class_model_file(tmp_path_factory) -> Path:
    """A model as trained before the three labels: one sigmoid unit, p(with_mask) growing with brightness."""
    return brightness_model(tmp_path_factory.mktemp("two-class-model") / "maskdetect.h5", classes=2)


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

    from maskdetect.core import fetch

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


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1000,1100",
)


@pytest.fixture
def browser(chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def live_app(app):
    """The test app on 127.0.0.1 (one process: lighter than the gunicorn of test_deployment)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
