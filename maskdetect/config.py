"""The one place for settings: paths, the dataset's origin, split parameters.

Paths default to the project checkout (the package is installed editable) and can be
moved with environment variables, so tests and CI never touch the working tree.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CLASSES = ("with_mask", "without_mask")
THRESHOLD = 0.5  # p(with_mask) at or above it means "with_mask"
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}

# The public dataset the project is built on, pinned to one commit.
SOURCE_REPOSITORY = "prajnasb/observations"
SOURCE_COMMIT = "cdcf4501bf7fdec7ac8a4ee245e343b187fa53c7"
SOURCE_FOLDER = "experiements/data"  # upstream spelling
SOURCE_ARCHIVE_URL = (
    f"https://codeload.github.com/{SOURCE_REPOSITORY}/tar.gz/{SOURCE_COMMIT}"
)

# Seeds: one per random decision, so changing one never reshuffles another.
GROUP_SPLIT_SEED = 20201125
FILE_SPLIT_SEED = 42


def data_dir() -> Path:
    """Where the split files, the manifest and the materialised images live."""
    return Path(os.environ.get("MASKDETECT_DATA_DIR", PROJECT_ROOT / "data"))


def manifest_path() -> Path:
    return PROJECT_ROOT / "data" / "manifest.csv"


def splits_path() -> Path:
    return PROJECT_ROOT / "data" / "splits.csv"


def faces_path() -> Path:
    return PROJECT_ROOT / "data" / "faces.csv"


def data_source_from_env() -> Path | None:
    value = os.environ.get("MASKDETECT_DATA_SOURCE")
    return Path(value) if value else None


def deployment_dir() -> Path:
    """Where the deployment model and its metrics are written."""
    return Path(os.environ.get("MASKDETECT_DEPLOYMENT_DIR", PROJECT_ROOT / "deployment"))


def realworld_dir() -> Path | None:
    """The real-photo dev set (with_mask/, without_mask/), when there is one."""
    value = os.environ.get("MASKDETECT_REALWORLD_DIR")
    if value:
        return Path(value)
    default = PROJECT_ROOT.parent / "shared" / "data" / "realworld-dev"
    return default if default.is_dir() else None


# ---------------------------------------------------------------------------- serving
# The prediction service, the `maskdetect predict` command and the notebooks read these.

MODEL_FILE = "maskdetect.h5"
METRICS_FILE = "metrics.json"

DEFAULT_PORT = 9696
DEFAULT_HOST = "127.0.0.1"  # `make serve` stays on this machine; the container sets HOST=0.0.0.0

# Limits on what a caller can make the service read. An upload or a fetched URL body over
# MAX_IMAGE_BYTES is refused while it streams in; an image whose header declares more than
# MAX_IMAGE_PIXELS is refused before its pixels are decoded (decompression bombs).
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: 2.5x the largest training photo, 120 MB once decoded
URL_CONNECT_TIMEOUT = 3.0  # seconds to open the connection
URL_TOTAL_TIMEOUT = 10.0  # seconds for the whole fetch: DNS, redirects and body
URL_MAX_REDIRECTS = 3


# Reliability (`maskdetect serve`: nginx in front of gunicorn, documentation/local_service.md).
# A client must send its headers, and each part of its body, within CLIENT_TIMEOUT_S seconds, and
# read the answer as fast; nginx holds it meanwhile, not a gunicorn worker. A request that waited
# for a worker longer than QUEUE_BUDGET_S is answered 503 with Retry-After at once (load shedding).
CLIENT_TIMEOUT_S = 10.0
QUEUE_BUDGET_S = 1.0
RETRY_AFTER_S = 1  # what a shed request is told to wait


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name}={value!r} is not a number of seconds over 0; unset it for the default {default:g}")
    return seconds


def client_timeout_s() -> float:
    """MASKDETECT_CLIENT_TIMEOUT_S: nginx's deadline for each read from and write to a client."""
    return _seconds("MASKDETECT_CLIENT_TIMEOUT_S", CLIENT_TIMEOUT_S)


def queue_budget_s() -> float:
    """MASKDETECT_QUEUE_BUDGET_S: how long a request may wait for a worker before it is shed (503)."""
    return _seconds("MASKDETECT_QUEUE_BUDGET_S", QUEUE_BUDGET_S)


# Threads of LiteRT's interpreter for a .tflite model (maskdetect.inference.TFLiteBackend). One:
# gunicorn runs WORKERS=2 single-threaded sync workers on the 2 cores, so with both answering a
# second interpreter thread per worker can only take a core from the other worker; and alone, 2
# threads were not measurably faster than 1 for this 100x100 CNN (fastest call 1.7-2.3 ms against
# 1.9-2.8 ms, same CPU per call; documentation/local_service.md, "The lean runtime").
TFLITE_THREADS = 1


def model_path() -> Path:
    """The model the service and `maskdetect predict` load: $MODEL_PATH, else deployment/maskdetect.h5."""
    value = os.environ.get("MODEL_PATH")
    return Path(value) if value else deployment_dir() / MODEL_FILE


def allow_private_urls() -> bool:
    """MASKDETECT_ALLOW_PRIVATE_URLS=1 lets URL inputs reach loopback and private addresses.

    Off by default: a service that fetches any URL it is given must not become a way into
    the network behind it. Tests and local experiments serving images from 127.0.0.1 turn it on.
    """
    return os.environ.get("MASKDETECT_ALLOW_PRIVATE_URLS", "").strip().lower() in ("1", "true", "yes")


# ---------------------------------------------------------------------------- crowd analysis
# `maskdetect detect`, `POST /detect` and `maskdetect evaluate scenes` read these; the numbers
# behind them are in documentation/crowd.md.

# The face detector's settings (keyword arguments of maskdetect.faces.YuNetDetector), chosen for
# recall on scenes-dev (documentation/crowd.md): a 2x pass finds the small faces of a street scene.
DETECTOR = {
    "scales": (1.0, 2.0),
    "score_threshold": 0.55,
    "nms_threshold": 0.3,
    "max_side": 640,
    "max_pass_side": 800,  # the 2x pass of a 400-640 px scene: the same recall as uncapped, less time and memory
}
FACE_CROP_MARGIN = 0.0  # the classifier sees the square around the detector's box, framed as realfaces-train's crops are
# The unmasked share counts the faces the detector is sure of (the weaker boxes are more often not
# faces at all); an image with none that sure counts every face found (documentation/crowd.md).
SHARE_MIN_SCORE = 0.75

# POST /predict and `maskdetect predict` classify the photo's largest face (cropped with
# FACE_CROP_MARGIN, as the training crops are), and the whole photo only when no face is found
# (documentation/modeling.md, "Face-centred prediction"). A photo sent to /predict shows its
# subject large, so one small pass is enough; the photo is decoded at a reduced size of at least
# SUBJECT_DECODE_SIDE px (JPEG draft): as accurate on the validation photos as 640 px, and faster.
SUBJECT_DETECTOR = {**DETECTOR, "scales": (1.0,), "max_side": 320, "score_threshold": 0.6}
SUBJECT_DECODE_SIDE = 320


def face_centred() -> bool:
    """MASKDETECT_FACE_CENTRED=0 classifies whole photos instead of the largest face (on by default)."""
    return os.environ.get("MASKDETECT_FACE_CENTRED", "1").strip().lower() not in ("0", "false", "no", "off")


# The pinhole model behind close_pairs (see maskdetect.crowd): assumptions, not measurements.
FACE_WIDTH_M = 0.15  # a typical adult face is about 15 cm wide
CAMERA_FOV_DEG = 60.0  # assumed horizontal field of view of the camera
CLOSE_DISTANCE_M = 1.5  # unmasked people estimated closer than this are listed in close_pairs


# ---------------------------------------------------------------------------- realfaces-train
# Real masked and unmasked face crops for training (the "Face Mask 12K" Train split cleaned of every
# evaluation set; ../shared/data/README.md), fetched file by file from the pinned upstream commit.
REALFACES_REPOSITORY = "Karimashraf01/Face-Mask-Detection-using-MobilenetV2"
REALFACES_COMMIT = "1aeb6dd6ffcfe71609ebdd45eaea621b92a6df4b"
REALFACES_RAW_URL = f"https://raw.githubusercontent.com/{REALFACES_REPOSITORY}/{REALFACES_COMMIT}/"
REALFACES_MANIFEST = PROJECT_ROOT / "data" / "realfaces-manifest.csv"
REALFACES_SPLITS_FILE = PROJECT_ROOT / "data" / "realfaces-splits.csv"
REALFACES_SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.2}  # validation: calibration and model checks
REALFACES_SPLIT_SEED = 20261130
