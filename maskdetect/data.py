"""The dataset pipeline: source photos -> verified, de-duplicated, grouped split.

* ``acquire_source`` finds the source folder (``--source``, ``MASKDETECT_DATA_SOURCE``,
  or a download of the pinned upstream commit into ``data/raw/``).
* ``verify_source`` checks every file against the committed manifest.
* ``compute_splits`` drops exact duplicates, groups near-duplicates and splits by
  group, stratified by class (``data/splits.csv`` is its committed result).
* ``materialise`` copies the files into ``data/{train,validation,test}/<class>/NNN.jpg``
  and switches to the new copy atomically.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
import shutil
import tarfile
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import config
from .fetch import download
from .files import atomic_path, sha256_file

SPLIT_COLUMNS = ("source", "class", "sha256", "group", "split", "file")
MANIFEST_COLUMNS = ("path", "class", "sha256", "bytes")
STAMP = ".complete"


class DataError(RuntimeError):
    """The data is not what it should be; the message says what to do."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # "with_mask/475-with-mask.jpg"
    label: str
    sha256: str
    size: int


# ----------------------------------------------------------------------------- files


def natural_key(path: str) -> tuple:
    """Sort "2.jpg" before "10.jpg"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path))


def _write_csv_atomic(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# -------------------------------------------------------------------------- manifest


def read_manifest(path: Path | None = None) -> list[ManifestEntry]:
    path = path or config.manifest_path()
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
    _write_csv_atomic(
        path or config.manifest_path(),
        MANIFEST_COLUMNS,
        [{"path": e.path, "class": e.label, "sha256": e.sha256, "bytes": e.size} for e in entries],
    )
    return entries


def _listed_files(source: Path) -> list[str]:
    """Class-folder files under ``source`` as "class/name", hidden files ignored."""
    names = []
    for label in config.CLASSES:
        folder = source / label
        if folder.is_dir():
            names += [f"{label}/{p.name}" for p in folder.iterdir() if not p.name.startswith(".")]
    return sorted(names, key=natural_key)


def _name_some(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def counted_problems(found: dict[str, list[str]], limit: int = 10) -> list[str]:
    """``{"missing": [...], ...}`` -> ["3 missing: a, b, c", ...] for the non-empty lists, in order."""
    return [f"{len(names)} {what}: {_name_some(names, limit)}" for what, names in found.items() if names]


def verify_source(source: Path, manifest: list[ManifestEntry] | None = None, progress: bool = True) -> list[ManifestEntry]:
    """Check that ``source`` holds exactly the manifest's files, byte for byte."""
    manifest = manifest if manifest is not None else read_manifest()
    source = Path(source)
    missing_folders = [label for label in config.CLASSES if not (source / label).is_dir()]
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


# ---------------------------------------------------------------------------- source


def _archive_member_name(name: str) -> str | None:
    """Map an archive member to "class/file" if it is a dataset image, else None."""
    parts = name.split("/")
    # <repo>-<commit>/experiements/data/<class>/<file>
    folder = config.SOURCE_FOLDER.split("/")
    if len(parts) != len(folder) + 3 or parts[1 : 1 + len(folder)] != folder:
        return None
    label, filename = parts[-2], parts[-1]
    if label not in config.CLASSES or not filename or filename.startswith("."):
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
    url = url or os.environ.get("MASKDETECT_DATA_URL") or config.SOURCE_ARCHIVE_URL
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
                f"the archive from {url} has no {config.SOURCE_FOLDER}/{{with_mask,without_mask}} folder"
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
    source = source or config.data_source_from_env()
    if source is None:
        cached = config.data_dir() / "raw" / "observations"
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
    return download_source(config.data_dir() / "raw" / "observations", progress=progress)


# ---------------------------------------------------------------------------- splits


def distinct_entries(manifest: list[ManifestEntry]) -> list[ManifestEntry]:
    """One entry per distinct content: the first by natural path order."""
    seen: set[str] = set()
    kept = []
    for entry in sorted(manifest, key=lambda e: natural_key(e.path)):
        if entry.sha256 not in seen:
            seen.add(entry.sha256)
            kept.append(entry)
    return kept


def assign_splits(
    group_labels: dict[str, Counter],
    fractions: dict[str, float] | None = None,
    seed: int = config.GROUP_SPLIT_SEED,
) -> dict[str, str]:
    """Assign whole groups to splits so each class is split close to ``fractions``.

    Largest groups first (ties in a seeded random order); each goes where its classes
    are furthest below target. Deterministic for a given input and seed.
    """
    fractions = fractions or config.SPLIT_FRACTIONS
    totals = Counter()
    for counts in group_labels.values():
        totals.update(counts)
    targets = {s: {c: fractions[s] * totals[c] for c in totals} for s in fractions}
    current = {s: Counter() for s in fractions}
    rng = random.Random(seed)
    names = sorted(group_labels)
    rng.shuffle(names)
    names.sort(key=lambda g: -sum(group_labels[g].values()))  # stable: keeps the shuffle within ties
    assignment = {}
    for name in names:
        counts = group_labels[name]

        def deficit(split: str) -> float:
            return sum(
                n * (targets[split][c] - current[split][c]) / max(targets[split][c], 1e-9)
                for c, n in counts.items()
            )

        chosen = max(fractions, key=deficit)  # ties: the order of fractions
        assignment[name] = chosen
        current[chosen].update(counts)
    return assignment


def compute_splits(source: Path, progress: bool = True) -> list[dict]:
    """The rows of ``data/splits.csv`` for a verified source."""
    from .near_duplicates import group_images  # heavy imports only when grouping

    manifest = verify_source(source, progress=progress)
    kept = distinct_entries(manifest)
    labels, _ = group_images([source / e.path for e in kept], progress=progress)
    width = len(str(int(labels.max()) + 1))
    group_names = [f"g{int(label):0{width}d}" for label in labels]
    counts: dict[str, Counter] = defaultdict(Counter)
    for entry, group in zip(kept, group_names):
        counts[group][entry.label] += 1
    assignment = assign_splits(counts)
    rows = [
        {"source": e.path, "class": e.label, "sha256": e.sha256, "group": g, "split": assignment[g]}
        for e, g in zip(kept, group_names)
    ]
    return number_files(rows)


def number_files(rows: list[dict]) -> list[dict]:
    """Name files NNN.jpg, ascending in source order within each split and class."""
    counters: Counter = Counter()
    for row in sorted(rows, key=lambda r: natural_key(r["source"])):
        key = (row["split"], row["class"])
        row["file"] = f"{counters[key]:03d}{Path(row['source']).suffix.lower()}"
        counters[key] += 1
    return rows


def file_level_splits(manifest: list[ManifestEntry], seed: int = config.FILE_SPLIT_SEED) -> list[dict]:
    """The original project's split: files shuffled at random, 60/20/20 per class.

    Duplicates and twins land on both sides; kept only to show how leakage
    inflates test accuracy.
    """
    rng = random.Random(seed)
    rows = []
    for label in config.CLASSES:
        entries = sorted((e for e in manifest if e.label == label), key=lambda e: natural_key(e.path))
        rng.shuffle(entries)
        n_train = round(config.SPLIT_FRACTIONS["train"] * len(entries))
        n_validation = round(config.SPLIT_FRACTIONS["validation"] * len(entries))
        for i, entry in enumerate(entries):
            split = "train" if i < n_train else "validation" if i < n_train + n_validation else "test"
            rows.append({"source": entry.path, "class": label, "sha256": entry.sha256, "group": "", "split": split})
    return number_files(rows)


def leaked_test_files(split_rows: list[dict], group_rows: list[dict]) -> list[dict]:
    """Test rows of ``split_rows`` whose near-duplicate group (from ``group_rows``) is in train."""
    group_of = {row["sha256"]: row["group"] for row in group_rows}
    in_train = {group_of[r["sha256"]] for r in split_rows if r["split"] == "train"}
    return [r for r in split_rows if r["split"] == "test" and group_of[r["sha256"]] in in_train]


def read_splits(path: Path | None = None) -> list[dict]:
    path = path or config.splits_path()
    if not path.exists():
        raise DataError(f"{path} is missing; run `maskdetect data split` to compute it")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and set(SPLIT_COLUMNS) - set(rows[0]):
        raise DataError(f"{path} lacks columns {sorted(set(SPLIT_COLUMNS) - set(rows[0]))}")
    return rows


def check_splits_against_manifest(rows: list[dict], manifest: list[ManifestEntry]) -> None:
    known = {entry.path: entry.sha256 for entry in manifest}
    wrong = [r["source"] for r in rows if known.get(r["source"]) != r["sha256"]]
    if wrong:
        raise DataError(
            f"data/splits.csv names files that data/manifest.csv does not hold with that sha256: "
            f"{_name_some(wrong)}; recompute it with `maskdetect data split`"
        )


def write_splits(rows: list[dict], path: Path | None = None) -> Path:
    path = path or config.splits_path()
    _write_csv_atomic(path, SPLIT_COLUMNS, [{c: row[c] for c in SPLIT_COLUMNS} for row in rows])
    return path


def split_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    counts = {s: {c: 0 for c in config.CLASSES} for s in config.SPLITS}
    for row in rows:
        counts[row["split"]][row["class"]] += 1
    return counts


# ---------------------------------------------------------------------- model input


def load_folder(
    folder: Path, size: int, channels: int = 3, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Every image of ``folder/{with_mask,without_mask}`` through the one preprocessing.

    Returns (images, labels, paths); label 1 is with_mask.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .images import preprocess

    folder = Path(folder)
    if not all((folder / label).is_dir() for label in config.CLASSES):
        raise DataError(f"{folder} needs with_mask/ and without_mask/ folders; run `make data` first")
    paths, labels = [], []
    for label in config.CLASSES:
        found = sorted((p for p in (folder / label).iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))
        paths += found
        labels += [1.0 if label == "with_mask" else 0.0] * len(found)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # decoding releases the GIL
        images = list(
            tqdm(
                pool.map(lambda p: preprocess(p, size, channels), paths),
                total=len(paths),
                desc=f"load {folder.name}/",
                disable=not progress,
            )
        )
    return np.stack(images), np.array(labels, np.float32), paths


# -------------------------------------------------------------------------- faces

FACE_COLUMNS = ("source", "xmin", "ymin", "xmax", "ymax", "score")


def compute_faces(source: Path, rows: list[dict], progress: bool = True) -> list[dict]:
    """The largest face the subject detector finds in every kept file (empty box when none)."""
    from .faces import YuNetDetector, largest_face

    detector = YuNetDetector(**config.SUBJECT_DETECTOR).load()
    found = []
    for row in tqdm(rows, desc="detect faces", disable=not progress):
        face = largest_face(detector, Path(source) / row["source"])
        box = face.box if face else ("", "", "", "")
        found.append(
            {"source": row["source"], **dict(zip(FACE_COLUMNS[1:5], box)), "score": f"{face.score:.4f}" if face else ""}
        )
    return found


def write_faces(rows: list[dict], path: Path | None = None) -> Path:
    path = path or config.faces_path()
    _write_csv_atomic(path, FACE_COLUMNS, rows)
    return path


def read_faces(path: Path | None = None) -> dict[str, tuple[int, int, int, int]]:
    """source -> face box, for files where a face was found."""
    path = path or config.faces_path()
    if not path.exists():
        raise DataError(f"{path} is missing; run `maskdetect data faces` to compute it")
    with open(path, newline="") as handle:
        return {
            row["source"]: tuple(int(row[c]) for c in FACE_COLUMNS[1:5])
            for row in csv.DictReader(handle)
            if row["xmin"] != ""
        }


def load_face_crops(
    split: str, size: int, channels: int = 3, margin: float = config.FACE_CROP_MARGIN, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Square crops around the face of every file of ``split`` that has one (data/faces.csv).

    Returns (crops, labels, paths of the files cropped).

    Real faces (``realworld-dev``, a detector's crops of a crowd) are framed tight;
    the training photos are head and shoulders. Crops close that gap.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .faces import crop_face
    from .images import decode_image, preprocess

    boxes = read_faces()
    root = config.data_dir() / split
    rows = [r for r in read_splits() if r["split"] == split and r["source"] in boxes]

    def crop(row):
        image = decode_image(root / row["class"] / row["file"])
        return preprocess(crop_face(image, boxes[row["source"]], margin), size, channels)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        images = list(tqdm(pool.map(crop, rows), total=len(rows), desc=f"crop {split}/", disable=not progress))
    labels = np.array([1.0 if r["class"] == "with_mask" else 0.0 for r in rows], np.float32)
    return np.stack(images), labels, [root / r["class"] / r["file"] for r in rows]


def face_boxes(paths: list[Path], crop_margin: float | None = None) -> np.ndarray:
    """The detected face of each materialised file as (xmin, ymin, xmax, ymax) in [0, 1].

    Relative to the whole image, or with ``crop_margin`` to the crop :func:`load_face_crops`
    takes; NaN where no face was found. Model inputs are squashed to a square, so the
    fractions hold in them too.
    """
    from PIL import Image

    from .faces import expand_box

    boxes = read_faces()
    sources = {r["sha256"]: r["source"] for r in read_splits()}  # by content: any layout, either split
    found = np.full((len(paths), 4), np.nan, np.float32)
    for i, path in enumerate(map(Path, paths)):
        box = boxes.get(sources.get(sha256_file(path), ""))
        if box is None:
            continue
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF rotation by 90 degrees
                width, height = height, width
        left, top, right, bottom = 0, 0, width, height
        if crop_margin is not None:
            left, top, right, bottom = expand_box(box, crop_margin, width, height)
        w, h = right - left, bottom - top
        found[i] = [(box[0] - left) / w, (box[1] - top) / h, (box[2] - left) / w, (box[3] - top) / h]
    return found


# ---------------------------------------------------------------------- materialise


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
    for split in config.SPLITS:
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
        rows, target = read_splits(), config.data_dir()
        check_splits_against_manifest(rows, read_manifest())
        source = find_source(source, progress=progress)  # a download waits until a copy is needed
    elif strategy == "files":
        source = acquire_source(source, progress=progress)
        rows, target = file_level_splits(read_manifest()), config.data_dir() / "files-split"
    else:
        raise DataError(f"unknown strategy {strategy!r}; use 'groups' or 'files'")
    changed = materialise(rows, source, target, progress=progress)
    return target, rows, changed
