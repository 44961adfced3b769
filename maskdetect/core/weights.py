"""The face detector's weights: a pinned third-party file, obtained at set-up and never committed.

YuNet (OpenCV's ``cv2.FaceDetectorYN``) reads one ONNX file. Like the dataset, the project
takes it from a local copy (``MASKDETECT_DETECTOR_SOURCE=DIR``) or downloads it from the pinned
upstream commit, and checks its size and sha256 either way.

* ``find_detector_weights`` (no network): the verified file, or a WeightsError that says which
  file, what is wrong with it and how to obtain it. The detector verifies the file it loads.
* ``obtain_detector_weights`` is what ``make weights`` runs: it puts the verified file into the
  weights folder (``deployment/weights/``, git-ignored; the images copy it from there).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from .constants import PROJECT_ROOT
from .fetch import FetchError, download
from .files import atomic_path, sha256_file

DETECTOR_FILE = "face_detection_yunet_2023mar.onnx"
DEFAULT_WEIGHTS_DIR = PROJECT_ROOT / "deployment" / "weights"
DETECTOR_URL = (
    "https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/"
    "0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_640_640.onnx"
)
DETECTOR_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
DETECTOR_BYTES = 232589
DOWNLOAD_TIMEOUT = 30.0  # seconds for the connection and for each read

OBTAIN_FIX = (
    f"run `make weights` (downloads it), or set MASKDETECT_DETECTOR_SOURCE=DIR to a folder holding {DETECTOR_FILE}"
)
SOURCE_FIX = (
    f"point MASKDETECT_DETECTOR_SOURCE at a folder holding an intact {DETECTOR_FILE}, "
    "or unset it and run `make weights` to download the file"
)
OFFLINE_HINT = f"check the network, or set MASKDETECT_DETECTOR_SOURCE=DIR to a folder holding {DETECTOR_FILE}"


class WeightsError(RuntimeError):
    """The detector's weights are missing or not the pinned file; the message says what to do."""


# The service asks for the weights often; a file is hashed again only when it changes.
_digests: dict[tuple[str, int, int, int], str] = {}


def _sha256(path: Path, status: os.stat_result) -> str:
    key = (str(path.resolve()), status.st_ino, status.st_mtime_ns, status.st_size)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return _digests[key]


def _problem(path: Path) -> str | None:
    """What keeps ``path`` from being the pinned file, or None when it is (size and sha256)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return "is missing"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file"
    digest = _sha256(path, status)
    if digest != DETECTOR_SHA256 or status.st_size != DETECTOR_BYTES:
        return (
            f"is not the pinned {DETECTOR_FILE}: sha256 {digest} ({status.st_size} bytes), "
            f"expected {DETECTOR_SHA256} ({DETECTOR_BYTES} bytes)"
        )
    return None


def verify_weights(path: Path, fix: str = OBTAIN_FIX) -> Path:
    """``path`` when it is the pinned file; else WeightsError naming it, what is wrong, and ``fix``."""
    problem = _problem(Path(path))
    if problem:
        raise WeightsError(f"the face detector's weights file {path} {problem}; {fix}")
    return Path(path)


def find_detector_weights(source: Path | None = None, weights_dir: Path = DEFAULT_WEIGHTS_DIR) -> Path:
    """The verified weights file, without touching the network: ``source``'s copy, else ``weights_dir``'s."""
    if source is not None:
        return verify_weights(Path(source) / DETECTOR_FILE, SOURCE_FIX)
    return verify_weights(Path(weights_dir) / DETECTOR_FILE, OBTAIN_FIX)


def obtain_detector_weights(
    source: Path | None = None, weights_dir: Path = DEFAULT_WEIGHTS_DIR, url: str | None = None, progress: bool = True
) -> Path:
    """The verified weights in ``weights_dir``: copied from ``source``, kept, or downloaded from ``url``.

    Nothing is left in ``weights_dir`` unless it is the pinned file.
    """
    target = Path(weights_dir) / DETECTOR_FILE
    if source is not None:
        source = Path(source)
        found = verify_weights(source / DETECTOR_FILE, SOURCE_FIX)
        if _problem(target):  # the image builds copy this file
            with atomic_path(target) as partial:
                shutil.copyfile(found, partial)
                verify_weights(partial, SOURCE_FIX)
        return target
    if not _problem(target):
        return target
    url = url or DETECTOR_URL
    try:
        with atomic_path(target) as partial:  # removed unless verified
            download(url, partial, timeout=DOWNLOAD_TIMEOUT, max_bytes=4 * DETECTOR_BYTES, progress=progress, hint=OFFLINE_HINT)
            problem = _problem(partial)
            if problem:
                raise WeightsError(
                    f"the file downloaded from {url} for {target} {problem}; nothing was kept. "
                    f"Set MASKDETECT_DETECTOR_SOURCE=DIR to a folder holding an intact {DETECTOR_FILE}, "
                    "or MASKDETECT_DETECTOR_URL to a URL that serves it"
                )
    except FetchError as error:
        detail = str(error) if OFFLINE_HINT in str(error) else f"{error}; {OFFLINE_HINT}"
        raise WeightsError(f"could not download the face detector's weights file {target} from {url}: {detail}") from error
    return target
