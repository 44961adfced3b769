"""The dataset downloader against a local HTTP server."""

import pytest

from maskdetect.fetch import FetchError, download


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
