"""Unit tests of the data pipeline on small images the tests create."""

import io
import tarfile
from collections import Counter

import pytest

from maskdetect.core import constants
from maskdetect.core.files import sha256_file
from maskdetect.data.layout import materialise
from maskdetect.data.source import DataError, ManifestEntry, SOURCE_COMMIT, SOURCE_FOLDER, extract_archive, verify_source
from maskdetect.data.split import SPLIT_FRACTIONS, assign_splits, distinct_entries, file_level_splits, number_files, read_splits, split_counts, write_splits
from tests.samples import photo


# ------------------------------------------------------------------ verification


def test_intact_source_verifies(tiny_source):
    source, manifest = tiny_source
    assert verify_source(source, manifest, progress=False) == manifest


def test_missing_extra_and_altered_files_are_named(tiny_source):
    source, manifest = tiny_source
    (source / "with_mask" / "3.jpg").unlink()
    photo(999).save(source / "without_mask" / "stray.jpg")
    with open(source / "without_mask" / "101.jpg", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DataError) as caught:
        verify_source(source, manifest, progress=False)
    message = str(caught.value)
    assert "1 missing: with_mask/3.jpg" in message
    assert "1 not in the manifest: without_mask/stray.jpg" in message
    assert "1 altered (sha256 differs): without_mask/101.jpg" in message
    assert "Nothing was written" in message


def test_same_size_corruption_is_caught_by_the_hash(tiny_source):
    source, manifest = tiny_source
    path = source / "with_mask" / "2.jpg"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match="altered.*with_mask/2.jpg"):
        verify_source(source, manifest, progress=False)


def test_source_without_class_folders_says_where_to_point(tmp_path, tiny_source):
    _, manifest = tiny_source
    with pytest.raises(DataError, match="with_mask/ or without_mask/ folder"):
        verify_source(tmp_path / "empty", manifest, progress=False)


# ----------------------------------------------------------------------- splits


def test_exact_duplicates_keep_the_first_path():
    entries = [
        ManifestEntry("with_mask/10.jpg", "with_mask", "aaa", 1),
        ManifestEntry("with_mask/9.jpg", "with_mask", "aaa", 1),
        ManifestEntry("without_mask/1.jpg", "without_mask", "bbb", 1),
    ]
    kept = distinct_entries(entries)
    assert [e.path for e in kept] == ["with_mask/9.jpg", "without_mask/1.jpg"]


def _groups(n_groups=200, seed=0):
    import random

    rng = random.Random(seed)
    groups = {}
    for g in range(n_groups):
        kind = rng.random()
        counts = Counter()
        counts["with_mask"] += rng.randint(0, 6) if kind < 0.7 else 0
        counts["without_mask"] += rng.randint(1, 6) if kind > 0.3 or not counts else 0
        groups[f"g{g:03d}"] = counts
    return groups


def test_group_split_is_deterministic_balanced_and_keeps_groups_whole():
    groups = _groups()
    first, second = assign_splits(groups), assign_splits(groups)
    assert first == second
    assert set(first) == set(groups)  # every group lands in exactly one split
    for label in constants.CLASSES:
        total = sum(c[label] for c in groups.values())
        for split, fraction in SPLIT_FRACTIONS.items():
            share = sum(c[label] for g, c in groups.items() if first[g] == split) / total
            assert abs(share - fraction) < 0.02, (label, split, share)


def test_group_split_depends_on_the_seed():
    groups = _groups()
    assert assign_splits(groups, seed=1) != assign_splits(groups, seed=2)


def test_files_are_numbered_in_natural_source_order():
    rows = [
        {"source": f"with_mask/{n}.JPG", "class": "with_mask", "split": "train"} for n in (10, 2, 1)
    ] + [{"source": "with_mask/3.jpg", "class": "with_mask", "split": "test"}]
    named = {r["source"]: r["file"] for r in number_files(rows)}
    assert named == {
        "with_mask/1.JPG": "000.jpg",
        "with_mask/2.JPG": "001.jpg",
        "with_mask/10.JPG": "002.jpg",
        "with_mask/3.jpg": "000.jpg",
    }


def test_file_level_split_follows_60_20_20_per_class(tiny_source):
    _, manifest = tiny_source
    rows = file_level_splits(manifest)
    counts = split_counts(rows)
    assert counts == {s: {"with_mask": n, "without_mask": n} for s, n in (("train", 4), ("validation", 1), ("test", 1))}
    assert rows == file_level_splits(manifest)  # seeded


def test_splits_csv_round_trips(tmp_path):
    rows = [{"source": "with_mask/1.jpg", "class": "with_mask", "sha256": "ab", "group": "g1", "split": "train", "file": "000.jpg"}]
    path = write_splits(rows, tmp_path / "splits.csv")
    assert read_splits(path) == rows


# ------------------------------------------------------------------- materialise


def _rows(source, manifest):
    rows = [
        {"source": e.path, "class": e.label, "sha256": e.sha256, "group": e.path, "split": split}
        for e, split in zip(manifest, ["train", "validation", "test"] * 10)
    ]
    return number_files(rows)


def test_materialise_lays_out_the_split_and_is_idempotent(tiny_source, tmp_path):
    source, manifest = tiny_source
    rows, target = _rows(source, manifest), tmp_path / "out"
    assert materialise(rows, source, target, progress=False) is True
    for row in rows:
        copied = target / row["split"] / row["class"] / row["file"]
        assert sha256_file(copied) == row["sha256"]
    assert sum(1 for _ in target.glob("*/*/*.jpg")) == len(rows)
    assert materialise(rows, None, target, progress=False) is False  # nothing to do, no source needed


def test_interrupted_materialise_keeps_the_previous_split(tiny_source, tmp_path):
    source, manifest = tiny_source
    target = tmp_path / "out"
    rows = _rows(source, manifest)
    materialise(rows, source, target, progress=False)
    before = sorted(str(p.relative_to(target)) for p in target.glob("*/*/*.jpg"))
    # A new split whose copy fails half way (a source file vanished).
    changed = [dict(r, split="train") for r in rows]
    (source / changed[-1]["source"]).unlink()
    with pytest.raises(FileNotFoundError):
        materialise(number_files(changed), source, target, progress=False)
    after = sorted(str(p.relative_to(target)) for p in target.glob("*/*/*.jpg"))
    assert after == before
    assert [p.name for p in (target / ".builds").iterdir()] == [(target / "current").resolve().name]


def test_archive_extraction_takes_only_the_dataset_folder(tmp_path, tiny_source):
    source, _ = tiny_source
    top = f"observations-{SOURCE_COMMIT}"
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "with_mask" / "0.jpg", f"{top}/{SOURCE_FOLDER}/with_mask/0.jpg")
        for name in (f"{top}/README.md", f"{top}/{SOURCE_FOLDER}/notes.txt", "../escape.jpg",
                     f"{top}/other/with_mask/x.jpg", f"/{top}/{SOURCE_FOLDER}/../../with_mask/y.jpg"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    destination = tmp_path / "extracted"
    assert extract_archive(archive, destination) == 1
    assert [str(p.relative_to(destination)) for p in destination.rglob("*") if p.is_file()] == ["with_mask/0.jpg"]
    assert not (tmp_path / "escape.jpg").exists()
