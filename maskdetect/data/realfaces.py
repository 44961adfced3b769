"""realfaces-train: real masked and unmasked face crops for training, obtained, verified and split.

* ``acquire_realfaces_source`` finds the files: ``MASKDETECT_REALFACES_SOURCE=DIR`` (verified
  against ``data/realfaces-manifest.csv`` and used in place), else a download of the pinned
  upstream commit into ``data/raw/realfaces-train/``, one URL per file, resumable.
* ``compute_realfaces_splits`` splits by ``group`` (augmented copies stay together) into
  train / validation; ``data/realfaces-splits.csv`` is its committed result.
* ``prepare_realfaces`` lays out ``data/realfaces/{train,validation}/<class>/<file>``
  (``maskdetect.training.inputs.load_realfaces`` reads one split).
"""

from __future__ import annotations

import csv
import hashlib
import threading
import urllib.parse
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..core.constants import CLASSES, PROJECT_ROOT
from ..core.fetch import FetchError, download
from ..core.files import atomic_path, natural_key, sha256_file, write_csv
from ..settings import Settings
from .layout import STAMP, materialise
from .source import DataError, counted_problems, name_some
from .split import SPLITS as OBSERVATIONS_SPLITS
from .split import assign_splits

# Real masked and unmasked face crops (the "Face Mask 12K" Train split cleaned of every evaluation
# set; ../shared/data/README.md), fetched file by file from the pinned upstream commit.
REALFACES_REPOSITORY = "Karimashraf01/Face-Mask-Detection-using-MobilenetV2"
REALFACES_COMMIT = "1aeb6dd6ffcfe71609ebdd45eaea621b92a6df4b"
REALFACES_RAW_URL = f"https://raw.githubusercontent.com/{REALFACES_REPOSITORY}/{REALFACES_COMMIT}/"
REALFACES_MANIFEST = PROJECT_ROOT / "data" / "realfaces-manifest.csv"
REALFACES_SPLITS_FILE = PROJECT_ROOT / "data" / "realfaces-splits.csv"
REALFACES_SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.2}  # validation: calibration and model checks
REALFACES_SPLIT_SEED = 20261130

SOURCE_ENV = "MASKDETECT_REALFACES_SOURCE"
URL_ENV = "MASKDETECT_REALFACES_URL"
MANIFEST_COLUMNS = ("path", "class", "source_path", "source_sha256", "sha256", "group")
SPLIT_COLUMNS = ("path", "class", "group", "split")
SPLITS = tuple(REALFACES_SPLIT_FRACTIONS)
DOWNLOAD_THREADS = 4
DOWNLOAD_TIMEOUT = 30.0  # seconds to connect and for each read of one file
MAX_FILE_BYTES = 10 << 20  # the crops are PNGs of at most 224x224
LOCAL_COPY_HINT = (
    f"set {SOURCE_ENV}=DIR to a local copy laid out like ../shared/data/realfaces-train "
    "(with_mask/ and without_mask/)"
)
RECOMPUTE_HINT = "python -c 'from maskdetect.data import realfaces; realfaces.write_realfaces_splits()'"


class RealfacesUnreachable(DataError):
    """The upstream host could not be reached; files already downloaded are kept for the next run."""


@dataclass(frozen=True)
class RealfacesEntry:
    path: str  # "with_mask/Augmented_0_3737311.png", also where the file is saved
    label: str
    source_path: str  # the path in the upstream repository (with spaces)
    source_sha256: str
    sha256: str
    group: str  # augmented copies of one photo share a group


# -------------------------------------------------------------------------- manifest


def read_realfaces_manifest(path: Path | None = None) -> list[RealfacesEntry]:
    path = Path(path or REALFACES_MANIFEST)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        lacking = sorted(set(MANIFEST_COLUMNS) - set(reader.fieldnames or ()))
        if lacking:
            raise DataError(f"{path} lacks columns {lacking}; copy it again from ../shared/data/realfaces-train/manifest.csv")
        return [
            RealfacesEntry(r["path"], r["class"], r["source_path"], r["source_sha256"], r["sha256"], r["group"])
            for r in reader
        ]


def _manifest_digest(manifest: list[RealfacesEntry]) -> str:
    return hashlib.sha256("\n".join(f"{e.path}={e.sha256}" for e in manifest).encode()).hexdigest()


def _intact(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def verify_realfaces_source(
    source: Path, manifest: list[RealfacesEntry] | None = None, progress: bool = True, fix: str | None = None
) -> Path:
    """Check that ``source`` holds every manifest file with its sha256 (other files are ignored)."""
    manifest = manifest if manifest is not None else read_realfaces_manifest()
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source} is not a folder; {LOCAL_COPY_HINT}, or unset {SOURCE_ENV} to download the files")
    missing, altered = [], []
    for entry in tqdm(manifest, desc="verify realfaces-train", unit="file", disable=not progress):
        path = source / entry.path
        if not path.is_file():
            missing.append(entry.path)
        elif sha256_file(path) != entry.sha256:
            altered.append(entry.path)
    problems = counted_problems({"missing": missing, "altered (sha256 differs)": altered}, limit=5)
    if problems:
        fix = fix or f"point {SOURCE_ENV} at an intact copy (../shared/data/realfaces-train), or unset it to download the files"
        raise DataError(
            f"{source} does not match {REALFACES_MANIFEST.name}: {'; '.join(problems)}. Nothing was written; {fix}."
        )
    return source


# ---------------------------------------------------------------------------- source


def download_dir() -> Path:
    return Settings.from_env().data_dir / "raw" / "realfaces-train"


def download_realfaces(
    destination: Path | None = None,
    manifest: list[RealfacesEntry] | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> Path:
    """Download every manifest file from the pinned upstream commit into ``destination``.

    One URL per file (``base_url`` + the quoted ``source_path``), 4 at a time; files already
    there and intact are kept, so an interrupted run resumes. A file whose sha256 is wrong is
    deleted. The folder is marked complete (``.complete``) only once every file is verified.
    """
    manifest = manifest if manifest is not None else read_realfaces_manifest()
    destination = Path(destination or download_dir())
    base_url = (base_url or Settings.from_env().realfaces_url or REALFACES_RAW_URL).rstrip("/") + "/"
    stamp = destination / STAMP
    stamp.unlink(missing_ok=True)
    stop = threading.Event()  # set by the first network failure: every other file would fail alike

    def obtain(entry: RealfacesEntry) -> tuple[str, str]:
        """(outcome, detail): "kept", "downloaded", "skipped", "http", "unreachable" or "wrong"."""
        target = destination / entry.path
        if _intact(target, entry.source_sha256):
            return "kept", ""
        if stop.is_set():
            return "skipped", ""
        url = base_url + urllib.parse.quote(entry.source_path)
        try:
            download(url, target, timeout=DOWNLOAD_TIMEOUT, max_bytes=MAX_FILE_BYTES, progress=False)
        except FetchError as error:
            if "answered HTTP" in str(error):
                return "http", f"{entry.path} ({error})"
            stop.set()
            cause = error.__cause__ if isinstance(error.__cause__, FetchError) else error  # without download()'s own hint
            return "unreachable", str(cause)
        if sha256_file(target) != entry.source_sha256:
            target.unlink()
            return "wrong", entry.path
        return "downloaded", ""

    outcomes: dict[str, list[str]] = defaultdict(list)
    pool = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="realfaces")
    try:
        futures = [pool.submit(obtain, entry) for entry in manifest]
        bar = tqdm(as_completed(futures), total=len(futures), desc="download realfaces-train", unit="file", disable=not progress)
        for future in bar:
            outcome, detail = future.result()
            outcomes[outcome].append(detail)
    finally:
        pool.shutdown(cancel_futures=True)  # on an error or Ctrl-C, start no further downloads
    in_place = len(outcomes["kept"]) + len(outcomes["downloaded"])
    if outcomes["unreachable"]:
        raise RealfacesUnreachable(
            f"could not download realfaces-train from {base_url} ({outcomes['unreachable'][0]}); "
            f"{in_place} of {len(manifest)} files are in {destination} and the next run resumes. "
            f"Check the network, or {LOCAL_COPY_HINT}"
        )
    wrong = sorted(outcomes["wrong"], key=natural_key)
    if wrong:
        raise DataError(
            f"{len(wrong)} files downloaded from {base_url} differ from {REALFACES_MANIFEST.name} "
            f"(source_sha256) and were not kept: {name_some(wrong, 5)}. That URL does not serve commit "
            f"{REALFACES_COMMIT[:7]} of {REALFACES_REPOSITORY}: unset {URL_ENV}, or {LOCAL_COPY_HINT}"
        )
    if outcomes["http"]:
        failed = sorted(outcomes["http"], key=natural_key)
        raise DataError(f"{len(failed)} files could not be downloaded: {name_some(failed, 3)}; {LOCAL_COPY_HINT}")
    with atomic_path(stamp) as temporary:
        temporary.write_text(_manifest_digest(manifest) + "\n")
    return destination


def find_realfaces_source(
    source: Path | None = None, manifest: list[RealfacesEntry] | None = None, progress: bool = True
) -> Path | None:
    """The verified local copy: given, from MASKDETECT_REALFACES_SOURCE, or a complete earlier download.

    None when there is none (nothing is downloaded here).
    """
    manifest = manifest if manifest is not None else read_realfaces_manifest()
    source = source or Settings.from_env().realfaces_source
    if source is not None:
        return verify_realfaces_source(source, manifest, progress=progress)
    cached = download_dir()
    stamp = cached / STAMP
    if not (stamp.is_file() and stamp.read_text().strip() == _manifest_digest(manifest)):
        return None
    return verify_realfaces_source(
        cached, manifest, progress=progress, fix=f"delete {cached} and run `maskdetect data` to download the files again"
    )


def acquire_realfaces_source(
    source: Path | None = None, manifest: list[RealfacesEntry] | None = None, progress: bool = True
) -> Path:
    """The verified source folder, downloading (or resuming) the pinned upstream files if needed."""
    manifest = manifest if manifest is not None else read_realfaces_manifest()
    found = find_realfaces_source(source, manifest, progress=progress)
    return found if found is not None else download_realfaces(manifest=manifest, progress=progress)


# ---------------------------------------------------------------------------- splits


def compute_realfaces_splits(manifest: list[RealfacesEntry] | None = None) -> list[dict]:
    """Whole groups to train / validation, about 80/20 per class, seeded: the rows of the split file."""
    manifest = manifest if manifest is not None else read_realfaces_manifest()
    counts: dict[str, Counter] = defaultdict(Counter)
    for entry in manifest:
        counts[entry.group][entry.label] += 1
    assignment = assign_splits(counts, REALFACES_SPLIT_FRACTIONS, REALFACES_SPLIT_SEED)
    return [
        {"path": e.path, "class": e.label, "group": e.group, "split": assignment[e.group]}
        for e in sorted(manifest, key=lambda e: natural_key(e.path))
    ]


def write_realfaces_splits(rows: list[dict] | None = None, path: Path | None = None) -> Path:
    rows = rows if rows is not None else compute_realfaces_splits()
    path = Path(path or REALFACES_SPLITS_FILE)
    return write_csv(rows, SPLIT_COLUMNS, path)


def read_realfaces_splits(path: Path | None = None) -> list[dict]:
    path = Path(path or REALFACES_SPLITS_FILE)
    if not path.exists():
        raise DataError(f"{path} is missing; recompute it with {RECOMPUTE_HINT}")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_realfaces_splits(rows: list[dict], manifest: list[RealfacesEntry]) -> None:
    """The split file lists exactly the manifest's files, classes and groups, each group on one side."""
    expected = {e.path: (e.label, e.group) for e in manifest}
    listed = {r["path"]: (r["class"], r["group"]) for r in rows}
    differing = sorted((p for p in expected if listed.get(p) != expected[p]), key=natural_key)
    unknown = sorted(set(listed) - set(expected), key=natural_key)
    sides = defaultdict(set)
    for row in rows:
        sides[row["group"]].add(row["split"])
    crossing = sorted(g for g, splits in sides.items() if len(splits) > 1)
    bad_split = sorted({r["split"] for r in rows} - set(SPLITS))
    problems = counted_problems(
        {
            "manifest files missing or with another class or group": differing,
            "files not in the manifest": unknown,
            "groups on both sides": crossing,
        },
        limit=5,
    )
    if bad_split:
        problems.append(f"splits other than {' / '.join(SPLITS)}: {bad_split}")
    if problems:
        raise DataError(
            f"{REALFACES_SPLITS_FILE.name} does not match {REALFACES_MANIFEST.name}: "
            f"{'; '.join(problems)}. Recompute it with {RECOMPUTE_HINT}"
        )


def split_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    counts = {s: {c: 0 for c in CLASSES} for s in SPLITS}
    for row in rows:
        counts[row["split"]][row["class"]] += 1
    return counts


# ---------------------------------------------------------------------- materialise


def realfaces_dir() -> Path:
    return Settings.from_env().data_dir / "realfaces"


def prepare_realfaces(source: Path | None = None, progress: bool = True) -> Path:
    """Obtain and verify the files, then lay out ``data/realfaces/{train,validation}/<class>/``.

    Copies only when the split or the files changed; the new layout is switched in atomically.
    """
    manifest = read_realfaces_manifest()
    rows = read_realfaces_splits()
    check_realfaces_splits(rows, manifest)
    source = acquire_realfaces_source(source, manifest, progress=progress)
    sha256 = {e.path: e.sha256 for e in manifest}
    layout = [
        {"source": r["path"], "class": r["class"], "split": r["split"], "file": Path(r["path"]).name, "sha256": sha256[r["path"]]}
        for r in rows
    ]
    target = realfaces_dir()
    materialise(layout, source, target, progress=progress)
    for split in OBSERVATIONS_SPLITS:  # materialise links every observations split; realfaces has no test
        if split not in SPLITS and (target / split).is_symlink():
            (target / split).unlink()
    return target
