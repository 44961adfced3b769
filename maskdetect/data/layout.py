"""``data/{train,validation,test}/<class>/NNN.jpg``: the split laid out, switched in atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from ..settings import Settings
from .source import DataError, acquire_source, find_source, read_manifest
from .split import SPLITS, check_splits_against_manifest, file_level_splits, read_splits

STAMP = ".complete"


def _rows_digest(rows: list[dict]) -> str:
    text = "\n".join(f"{r['split']}/{r['class']}/{r['file']}={r['sha256']}" for r in rows)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_complete(build: Path, digest: str) -> bool:
    stamp = build / STAMP
    return stamp.is_file() and stamp.read_text().strip() == digest


def materialise(rows: list[dict], source: Path | None, target: Path, progress: bool = True) -> bool:
    """Lay out ``target/{train,validation,test}/<class>/<file>`` from ``rows``.

    Files are copied into ``target/.builds/<digest>/`` and the ``target/current``
    symlink is switched to it in one atomic rename, so an interrupted run leaves the
    previous split in place. ``source=None`` means "verify and find the source only
    if a copy is needed". Returns False when the split was already in place.
    """
    digest = _rows_digest(rows)[:16]
    builds = target / ".builds"
    build = builds / digest
    current = target / "current"
    if not (current.resolve() == build.resolve() and _is_complete(build, digest)):
        if not _is_complete(build, digest):
            source = source if source is not None else acquire_source(progress=progress)
            builds.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=builds, prefix=".staging-"))
            try:
                for row in tqdm(rows, desc=f"copy to {target.name}/", disable=not progress):
                    destination = staging / row["split"] / row["class"] / row["file"]
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(Path(source) / row["source"], destination)
                (staging / STAMP).write_text(digest + "\n")
                if build.exists():
                    shutil.rmtree(build)
                os.replace(staging, build)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        link = target / f".current-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(Path(".builds") / digest)
        os.replace(link, current)
        changed = True
    else:
        changed = False
    for split in SPLITS:
        alias = target / split
        if not alias.is_symlink():
            if alias.exists():
                shutil.rmtree(alias)
            alias.symlink_to(Path("current") / split)
    # Older builds are no longer referenced.
    for old in builds.iterdir():
        if old.name != digest:
            shutil.rmtree(old, ignore_errors=True)
    return changed


def prepare_data(
    source: Path | None = None,
    strategy: str = "groups",
    progress: bool = True,
) -> tuple[Path, list[dict], bool]:
    """``maskdetect data``: materialise the committed group split (or the file split)."""
    if strategy == "groups":
        rows, target = read_splits(), Settings.from_env().data_dir
        check_splits_against_manifest(rows, read_manifest())
        source = find_source(source, progress=progress)  # a download waits until a copy is needed
    elif strategy == "files":
        source = acquire_source(source, progress=progress)
        rows, target = file_level_splits(read_manifest()), Settings.from_env().data_dir / "files-split"
    else:
        raise DataError(f"unknown strategy {strategy!r}; use 'groups' or 'files'")
    changed = materialise(rows, source, target, progress=progress)
    return target, rows, changed
