"""Training sets fetched file by file from pinned GitHub commits: one mechanism, each set a description.

A :class:`PinnedSet` says where a set's committed manifest and split are, its classes, how a manifest
entry becomes a URL, and which variables name a local copy or another host. The functions here take
one and do the rest, the same way for every set:

* ``acquire_source`` finds the files: ``<set>.source_env=DIR`` (verified against the manifest and
  used in place), else a download into ``data/raw/<name>/``: one URL per file, 4 at a time,
  sha256-checked, resumable, marked ``.complete`` once every file is verified.
* ``compute_splits`` assigns whole groups to the splits (``split.assign_splits``), stratified by
  ``set.stratify``; the set's committed split file is its result, checked by ``check_splits``.
* ``prepare`` lays out ``data/<folder>/<split>/<class>/<file name>`` (``layout.materialise``).

``realfaces.py`` and ``maskwear.py`` describe the two sets.
"""

from __future__ import annotations

import csv
import hashlib
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..core.fetch import FetchError, download
from ..core.files import atomic_path, natural_key, sha256_file, write_csv
from ..settings import Settings
from .layout import STAMP, materialise
from .source import DataError, counted_problems, name_some
from .split import SPLITS as LAYOUT_SPLITS
from .split import assign_splits

SPLIT_COLUMNS = ("path", "class", "group", "split")
BASE_COLUMNS = ("path", "class", "source_path", "source_sha256", "sha256", "group")
DOWNLOAD_THREADS = 4
DOWNLOAD_TIMEOUT = 30.0  # seconds to connect and for each read of one file


class SourceUnreachable(DataError):
    """The upstream host could not be reached, or a transfer was cut; files already downloaded are kept."""


@dataclass(frozen=True)
class PinnedEntry:
    """One manifest row."""

    path: str  # "<class>/<file name>", also where the file is saved
    label: str
    source_path: str  # the path in the upstream repository (may hold spaces)
    source_sha256: str
    sha256: str
    group: str  # files of one photo share a group; a group is never split
    source_repo: str = ""  # "owner/name", for sets drawn from several repositories
    source_commit: str = ""
    origin: str = ""  # the kind of image ("web photo", "grey 64px video crop", ...)


def by_class(entry: PinnedEntry) -> str:
    return entry.label


@dataclass(frozen=True)
class PinnedSet:
    """What differs between two pinned training sets."""

    name: str  # "realfaces-train": messages, the shared copy ../shared/data/<name>, data/raw/<name>/
    folder: str  # "realfaces": laid out in data/<folder>/
    manifest: Path
    splits_file: Path
    classes: tuple[str, ...]
    split_fractions: Mapping[str, float]
    seed: int
    source_env: str  # the variable naming a local copy, and the Settings field that holds it
    source_setting: str
    url_env: str  # the variable replacing default_url, and its Settings field
    url_setting: str
    default_url: str
    url_path: Callable[[PinnedEntry], str]  # the entry's URL below the base URL (quoted)
    upstream: str  # what the URL must serve, for messages: "commit 1aeb6dd of owner/name"
    recompute_hint: str  # the command that rewrites splits_file
    stratify: Callable[[PinnedEntry], str] = by_class  # the split keeps each such stratum near its fractions
    manifest_columns: tuple[str, ...] = BASE_COLUMNS
    max_file_bytes: int = 10 << 20

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.split_fractions)

    @property
    def local_copy_hint(self) -> str:
        folders = [f"{c}/" for c in self.classes]
        listed = ", ".join(folders[:-1]) + " and " + folders[-1]
        return f"set {self.source_env}=DIR to a local copy laid out like ../shared/data/{self.name} ({listed})"


# -------------------------------------------------------------------------- manifest


def read_manifest(dataset: PinnedSet, path: Path | None = None) -> list[PinnedEntry]:
    path = Path(path or dataset.manifest)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        lacking = sorted(set(dataset.manifest_columns) - set(reader.fieldnames or ()))
        if lacking:
            raise DataError(f"{path} lacks columns {lacking}; copy it again from ../shared/data/{dataset.name}/manifest.csv")
        return [
            PinnedEntry(
                r["path"], r["class"], r["source_path"], r["source_sha256"], r["sha256"], r["group"],
                r.get("source_repo", ""), r.get("source_commit", ""), r.get("origin", ""),
            )
            for r in reader
        ]


def _manifest_digest(manifest: list[PinnedEntry]) -> str:
    return hashlib.sha256("\n".join(f"{e.path}={e.sha256}" for e in manifest).encode()).hexdigest()


def _intact(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def verify_source(
    dataset: PinnedSet,
    source: Path,
    manifest: list[PinnedEntry] | None = None,
    progress: bool = True,
    fix: str | None = None,
) -> Path:
    """Check that ``source`` holds every manifest file with its sha256 (other files are ignored)."""
    manifest = manifest if manifest is not None else read_manifest(dataset)
    source = Path(source)
    if not source.is_dir():
        raise DataError(
            f"{source} is not a folder; {dataset.local_copy_hint}, or unset {dataset.source_env} to download the files"
        )
    missing, altered = [], []
    for entry in tqdm(manifest, desc=f"verify {dataset.name}", unit="file", disable=not progress):
        path = source / entry.path
        if not path.is_file():
            missing.append(entry.path)
        elif sha256_file(path) != entry.sha256:
            altered.append(entry.path)
    problems = counted_problems({"missing": missing, "altered (sha256 differs)": altered}, limit=5)
    if problems:
        fix = fix or (
            f"point {dataset.source_env} at an intact copy (../shared/data/{dataset.name}), or unset it to download the files"
        )
        raise DataError(
            f"{source} does not match {dataset.manifest.name}: {'; '.join(problems)}. Nothing was written; {fix}."
        )
    return source


# ---------------------------------------------------------------------------- source


def download_dir(dataset: PinnedSet) -> Path:
    return Settings.from_env().data_dir / "raw" / dataset.name


def base_url(dataset: PinnedSet) -> str:
    """Where files are downloaded from: ``url_env``'s value, else the set's default; ends with "/"."""
    return (getattr(Settings.from_env(), dataset.url_setting) or dataset.default_url).rstrip("/") + "/"


def download_files(
    dataset: PinnedSet,
    destination: Path | None = None,
    manifest: list[PinnedEntry] | None = None,
    base: str | None = None,
    progress: bool = True,
) -> Path:
    """Download every manifest file into ``destination`` (default ``data/raw/<name>/``).

    One URL per file (``base`` + ``url_path(entry)``), 4 at a time; files already there and intact
    are kept, so an interrupted run resumes. A file whose sha256 is wrong is deleted. The folder is
    marked complete (``.complete``) only once every file is verified.
    """
    manifest = manifest if manifest is not None else read_manifest(dataset)
    destination = Path(destination or download_dir(dataset))
    base = base.rstrip("/") + "/" if base else base_url(dataset)
    stamp = destination / STAMP
    stamp.unlink(missing_ok=True)
    stop = threading.Event()  # set by the first failure to connect: every other file would fail alike

    def obtain(entry: PinnedEntry) -> tuple[str, str]:
        """(outcome, detail): "kept", "downloaded", "skipped", "http", "cut", "unreachable" or "wrong"."""
        target = destination / entry.path
        if _intact(target, entry.source_sha256):
            return "kept", ""
        if stop.is_set():
            return "skipped", ""
        url = base + dataset.url_path(entry)
        try:
            download(url, target, timeout=DOWNLOAD_TIMEOUT, max_bytes=dataset.max_file_bytes, progress=False)
        except FetchError as error:
            cause = error.__cause__ if isinstance(error.__cause__, FetchError) else error  # without download()'s own hint
            if "answered HTTP" in str(error):
                return "http", f"{entry.path} ({error})"
            if " ended after " in str(cause):  # this body was cut short; the host answers, so go on with the others
                return "cut", entry.path
            stop.set()
            return "unreachable", str(cause)
        if sha256_file(target) != entry.source_sha256:
            target.unlink()
            return "wrong", entry.path
        return "downloaded", ""

    outcomes: dict[str, list[str]] = defaultdict(list)
    pool = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix=dataset.folder)
    try:
        futures = [pool.submit(obtain, entry) for entry in manifest]
        bar = tqdm(as_completed(futures), total=len(futures), desc=f"download {dataset.name}", unit="file", disable=not progress)
        for future in bar:
            outcome, detail = future.result()
            outcomes[outcome].append(detail)
    finally:
        pool.shutdown(cancel_futures=True)  # on an error or Ctrl-C, start no further downloads
    in_place = f"{len(outcomes['kept']) + len(outcomes['downloaded'])} of {len(manifest)} files are in {destination}"
    if outcomes["unreachable"]:
        raise SourceUnreachable(
            f"could not download {dataset.name} from {base} ({outcomes['unreachable'][0]}); "
            f"{in_place} and the next run resumes. Check the network, or {dataset.local_copy_hint}"
        )
    wrong = sorted(outcomes["wrong"], key=natural_key)
    if wrong:
        raise DataError(
            f"{len(wrong)} files downloaded from {base} differ from {dataset.manifest.name} "
            f"(source_sha256) and were not kept: {name_some(wrong, 5)}. That URL does not serve "
            f"{dataset.upstream}: unset {dataset.url_env}, or {dataset.local_copy_hint}"
        )
    if outcomes["http"]:
        failed = sorted(outcomes["http"], key=natural_key)
        raise DataError(f"{len(failed)} files could not be downloaded: {name_some(failed, 3)}; {dataset.local_copy_hint}")
    if outcomes["cut"]:
        cut = sorted(outcomes["cut"], key=natural_key)
        raise SourceUnreachable(
            f"the download of {len(cut)} {dataset.name} files from {base} was cut short: {name_some(cut, 5)}; "
            f"{in_place} and the next run resumes. Check the network, or {dataset.local_copy_hint}"
        )
    with atomic_path(stamp) as temporary:
        temporary.write_text(_manifest_digest(manifest) + "\n")
    return destination


def find_source(
    dataset: PinnedSet, source: Path | None = None, manifest: list[PinnedEntry] | None = None, progress: bool = True
) -> Path | None:
    """The verified local copy: given, from ``source_env``, or a complete earlier download.

    None when there is none (nothing is downloaded here).
    """
    manifest = manifest if manifest is not None else read_manifest(dataset)
    source = source or getattr(Settings.from_env(), dataset.source_setting)
    if source is not None:
        return verify_source(dataset, source, manifest, progress=progress)
    cached = download_dir(dataset)
    stamp = cached / STAMP
    if not (stamp.is_file() and stamp.read_text().strip() == _manifest_digest(manifest)):
        return None
    return verify_source(
        dataset, cached, manifest, progress=progress,
        fix=f"delete {cached} and run `maskdetect data` to download the files again",
    )


def acquire_source(
    dataset: PinnedSet, source: Path | None = None, manifest: list[PinnedEntry] | None = None, progress: bool = True
) -> Path:
    """The verified source folder, downloading (or resuming) the pinned upstream files if needed."""
    manifest = manifest if manifest is not None else read_manifest(dataset)
    found = find_source(dataset, source, manifest, progress=progress)
    return found if found is not None else download_files(dataset, manifest=manifest, progress=progress)


# ---------------------------------------------------------------------------- splits


def compute_splits(dataset: PinnedSet, manifest: list[PinnedEntry] | None = None) -> list[dict]:
    """Whole groups to the splits, each stratum (``dataset.stratify``) near its fractions, seeded."""
    manifest = manifest if manifest is not None else read_manifest(dataset)
    counts: dict[str, Counter] = defaultdict(Counter)
    for entry in manifest:
        counts[entry.group][dataset.stratify(entry)] += 1
    assignment = assign_splits(counts, dict(dataset.split_fractions), dataset.seed)
    return [
        {"path": e.path, "class": e.label, "group": e.group, "split": assignment[e.group]}
        for e in sorted(manifest, key=lambda e: natural_key(e.path))
    ]


def write_splits(dataset: PinnedSet, rows: list[dict] | None = None, path: Path | None = None) -> Path:
    rows = rows if rows is not None else compute_splits(dataset)
    return write_csv(rows, SPLIT_COLUMNS, Path(path or dataset.splits_file))


def read_splits(dataset: PinnedSet, path: Path | None = None) -> list[dict]:
    path = Path(path or dataset.splits_file)
    if not path.exists():
        raise DataError(f"{path} is missing; recompute it with {dataset.recompute_hint}")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_splits(dataset: PinnedSet, rows: list[dict], manifest: list[PinnedEntry]) -> None:
    """The split file lists exactly the manifest's files, classes and groups, each group in one split."""
    expected = {e.path: (e.label, e.group) for e in manifest}
    listed = {r["path"]: (r["class"], r["group"]) for r in rows}
    differing = sorted((p for p in expected if listed.get(p) != expected[p]), key=natural_key)
    unknown = sorted(set(listed) - set(expected), key=natural_key)
    sides = defaultdict(set)
    for row in rows:
        sides[row["group"]].add(row["split"])
    crossing = sorted(g for g, splits in sides.items() if len(splits) > 1)
    bad_split = sorted({r["split"] for r in rows} - set(dataset.splits))
    problems = counted_problems(
        {
            "manifest files missing or with another class or group": differing,
            "files not in the manifest": unknown,
            "groups on both sides" if len(dataset.splits) == 2 else "groups in more than one split": crossing,
        },
        limit=5,
    )
    if bad_split:
        problems.append(f"splits other than {' / '.join(dataset.splits)}: {bad_split}")
    if problems:
        raise DataError(
            f"{dataset.splits_file.name} does not match {dataset.manifest.name}: "
            f"{'; '.join(problems)}. Recompute it with {dataset.recompute_hint}"
        )


def split_counts(dataset: PinnedSet, rows: list[dict]) -> dict[str, dict[str, int]]:
    counts = {s: {c: 0 for c in dataset.classes} for s in dataset.splits}
    for row in rows:
        counts[row["split"]][row["class"]] += 1
    return counts


# ---------------------------------------------------------------------- materialise


def layout_dir(dataset: PinnedSet) -> Path:
    return Settings.from_env().data_dir / dataset.folder


def prepare(dataset: PinnedSet, source: Path | None = None, progress: bool = True) -> Path:
    """Obtain and verify the files, then lay out ``data/<folder>/<split>/<class>/<file name>``.

    Copies only when the split or the files changed; the new layout is switched in atomically.
    """
    manifest = read_manifest(dataset)
    rows = read_splits(dataset)
    check_splits(dataset, rows, manifest)
    source = acquire_source(dataset, source, manifest, progress=progress)
    sha256 = {e.path: e.sha256 for e in manifest}
    layout = [
        {"source": r["path"], "class": r["class"], "split": r["split"], "file": Path(r["path"]).name, "sha256": sha256[r["path"]]}
        for r in rows
    ]
    target = layout_dir(dataset)
    materialise(layout, source, target, progress=progress)
    for split in LAYOUT_SPLITS:  # materialise links train, validation and test; drop what the set lacks
        if split not in dataset.splits and (target / split).is_symlink():
            (target / split).unlink()
    return target
