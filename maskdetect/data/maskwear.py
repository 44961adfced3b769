"""maskwear-train: faces with a mask, a mask worn below the nose ("incorrect") and none, for training.

3434 files from five GitHub repositories, each at a pinned commit (../shared/data/README.md). The
licences are weak: the images are obtained at set-up and never committed. Described by ``MASKWEAR``
and handled by :mod:`maskdetect.data.pinned`:

* ``prepare_maskwear`` takes ``MASKDETECT_MASKWEAR_SOURCE=DIR`` (verified, used in place) or
  downloads ``https://raw.githubusercontent.com/<repo>/<commit>/<path>`` per file into
  ``data/raw/maskwear-train/``, then lays out ``data/maskwear/{train,validation,test}/<class>/<file>``.
* ``data/maskwear-splits.csv``: whole groups about 70/15/15 of every class and origin (web photo,
  grey 64 px crop, ...), recomputed by ``compute_maskwear_splits``.
* ``data/maskwear-faces.csv``: the largest face YuNet finds in each file (``read_maskwear_faces``),
  since many files are whole photos of a person while the classifier sees face crops.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from ..core.constants import PROJECT_ROOT, SUBJECT_DETECTOR
from ..core.files import write_csv
from . import boxes, pinned
from .pinned import BASE_COLUMNS, PinnedEntry, PinnedSet

MASKWEAR_CLASSES = ("with_mask", "incorrect", "without_mask")
MASKWEAR_SPLIT_FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}
MASKWEAR_SPLIT_SEED = 20261207
SOURCE_ENV = "MASKDETECT_MASKWEAR_SOURCE"
URL_ENV = "MASKDETECT_MASKWEAR_URL"
SPLITS = tuple(MASKWEAR_SPLIT_FRACTIONS)


def _raw_path(entry: PinnedEntry) -> str:
    return f"{entry.source_repo}/{entry.source_commit}/{urllib.parse.quote(entry.source_path)}"


def _class_and_origin(entry: PinnedEntry) -> str:
    return f"{entry.label}/{entry.origin}"


MASKWEAR = PinnedSet(
    name="maskwear-train",
    folder="maskwear",
    manifest=PROJECT_ROOT / "data" / "maskwear-manifest.csv",
    splits_file=PROJECT_ROOT / "data" / "maskwear-splits.csv",
    classes=MASKWEAR_CLASSES,
    split_fractions=MASKWEAR_SPLIT_FRACTIONS,
    seed=MASKWEAR_SPLIT_SEED,
    source_env=SOURCE_ENV,
    source_setting="maskwear_source",
    url_env=URL_ENV,
    url_setting="maskwear_url",
    default_url="https://raw.githubusercontent.com",  # MASKDETECT_MASKWEAR_URL replaces it: BASE/<repo>/<commit>/<path>
    url_path=_raw_path,
    upstream="each file's source_repo at its source_commit",
    recompute_hint="`maskdetect data split --set maskwear`",
    stratify=_class_and_origin,  # every source of every class is split about 70/15/15
    manifest_columns=BASE_COLUMNS + ("source_repo", "source_commit", "origin"),
)

# Face boxes. The grey 64 px crops need the 2x pass (at 1x YuNet misses 15 % of the masked ones); the
# 1x pass at 160 px keeps the largest pass of a big photo at 320 px, as for /predict: a 640 px pass
# boxes parts of large faces (an eye, a mask) and hair. Found in 3406 of 3434 files (1x alone: 3353).
MASKWEAR_DETECTOR = {**SUBJECT_DETECTOR, "scales": (1.0, 2.0), "max_side": 160}
MASKWEAR_FACES_FILE = PROJECT_ROOT / "data" / "maskwear-faces.csv"
FACE_COLUMNS = ("path", *boxes.BOX_COLUMNS, "score")


def maskwear_dir() -> Path:
    """``data/maskwear``: ``<split>/<class>/<file name>`` once :func:`prepare_maskwear` ran."""
    return pinned.layout_dir(MASKWEAR)


def prepare_maskwear(source: Path | None = None, progress: bool = True) -> Path:
    """Obtain and verify the files, then lay out ``data/maskwear/{train,validation,test}/<class>/``."""
    return pinned.prepare(MASKWEAR, source, progress)


def read_maskwear_manifest(path: Path | None = None) -> list[PinnedEntry]:
    return pinned.read_manifest(MASKWEAR, path)


def compute_maskwear_splits(manifest: list[PinnedEntry] | None = None) -> list[dict]:
    return pinned.compute_splits(MASKWEAR, manifest)


def write_maskwear_splits(rows: list[dict] | None = None, path: Path | None = None) -> Path:
    return pinned.write_splits(MASKWEAR, rows, path)


def read_maskwear_splits(path: Path | None = None) -> list[dict]:
    """Rows ``path,class,group,split``; ``path`` ("<class>/<file name>") keys the manifest and the face boxes."""
    return pinned.read_splits(MASKWEAR, path)


def split_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    return pinned.split_counts(MASKWEAR, rows)


def compute_maskwear_faces(source: Path | None = None, progress: bool = True) -> list[dict]:
    """The largest face in every manifest file (empty box when none): the rows of the faces file."""
    manifest = read_maskwear_manifest()
    folder = pinned.acquire_source(MASKWEAR, source, manifest, progress=progress)
    paths = [entry.path for entry in manifest]
    return boxes.face_rows(paths, boxes.largest_faces(folder, paths, MASKWEAR_DETECTOR, progress), key="path")


def write_maskwear_faces(rows: list[dict] | None = None, path: Path | None = None) -> Path:
    rows = rows if rows is not None else compute_maskwear_faces()
    return write_csv(rows, FACE_COLUMNS, Path(path or MASKWEAR_FACES_FILE))


def read_maskwear_faces(path: Path | None = None) -> dict[str, tuple[int, int, int, int]]:
    """Manifest path -> (xmin, ymin, xmax, ymax) in the file's pixels, for the files where a face was found."""
    return boxes.read_boxes(Path(path or MASKWEAR_FACES_FILE), "path", "run `maskdetect data faces --set maskwear` to compute it")
