"""The leakage-safe split: exact duplicates dropped, near-duplicates grouped, whole groups to train,
validation or test, stratified by class (``data/splits.csv`` is its committed result)."""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from pathlib import Path

from ..core.constants import CLASSES, PROJECT_ROOT
from ..core.files import natural_key, write_csv
from .near_duplicates import group_images
from .source import DataError, ManifestEntry, name_some, verify_source

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}
# Seeds: one per random decision, so changing one never reshuffles another.
GROUP_SPLIT_SEED = 20201125
FILE_SPLIT_SEED = 42
SPLITS_FILE = PROJECT_ROOT / "data" / "splits.csv"
SPLIT_COLUMNS = ("source", "class", "sha256", "group", "split", "file")


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
    seed: int = GROUP_SPLIT_SEED,
) -> dict[str, str]:
    """Assign whole groups to splits so each class is split close to ``fractions``.

    Largest groups first (ties in a seeded random order); each goes where its classes
    are furthest below target. Deterministic for a given input and seed.
    """
    fractions = fractions or SPLIT_FRACTIONS
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


def file_level_splits(manifest: list[ManifestEntry], seed: int = FILE_SPLIT_SEED) -> list[dict]:
    """The original project's split: files shuffled at random, 60/20/20 per class.

    Duplicates and twins land on both sides; kept only to show how leakage
    inflates test accuracy.
    """
    rng = random.Random(seed)
    rows = []
    for label in CLASSES:
        entries = sorted((e for e in manifest if e.label == label), key=lambda e: natural_key(e.path))
        rng.shuffle(entries)
        n_train = round(SPLIT_FRACTIONS["train"] * len(entries))
        n_validation = round(SPLIT_FRACTIONS["validation"] * len(entries))
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
    path = path or SPLITS_FILE
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
            f"{name_some(wrong)}; recompute it with `maskdetect data split`"
        )


def write_splits(rows: list[dict], path: Path | None = None) -> Path:
    path = path or SPLITS_FILE
    write_csv(rows, SPLIT_COLUMNS, path)
    return path


def split_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    counts = {s: {c: 0 for c in CLASSES} for s in SPLITS}
    for row in rows:
        counts[row["split"]][row["class"]] += 1
    return counts
