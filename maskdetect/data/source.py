"""The observations photos: the pinned upstream source, found or downloaded, and verified byte for byte.

``acquire_source`` finds the source folder (``--source``, ``MASKDETECT_DATA_SOURCE``, or a download of
the pinned upstream commit into ``data/raw/``); ``verify_source`` checks every file against the
committed ``data/manifest.csv``.
"""

from __future__ import annotations

import csv
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..core.constants import CLASSES, PROJECT_ROOT
from ..core.fetch import download
from ..core.files import class_files, natural_key, sha256_file, write_csv
from ..settings import Settings

# The public dataset the project is built on, pinned to one commit.
SOURCE_REPOSITORY = "prajnasb/observations"
SOURCE_COMMIT = "cdcf4501bf7fdec7ac8a4ee245e343b187fa53c7"
SOURCE_FOLDER = "experiements/data"  # upstream spelling
SOURCE_ARCHIVE_URL = f"https://codeload.github.com/{SOURCE_REPOSITORY}/tar.gz/{SOURCE_COMMIT}"

MANIFEST = PROJECT_ROOT / "data" / "manifest.csv"
MANIFEST_COLUMNS = ("path", "class", "sha256", "bytes")


class DataError(RuntimeError):
    """The data is not what it should be; the message says what to do."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # "with_mask/475-with-mask.jpg"
    label: str
    sha256: str
    size: int


def read_manifest(path: Path | None = None) -> list[ManifestEntry]:
    path = path or MANIFEST
    with open(path, newline="") as handle:
        return [
            ManifestEntry(row["path"], row["class"], row["sha256"], int(row["bytes"]))
            for row in csv.DictReader(handle)
        ]


def write_manifest(source: Path, path: Path | None = None) -> list[ManifestEntry]:
    """Record the files under ``source`` as the manifest (for maintainers)."""
    entries = [
        ManifestEntry(name, name.split("/")[0], sha256_file(source / name), (source / name).stat().st_size)
        for name in _listed_files(source)
    ]
    rows = [{"path": e.path, "class": e.label, "sha256": e.sha256, "bytes": e.size} for e in entries]
    write_csv(rows, MANIFEST_COLUMNS, path or MANIFEST)
    return entries


def _listed_files(source: Path) -> list[str]:
    """Class-folder files under ``source`` as "class/name", hidden files ignored."""
    return [f"{label}/{p.name}" for label in CLASSES for p in class_files(source, label)]


def name_some(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def counted_problems(found: dict[str, list[str]], limit: int = 10) -> list[str]:
    """``{"missing": [...], ...}`` -> ["3 missing: a, b, c", ...] for the non-empty lists, in order."""
    return [f"{len(names)} {what}: {name_some(names, limit)}" for what, names in found.items() if names]


def verify_source(source: Path, manifest: list[ManifestEntry] | None = None, progress: bool = True) -> list[ManifestEntry]:
    """Check that ``source`` holds exactly the manifest's files, byte for byte."""
    manifest = manifest if manifest is not None else read_manifest()
    source = Path(source)
    missing_folders = [label for label in CLASSES if not (source / label).is_dir()]
    if missing_folders:
        raise DataError(
            f"{source} has no {' or '.join(f'{m}/' for m in missing_folders)} folder; "
            "point --source (or MASKDETECT_DATA_SOURCE) at the folder that holds "
            "with_mask/ and without_mask/"
        )
    expected = {entry.path: entry for entry in manifest}
    present = set(_listed_files(source))
    missing = sorted(set(expected) - present, key=natural_key)
    extra = sorted(present - set(expected), key=natural_key)
    altered = []
    for name in tqdm(sorted(present & set(expected), key=natural_key), desc="verify source", disable=not progress):
        entry, path = expected[name], source / name
        if path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
            altered.append(name)
    problems = counted_problems({"missing": missing, "not in the manifest": extra, "altered (sha256 differs)": altered})
    if problems:
        raise DataError(
            f"the source {source} does not match data/manifest.csv; "
            + "; ".join(problems)
            + ". Nothing was written. Restore the original files (delete data/raw/ to download "
            "them again) or pass an intact copy with --source."
        )
    return manifest


def _archive_member_name(name: str) -> str | None:
    """Map an archive member to "class/file" if it is a dataset image, else None."""
    parts = name.split("/")
    # <repo>-<commit>/experiements/data/<class>/<file>
    folder = SOURCE_FOLDER.split("/")
    if len(parts) != len(folder) + 3 or parts[1 : 1 + len(folder)] != folder:
        return None
    label, filename = parts[-2], parts[-1]
    if label not in CLASSES or not filename or filename.startswith("."):
        return None
    return f"{label}/{filename}"


def extract_archive(archive: Path, destination: Path) -> int:
    """Extract only the dataset folder of a GitHub tar.gz archive into ``destination``."""
    count = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = _archive_member_name(member.name)
            if name is None or not member.isfile():
                continue
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as data, open(target, "wb") as out:
                shutil.copyfileobj(data, out)
            count += 1
    return count


def download_source(destination: Path, url: str | None = None, progress: bool = True) -> Path:
    """Download the pinned upstream archive and extract the dataset folder.

    ``destination`` appears only once it is complete and verified.
    """
    url = url or Settings.from_env().data_url or SOURCE_ARCHIVE_URL
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as work:
        archive = download(url, Path(work) / "observations.tar.gz", progress=progress)
        extracted = Path(work) / "observations"
        try:
            count = extract_archive(archive, extracted)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"the archive from {url} is not a readable tar.gz ({error})") from error
        if count == 0:
            raise DataError(
                f"the archive from {url} has no {SOURCE_FOLDER}/{{with_mask,without_mask}} folder"
            )
        verify_source(extracted, progress=progress)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(extracted, destination)
    return destination


def find_source(source: Path | None = None, progress: bool = True) -> Path | None:
    """The verified local source: given, from the environment, or the earlier download.

    None when there is no local copy (nothing is downloaded here).
    """
    settings = Settings.from_env()
    source = source or settings.data_source
    if source is None:
        cached = settings.data_dir / "raw" / "observations"
        if not cached.is_dir():
            return None
        source = cached
    verify_source(Path(source), progress=progress)
    return Path(source)


def acquire_source(source: Path | None = None, progress: bool = True) -> Path:
    """The verified source folder, downloading the pinned upstream commit if needed."""
    found = find_source(source, progress=progress)
    if found is not None:
        return found
    return download_source(Settings.from_env().data_dir / "raw" / "observations", progress=progress)
