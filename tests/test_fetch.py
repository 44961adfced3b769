"""The dataset downloader against a local HTTP server."""

import pytest

from maskdetect.core.fetch import FetchError, download


def test_download_writes_the_whole_body(http_server, tmp_path):
    body = bytes(range(256)) * 1000
    http_server["/archive.tar.gz"] = (200, body)
    path = download(f"{http_server.base_url}/archive.tar.gz", tmp_path / "a.tar.gz", progress=False)
    assert path.read_bytes() == body
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_http_error_names_the_status_and_leaves_nothing(http_server, tmp_path):
    with pytest.raises(FetchError, match="404"):
        download(f"{http_server.base_url}/missing", tmp_path / "a", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_body_is_an_error_and_leaves_nothing(http_server, tmp_path):
    http_server["/short"] = (200, b"x" * 1000, 5000)  # promises more than it sends
    with pytest.raises(FetchError):
        download(f"{http_server.base_url}/short", tmp_path / "a", progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_size_cap_is_enforced(http_server, tmp_path):
    http_server["/big"] = (200, b"x" * 10_000)
    with pytest.raises(FetchError, match="cap"):
        download(f"{http_server.base_url}/big", tmp_path / "a", progress=False, max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_says_how_to_work_offline(tmp_path):
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(FetchError, match="--source"):
        download("http://127.0.0.1:9/x", tmp_path / "a", progress=False, timeout=2)


# ---------------------------------------------------------------------------- fetch_bytes: SSRF rules
# Refusals of non-local addresses are checked with resolution mocked and connecting
# forbidden: no test sends traffic anywhere but 127.0.0.1.

import ipaddress  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from maskdetect.core import fetch  # noqa: E402
from maskdetect.core.fetch import BodyTooLarge, FetchTimeout, HostRefused, Limits, URLRefused, fetch_bytes  # noqa: E402


@pytest.fixture
def no_network(monkeypatch):
    """Resolution answers from a table; any connection attempt fails the test."""
    table: dict[str, list[str]] = {}
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))
            for a in table[host]
        ]

    def refuse_to_connect(self):
        raise AssertionError(f"tried to connect to {self.address[4]}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(fetch._PinnedHTTPConnection, "_open_socket", refuse_to_connect)
    return table, calls


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "example.com/a.jpg",
        "//example.com/a.jpg",
        "",
        "   ",
        "http://",
        "http:///a.jpg",
        "http://user:secret@example.com/a.jpg",
        "http://example.com@127.0.0.1/",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://example.com/a\r\nHost: evil",
        "http://ex%61mple.com/",
    ],
)
def test_urls_of_the_wrong_form_are_refused_before_any_lookup(url, no_network):
    _, calls = no_network
    with pytest.raises(URLRefused):
        fetch_bytes(url)
    assert calls == []


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://127.255.255.254:8080/x", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 form of the metadata address
        ("http://[2002:a9fe:a9fe::]/", "link-local"),  # 6to4 form of the metadata address
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://100.64.0.1/", "not globally routable"),  # carrier-grade NAT
        ("https://192.168.0.10:8443/cam.jpg", "private"),
    ],
)
def test_address_literals_in_every_notation_are_refused_without_resolving(url, problem, no_network):
    _, calls = no_network
    with pytest.raises(HostRefused) as refused:
        fetch_bytes(url)
    assert problem in refused.value.detail and str(refused.value) == HostRefused.MESSAGE
    assert calls == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["10.1.2.3"],
        ["::1"],
        ["::ffff:10.0.0.1"],
        ["fe80::abcd"],
        ["93.184.215.14", "127.0.0.1"],  # one bad address refuses the host: the client might pick it
        ["2606:4700::1111", "fd00::1"],
    ],
)
def test_host_names_resolving_to_a_non_public_address_are_refused(addresses, no_network):
    table, calls = no_network
    table["images.example"] = addresses
    with pytest.raises(HostRefused) as refused:
        fetch_bytes("https://images.example/face.jpg")
    assert str(refused.value) == HostRefused.MESSAGE and not any(a in str(refused.value) for a in addresses)
    assert "images.example resolves to" in refused.value.detail
    assert calls == ["images.example"]


def test_a_public_host_is_connected_to_at_the_checked_address(no_network, monkeypatch):
    table, calls = no_network
    table["images.example"] = ["93.184.215.14"]
    tried = []

    def record(self):
        tried.append(self.address[4])
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(fetch._PinnedHTTPConnection, "_open_socket", record)
    with pytest.raises(fetch.FetchError, match="could not connect") as refused:
        fetch_bytes("http://images.example:8080/face.jpg")
    assert not isinstance(refused.value, URLRefused)
    assert tried == [("93.184.215.14", 8080)]
    assert calls == ["images.example"]


def test_an_unknown_host_is_refused_with_the_message_of_a_private_one(no_network):
    table, _ = no_network
    table["internal.example"] = ["10.0.0.7"]
    with pytest.raises(HostRefused) as unknown:
        fetch_bytes("http://no-such-host.example/")
    with pytest.raises(HostRefused) as private:
        fetch_bytes("http://internal.example/")
    assert str(unknown.value) == str(private.value) == HostRefused.MESSAGE
    assert "no-such-host.example does not resolve" in unknown.value.detail
    assert "internal.example resolves to 10.0.0.7" in private.value.detail


def test_the_refused_host_s_detail_is_kept_apart_from_its_message(no_network):
    table, _ = no_network
    table["db.default.svc.cluster.local"] = ["10.96.0.12"]
    with pytest.raises(HostRefused) as refused:
        fetch_bytes("http://db.default.svc.cluster.local:5432/")
    assert "10.96.0.12" not in str(refused.value) and "cluster.local" not in str(refused.value)
    assert refused.value.detail == "db.default.svc.cluster.local resolves to 10.96.0.12, which is a private address"


def test_with_private_urls_allowed_an_unknown_host_is_a_fetch_error_that_names_it(no_network):
    with pytest.raises(fetch.FetchError, match="no-such-host.example does not resolve") as error:
        fetch_bytes("http://no-such-host.example/", allow_private=True)
    assert not isinstance(error.value, URLRefused)


def test_slow_dns_meets_the_deadline(no_network, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(3))
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match="looking up"):
        fetch_bytes("http://slow-dns.example/", limits=Limits(total_timeout=0.5))
    assert time.monotonic() - started < 2


def test_connect_timeout_is_a_timeout(no_network, monkeypatch):
    table, _ = no_network
    table["images.example"] = ["93.184.215.14"]

    def hang(self):
        assert self.timeout == pytest.approx(0.7)
        raise socket.timeout("timed out")

    monkeypatch.setattr(fetch._PinnedHTTPConnection, "_open_socket", hang)
    with pytest.raises(FetchTimeout, match="no answer"):
        fetch_bytes("http://images.example/", limits=Limits(connect_timeout=0.7))


@pytest.mark.parametrize(
    "address, problem",
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("192.0.2.1", "private"),  # documentation range
        ("198.18.0.1", "private"),  # benchmarking range
        ("2001:db8::1", "private"),
    ],
)
def test_address_rule(address, problem):
    found = fetch.address_problem(ipaddress.ip_address(address))
    assert found == problem if problem is None else problem in found


# ---------------------------------------------------------------------------- against 127.0.0.1


def test_the_loopback_server_is_refused_unless_allowed(http_server):
    http_server["/a.jpg"] = (200, b"jpeg bytes")
    with pytest.raises(HostRefused) as refused:
        fetch_bytes(f"{http_server.base_url}/a.jpg")
    assert "loopback" in refused.value.detail
    assert http_server.requests == []
    assert fetch_bytes(f"{http_server.base_url}/a.jpg", allow_private=True) == b"jpeg bytes"


def test_the_host_name_is_resolved_once_and_kept_in_the_host_header(http_server, monkeypatch):
    calls = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        calls.append(host)
        return real("127.0.0.1", *args, **kwargs) if host == "images.test" else real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    http_server["/a.jpg"] = (200, b"jpeg bytes")
    assert fetch_bytes(f"http://images.test:{http_server.port}/a.jpg", allow_private=True) == b"jpeg bytes"
    assert calls == ["images.test"]  # http.client did not look the name up again
    assert http_server.requests[0][1]["Host"] == f"images.test:{http_server.port}"


def test_up_to_three_redirects_are_followed(http_server):
    http_server["/1"] = (302, b"", 0, {"Location": "/2"})
    http_server["/2"] = (301, b"", 0, {"Location": f"{http_server.base_url}/3"})
    http_server["/3"] = (307, b"", 0, {"Location": "img?x=1"})
    http_server["/img?x=1"] = (200, b"image")
    assert fetch_bytes(f"{http_server.base_url}/1", allow_private=True) == b"image"
    http_server["/0"] = (308, b"", 0, {"Location": "/1"})
    with pytest.raises(fetch.FetchError, match="more than 3"):
        fetch_bytes(f"{http_server.base_url}/0", allow_private=True)


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://10.0.0.1/", "file:///etc/passwd", "http://0x7f.1/"],
)
def test_every_redirect_is_checked_again(location, http_server, monkeypatch):
    """The first hop goes to 127.0.0.1 treated as public; its redirect must still be refused."""
    real = fetch.address_problem
    monkeypatch.setattr(
        fetch, "address_problem", lambda a: None if a == ipaddress.ip_address("127.0.0.1") and not seen else real(a)
    )
    seen = []
    http_server["/start"] = (302, b"", 0, {"Location": location})
    original = fetch._PinnedHTTPConnection._open_socket

    def connect_once(self):
        seen.append(self.address[4])
        return original(self)

    monkeypatch.setattr(fetch._PinnedHTTPConnection, "_open_socket", connect_once)
    with pytest.raises(URLRefused):
        fetch_bytes(f"{http_server.base_url}/start")
    assert seen == [("127.0.0.1", http_server.port)]


def test_http_errors_name_the_status(http_server):
    with pytest.raises(fetch.FetchError, match="HTTP 404") as error:
        fetch_bytes(f"{http_server.base_url}/missing.jpg", allow_private=True)
    assert not isinstance(error.value, (URLRefused, FetchTimeout))


def test_a_declared_length_over_the_cap_is_refused_before_reading(http_server):
    http_server["/big"] = (200, b"x" * 2000)
    with pytest.raises(BodyTooLarge, match="2000 bytes"):
        fetch_bytes(f"{http_server.base_url}/big", limits=Limits(max_bytes=1000), allow_private=True)


def test_the_cap_is_enforced_while_streaming(http_server):
    def endless(write):  # no Content-Length; would take 5 s to finish
        for _ in range(500):
            write(b"x" * 65536)
            time.sleep(0.01)

    http_server["/stream"] = (200, endless, None)
    started = time.monotonic()
    with pytest.raises(BodyTooLarge, match="more than the 200000-byte cap"):
        fetch_bytes(f"{http_server.base_url}/stream", limits=Limits(max_bytes=200_000), allow_private=True)
    assert time.monotonic() - started < 2


def test_a_silent_server_times_out(http_server):
    http_server["/silent"] = (200, lambda write: time.sleep(3), 100)
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        fetch_bytes(f"{http_server.base_url}/silent", limits=Limits(read_timeout=0.5, total_timeout=5), allow_private=True)
    assert time.monotonic() - started < 2


def test_a_trickling_server_meets_the_total_deadline(http_server):
    def trickle(write):  # one byte every 0.1 s: each read is quick, the whole is not
        for _ in range(60):
            write(b"x")
            time.sleep(0.1)

    http_server["/trickle"] = (200, trickle, 60)
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        fetch_bytes(f"{http_server.base_url}/trickle", limits=Limits(read_timeout=1, total_timeout=1), allow_private=True)
    assert time.monotonic() - started < 2.5


def test_a_body_cut_short_is_an_error(http_server):
    http_server["/short"] = (200, b"x" * 10, 500)
    with pytest.raises(fetch.FetchError, match="10 of 500"):
        fetch_bytes(f"{http_server.base_url}/short", allow_private=True)


def test_https_to_a_plain_http_server_fails_cleanly(http_server):
    with pytest.raises(fetch.FetchError, match="TLS|failed"):
        fetch_bytes(f"https://127.0.0.1:{http_server.port}/a.jpg", allow_private=True)


def test_refused_connection_is_a_fetch_error():
    with pytest.raises(fetch.FetchError, match="could not connect"):
        fetch_bytes("http://127.0.0.1:9/a.jpg", allow_private=True)
