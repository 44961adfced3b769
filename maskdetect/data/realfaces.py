"""realfaces-train: real masked and unmasked face crops for training, obtained, verified and split.

The set is described by ``REALFACES`` and handled by :mod:`maskdetect.data.pinned`:

* ``acquire_realfaces_source`` finds the files: ``MASKDETECT_REALFACES_SOURCE=DIR`` (verified
  against ``data/realfaces-manifest.csv`` and used in place), else a download of the pinned
  upstream commit into ``data/raw/realfaces-train/``, one URL per file, resumable.
* ``compute_realfaces_splits`` splits by ``group`` (augmented copies stay together) into
  train / validation; ``data/realfaces-splits.csv`` is its committed result.
* ``prepare_realfaces`` lays out ``data/realfaces/{train,validation}/<class>/<file>``
  (``maskdetect.training.inputs.load_realfaces`` reads one split).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from ..core.constants import CLASSES, PROJECT_ROOT
from . import pinned
from .pinned import PinnedEntry, PinnedSet

# Real masked and unmasked face crops (the "Face Mask 12K" Train split cleaned of every evaluation
# set; ../shared/data/README.md), fetched file by file from the pinned upstream commit.
REALFACES_REPOSITORY = "Karimashraf01/Face-Mask-Detection-using-MobilenetV2"
REALFACES_COMMIT = "1aeb6dd6ffcfe71609ebdd45eaea621b92a6df4b"
REALFACES_RAW_URL = f"https://raw.githubusercontent.com/{REALFACES_REPOSITORY}/{REALFACES_COMMIT}/"
REALFACES_SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.2}  # validation: calibration and model checks
REALFACES_SPLIT_SEED = 20261130
SOURCE_ENV = "MASKDETECT_REALFACES_SOURCE"
URL_ENV = "MASKDETECT_REALFACES_URL"
SPLITS = tuple(REALFACES_SPLIT_FRACTIONS)

REALFACES = PinnedSet(
    name="realfaces-train",
    folder="realfaces",
    manifest=PROJECT_ROOT / "data" / "realfaces-manifest.csv",
    splits_file=PROJECT_ROOT / "data" / "realfaces-splits.csv",
    classes=CLASSES,
    split_fractions=REALFACES_SPLIT_FRACTIONS,
    seed=REALFACES_SPLIT_SEED,
    source_env=SOURCE_ENV,
    source_setting="realfaces_source",
    url_env=URL_ENV,
    url_setting="realfaces_url",
    default_url=REALFACES_RAW_URL,
    url_path=lambda entry: urllib.parse.quote(entry.source_path),
    upstream=f"commit {REALFACES_COMMIT[:7]} of {REALFACES_REPOSITORY}",
    recompute_hint="python -c 'from maskdetect.data import realfaces; realfaces.write_realfaces_splits()'",
)
REALFACES_MANIFEST = REALFACES.manifest
REALFACES_SPLITS_FILE = REALFACES.splits_file

RealfacesEntry = PinnedEntry
RealfacesUnreachable = pinned.SourceUnreachable


# The set's operations under the names the rest of the package uses. Each reads REALFACES when called,
# so a test can put a smaller manifest and split in its place.


def read_realfaces_manifest(path: Path | None = None) -> list[PinnedEntry]:
    return pinned.read_manifest(REALFACES, path)


def verify_realfaces_source(source: Path, manifest=None, progress: bool = True, fix: str | None = None) -> Path:
    return pinned.verify_source(REALFACES, source, manifest, progress, fix)


def download_dir() -> Path:
    return pinned.download_dir(REALFACES)


def download_realfaces(destination: Path | None = None, manifest=None, base_url: str | None = None, progress: bool = True) -> Path:
    return pinned.download_files(REALFACES, destination, manifest, base_url, progress)


def find_realfaces_source(source: Path | None = None, manifest=None, progress: bool = True) -> Path | None:
    return pinned.find_source(REALFACES, source, manifest, progress)


def acquire_realfaces_source(source: Path | None = None, manifest=None, progress: bool = True) -> Path:
    return pinned.acquire_source(REALFACES, source, manifest, progress)


def compute_realfaces_splits(manifest=None) -> list[dict]:
    """Whole groups to train / validation, about 80/20 per class, seeded: the rows of the split file."""
    return pinned.compute_splits(REALFACES, manifest)


def write_realfaces_splits(rows: list[dict] | None = None, path: Path | None = None) -> Path:
    return pinned.write_splits(REALFACES, rows, path)


def read_realfaces_splits(path: Path | None = None) -> list[dict]:
    return pinned.read_splits(REALFACES, path)


def check_realfaces_splits(rows: list[dict], manifest) -> None:
    pinned.check_splits(REALFACES, rows, manifest)


def split_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    return pinned.split_counts(REALFACES, rows)


def realfaces_dir() -> Path:
    return pinned.layout_dir(REALFACES)


def prepare_realfaces(source: Path | None = None, progress: bool = True) -> Path:
    """Obtain and verify the files, then lay out ``data/realfaces/{train,validation}/<class>/``."""
    return pinned.prepare(REALFACES, source, progress)
