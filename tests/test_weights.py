"""Obtaining the face detector's weights: a local HTTP server stands in for GitHub."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.samples import SHARED_MODELS, require
from tests.samples import dockerfile_instructions
from tests.servers import free_port
from maskdetect import cli
from maskdetect.settings import Settings
from maskdetect.core import weights
from maskdetect.core.weights import (
    DETECTOR_FILE,
    DETECTOR_SHA256,
    WeightsError,
    find_detector_weights,
    obtain_detector_weights,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pinned_bytes() -> bytes:
    """The real YuNet file, from the shared copy."""
    return require(SHARED_MODELS / DETECTOR_FILE).read_bytes()


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """A private MASKDETECT_WEIGHTS_DIR, with no source and no URL from the environment."""
    target = tmp_path / "weights"
    monkeypatch.setenv("MASKDETECT_WEIGHTS_DIR", str(target))
    monkeypatch.delenv("MASKDETECT_DETECTOR_SOURCE", raising=False)
    monkeypatch.delenv("MASKDETECT_DETECTOR_URL", raising=False)
    return target


def obtain(url: str | None = None) -> Path:
    """`make weights` as the CLI runs it, with the settings of the environment."""
    settings = Settings.from_env()
    return obtain_detector_weights(settings.detector_source, settings.weights_dir, url or settings.detector_url, progress=False)


def find() -> Path:
    settings = Settings.from_env()
    return find_detector_weights(settings.detector_source, settings.weights_dir)


def source_folder(folder: Path, body: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / DETECTOR_FILE).write_bytes(body)
    return folder


def nothing_in(folder: Path) -> bool:
    return not folder.exists() or list(folder.iterdir()) == []


def altered(body: bytes) -> bytes:
    """The same length, one byte different."""
    return body[:-1] + bytes([body[-1] ^ 0xFF])


def test_the_pinned_file_is_downloaded_verified_and_kept(http_server, weights_dir, monkeypatch, pinned_bytes):
    http_server["/yunet.onnx"] = (200, pinned_bytes)
    monkeypatch.setenv("MASKDETECT_DETECTOR_URL", f"{http_server.base_url}/yunet.onnx")
    path = obtain()
    assert path == weights_dir / DETECTOR_FILE
    assert path.read_bytes() == pinned_bytes
    assert find() == path
    assert obtain() == path
    assert len(http_server.requests) == 1, "a verified file is kept, not downloaded again"
    assert [p.name for p in weights_dir.iterdir()] == [DETECTOR_FILE]


def test_a_body_with_another_sha256_is_refused_and_leaves_nothing(http_server, weights_dir, pinned_bytes):
    wrong = altered(pinned_bytes)
    http_server["/yunet.onnx"] = (200, wrong)
    with pytest.raises(WeightsError) as raised:
        obtain(f"{http_server.base_url}/yunet.onnx")
    message = str(raised.value)
    assert hashlib.sha256(wrong).hexdigest() in message and DETECTOR_SHA256 in message
    assert "nothing was kept" in message and "MASKDETECT_DETECTOR_SOURCE" in message
    assert nothing_in(weights_dir)


def test_a_truncated_download_leaves_nothing(http_server, weights_dir, pinned_bytes):
    http_server["/yunet.onnx"] = (200, pinned_bytes[:1000], len(pinned_bytes))  # promises more, then closes
    with pytest.raises(WeightsError, match=f"ended after 1000 of {len(pinned_bytes)} bytes"):
        obtain(f"{http_server.base_url}/yunet.onnx")
    assert nothing_in(weights_dir)


def test_a_refused_connection_says_to_check_the_network_or_use_a_local_copy(weights_dir, monkeypatch):
    monkeypatch.setenv("MASKDETECT_DETECTOR_URL", f"http://127.0.0.1:{free_port()}/yunet.onnx")  # nothing listens
    with pytest.raises(WeightsError) as raised:
        obtain()
    message = str(raised.value)
    assert "could not connect" in message and "check the network" in message
    assert f"MASKDETECT_DETECTOR_SOURCE=DIR to a folder holding {DETECTOR_FILE}" in message
    assert "--source" not in message, "the dataset's hint does not apply to the weights"
    assert nothing_in(weights_dir)


def test_a_source_copy_is_verified_and_copied_without_the_network(weights_dir, tmp_path, monkeypatch, pinned_bytes):
    source = source_folder(tmp_path / "models", pinned_bytes)
    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(source))

    def no_download(*args, **kwargs):
        raise AssertionError("a source copy was given: nothing may be downloaded")

    monkeypatch.setattr(weights, "download", no_download)
    assert find() == source / DETECTOR_FILE
    path = obtain()
    assert path == weights_dir / DETECTOR_FILE and path.read_bytes() == pinned_bytes


def test_a_wrong_source_file_is_refused_by_name(weights_dir, tmp_path, monkeypatch, pinned_bytes):
    source = source_folder(tmp_path / "models", altered(pinned_bytes))
    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(source))
    for attempt in (find, obtain):
        with pytest.raises(WeightsError) as raised:
            attempt()
        message = str(raised.value)
        assert str(source / DETECTOR_FILE) in message and DETECTOR_SHA256 in message
        assert "MASKDETECT_DETECTOR_SOURCE" in message
    assert nothing_in(weights_dir)


def test_missing_weights_name_the_file_and_make_weights(weights_dir):
    with pytest.raises(WeightsError) as raised:
        find()
    message = str(raised.value)
    assert f"{weights_dir / DETECTOR_FILE} is missing" in message
    assert "make weights" in message and "MASKDETECT_DETECTOR_SOURCE" in message


def test_an_altered_file_in_the_weights_folder_is_reported_then_downloaded_again(http_server, weights_dir, pinned_bytes):
    weights_dir.mkdir()
    (weights_dir / DETECTOR_FILE).write_bytes(b"not an onnx file")
    with pytest.raises(WeightsError, match=f"sha256 {hashlib.sha256(b'not an onnx file').hexdigest()}"):
        find()
    http_server["/yunet.onnx"] = (200, pinned_bytes)
    path = obtain(f"{http_server.base_url}/yunet.onnx")
    assert path.read_bytes() == pinned_bytes and find() == path


def test_a_file_is_hashed_once_until_it_changes(weights_dir, tmp_path, monkeypatch, pinned_bytes):
    source = source_folder(tmp_path / "models", pinned_bytes)
    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(source))
    hashed = []
    sha256_file = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda path: hashed.append(1) or sha256_file(path))
    for _ in range(3):
        find()
    assert len(hashed) == 1
    changed = source / DETECTOR_FILE
    before = changed.stat().st_mtime_ns
    changed.write_bytes(altered(pinned_bytes))  # same size, another file...
    os.utime(changed, ns=(before + 10**9, before + 10**9))  # ...written later
    with pytest.raises(WeightsError, match="is not the pinned"):
        find()


def test_the_weights_command_prints_the_path(weights_dir, tmp_path, monkeypatch, capsys, pinned_bytes):
    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(source_folder(tmp_path / "models", pinned_bytes)))
    assert cli.main(["weights", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(weights_dir / DETECTOR_FILE)


def test_the_weights_command_fails_with_the_message_on_a_bad_source(weights_dir, tmp_path, monkeypatch, capsys):
    source = source_folder(tmp_path / "models", b"truncated")
    monkeypatch.setenv("MASKDETECT_DETECTOR_SOURCE", str(source))
    assert cli.main(["weights", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("maskdetect: error: ") and str(source / DETECTOR_FILE) in captured.err


def test_the_weights_folder_is_never_committed():
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", f"deployment/weights/{DETECTOR_FILE}"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deployment/weights/ must be in .gitignore"


def test_both_images_ship_the_weights_where_the_package_looks():
    # weights_dir() defaults to deployment/weights/ beside the package: both are copied under WORKDIR.
    copies = [rest.split() for keyword, rest in dockerfile_instructions(ROOT / "Dockerfile") if keyword == "COPY"]
    assert ["maskdetect/", "maskdetect/"] in copies
    assert [f"deployment/weights/{DETECTOR_FILE}", "deployment/weights/"] in copies
    aws = dockerfile_instructions(ROOT / "deployment" / "aws" / "Dockerfile")
    assert ("COPY", f"deployment/weights/{DETECTOR_FILE} ${{LAMBDA_TASK_ROOT}}/deployment/weights/") in aws
    assert ("ENV", "MASKDETECT_WEIGHTS_DIR=${LAMBDA_TASK_ROOT}/deployment/weights") in aws


def test_the_image_build_asks_for_make_weights_when_the_file_is_missing(tmp_path):
    for name in ("maskdetect/service/__init__.py", "deployment/gunicorn.conf.py", "deployment/gunicorn-fetch.conf.py", "deployment/maskdetect.h5",
                 "deployment/maskdetect.tflite", "deployment/metrics.json", "deployment/docker/requirements.txt",
                 "deployment/docker/requirements-keras.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    script = 'source deployment/docker/build.sh && PROJECT_ROOT="$1" && check_build_inputs'
    missing = subprocess.run(["bash", "-c", script, "build.sh", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode != 0
    assert f"deployment/weights/{DETECTOR_FILE}" in missing.stderr and "make weights" in missing.stderr
    (tmp_path / "deployment" / "weights").mkdir()
    (tmp_path / "deployment" / "weights" / DETECTOR_FILE).write_text("")
    present = subprocess.run(["bash", "-c", script, "build.sh", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert present.returncode == 0, present.stderr
