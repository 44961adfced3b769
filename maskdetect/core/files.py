"""Files: atomic writes (a reader sees the old file or the new one, never half of one), digests, class folders."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) that replaces ``path`` when the block succeeds.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o644)  # mkstemp makes files private
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(payload: dict, path: Path) -> Path:
    """``payload`` as indented JSON at ``path``, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def write_csv(rows, columns: tuple[str, ...], path: Path) -> Path:
    """``rows`` (dicts holding at least ``columns``) as CSV at ``path``, atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def sha256_file(path: Path) -> str:
    """The file's sha256, hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def natural_key(path: str) -> tuple:
    """Sort "2.jpg" before "10.jpg"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path))


def class_files(folder: Path, label: str, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """The files of ``folder/label`` in natural order, hidden ones skipped (and, given ``suffixes``, only those)."""
    directory = Path(folder) / label
    if not directory.is_dir():
        return []
    found = [
        p for p in directory.iterdir()
        if not p.name.startswith(".") and p.is_file() and (suffixes is None or p.suffix.lower() in suffixes)
    ]
    return sorted(found, key=lambda p: natural_key(p.name))
