"""realfaces-train: the committed manifest and split, a local source, the download, the layout, loading."""

import dataclasses
import shutil
import socket
import urllib.parse
from collections import Counter, defaultdict

import numpy as np
import pytest

from maskdetect import cli
from maskdetect.core import constants
from maskdetect.data import realfaces
from maskdetect.data.source import DataError
from maskdetect.training.inputs import load_realfaces
from maskdetect.data.realfaces import REALFACES_MANIFEST, REALFACES_SPLITS_FILE
from tests.samples import SHARED, require


@pytest.fixture(scope="session")
def shared_realfaces():
    """The shared verified copy of realfaces-train (with_mask/, without_mask/, manifest.csv)."""
    return require(SHARED / "realfaces-train")


def _subset_paths():
    """A few files: one singleton per split and class, and one whole augmented group."""
    rows = realfaces.read_realfaces_splits()
    sizes = Counter(r["group"] for r in rows)
    chosen = {}
    for row in rows:
        if sizes[row["group"]] == 1:
            chosen.setdefault((row["split"], row["class"]), row["path"])
    group = min((g for g in sizes if g.startswith("Augmented_")), key=lambda g: (sizes[g], g))
    return sorted(chosen.values()) + [r["path"] for r in rows if r["group"] == group]


@pytest.fixture
def subset(tmp_path, monkeypatch, data_dir):
    """A subset manifest and split in place of the committed ones; no source or URL from the environment."""
    paths = set(_subset_paths())
    for name, committed in (("manifest", REALFACES_MANIFEST), ("splits", REALFACES_SPLITS_FILE)):
        lines = committed.read_text().splitlines(keepends=True)
        kept = [line for line in lines[1:] if line.split(",")[0] in paths]
        (tmp_path / f"realfaces-{name}.csv").write_text(lines[0] + "".join(kept))
    smaller = dataclasses.replace(
        realfaces.REALFACES, manifest=tmp_path / "realfaces-manifest.csv", splits_file=tmp_path / "realfaces-splits.csv"
    )
    monkeypatch.setattr(realfaces, "REALFACES", smaller)
    monkeypatch.delenv(realfaces.SOURCE_ENV, raising=False)
    monkeypatch.delenv(realfaces.URL_ENV, raising=False)
    return realfaces.read_realfaces_manifest()


@pytest.fixture
def local_source(subset, shared_realfaces, tmp_path):
    """The subset's files copied from the shared copy into tmp_path/source."""
    source = tmp_path / "source"
    for entry in subset:
        (source / entry.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_realfaces / entry.path, source / entry.path)
    return source


@pytest.fixture
def upstream(subset, shared_realfaces, http_server, monkeypatch):
    """The pinned commit on 127.0.0.1: each file under its URL-quoted source_path."""
    for entry in subset:
        http_server[f"/pinned/{urllib.parse.quote(entry.source_path)}"] = (200, (shared_realfaces / entry.path).read_bytes())
    monkeypatch.setenv(realfaces.URL_ENV, f"{http_server.base_url}/pinned/")
    return http_server


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


# ---------------------------------------------------------------------------- the committed files


def test_the_committed_manifest_is_the_shared_one_and_describes_the_shared_files(shared_realfaces):
    assert REALFACES_MANIFEST.read_bytes() == (shared_realfaces / "manifest.csv").read_bytes()
    manifest = realfaces.read_realfaces_manifest()
    assert Counter(e.label for e in manifest) == {"with_mask": 872, "without_mask": 872}
    assert all(e.path.startswith(f"{e.label}/") and e.source_sha256 == e.sha256 for e in manifest)
    assert realfaces.verify_realfaces_source(shared_realfaces, progress=False) == shared_realfaces


def test_the_committed_split_lists_the_manifest_and_is_its_recomputation(tmp_path):
    rows = realfaces.read_realfaces_splits()
    manifest = realfaces.read_realfaces_manifest()
    realfaces.check_realfaces_splits(rows, manifest)
    assert sorted(r["path"] for r in rows) == sorted(e.path for e in manifest)
    recomputed = realfaces.write_realfaces_splits(realfaces.compute_realfaces_splits(manifest), tmp_path / "splits.csv")
    assert recomputed.read_text() == REALFACES_SPLITS_FILE.read_text()


def test_the_split_keeps_every_group_on_one_side_and_each_class_near_80_20():
    rows = realfaces.read_realfaces_splits()
    sides = defaultdict(set)
    for row in rows:
        sides[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    augmented = {g for g in sides if g.startswith("Augmented_")}
    assert len(augmented) == 152 and {next(iter(sides[g])) for g in augmented} == {"train", "validation"}
    counts = realfaces.split_counts(rows)
    for label in constants.CLASSES:
        assert counts["validation"][label] > 0
        share = counts["train"][label] / (counts["train"][label] + counts["validation"][label])
        assert 0.78 <= share <= 0.82


def test_a_split_file_that_disagrees_with_the_manifest_names_the_files_and_groups():
    rows = [dict(r) for r in realfaces.read_realfaces_splits()]
    manifest = realfaces.read_realfaces_manifest()
    first_augmented = next(r for r in rows if r["group"].startswith("Augmented_"))
    first_augmented["split"] = "validation" if first_augmented["split"] == "train" else "train"
    without = next(r for r in rows if r["class"] == "without_mask")
    without["group"] = "someone-else"
    with pytest.raises(DataError) as raised:
        realfaces.check_realfaces_splits(rows, manifest)
    message = str(raised.value)
    assert without["path"] in message and first_augmented["group"] in message and "both sides" in message
    assert "write_realfaces_splits" in message


# ---------------------------------------------------------------------------- a local source


def test_a_local_source_is_verified_and_used_in_place(local_source, subset, data_dir, monkeypatch):
    monkeypatch.setenv(realfaces.SOURCE_ENV, str(local_source))
    assert realfaces.acquire_realfaces_source(progress=False) == local_source
    assert not (data_dir / "raw").exists()


def test_a_corrupted_or_missing_local_file_is_named_with_the_fix(local_source, subset, data_dir, monkeypatch):
    altered, missing = subset[0].path, subset[-1].path
    (local_source / altered).write_bytes((local_source / altered).read_bytes()[:-10])
    (local_source / missing).unlink()
    monkeypatch.setenv(realfaces.SOURCE_ENV, str(local_source))
    with pytest.raises(DataError) as raised:
        realfaces.prepare_realfaces(progress=False)
    message = str(raised.value)
    assert f"altered (sha256 differs): {altered}" in message and f"missing: {missing}" in message
    assert str(local_source) in message and realfaces.SOURCE_ENV in message
    assert not (data_dir / "realfaces").exists()


# ---------------------------------------------------------------------------- the download


def test_the_download_fetches_quoted_source_paths_verifies_and_resumes(upstream, subset, data_dir):
    folder = realfaces.download_realfaces(progress=False)
    assert folder == data_dir / "raw" / "realfaces-train"
    assert _files(folder) == sorted(e.path for e in subset)
    assert (folder / ".complete").is_file()
    assert all("%20" in path and " " not in path for path, _ in upstream.requests)
    assert realfaces.find_realfaces_source(progress=False) == folder

    # Resumable: only the missing file is fetched again.
    upstream.requests.clear()
    (folder / subset[2].path).unlink()
    realfaces.download_realfaces(progress=False)
    assert [path for path, _ in upstream.requests] == [f"/pinned/{urllib.parse.quote(subset[2].source_path)}"]
    assert _files(folder) == sorted(e.path for e in subset)


def test_a_downloaded_file_with_the_wrong_sha256_is_named_and_not_kept(upstream, subset, data_dir):
    victim = subset[1]
    upstream[f"/pinned/{urllib.parse.quote(victim.source_path)}"] = (200, b"not the pinned bytes")
    with pytest.raises(DataError) as raised:
        realfaces.acquire_realfaces_source(progress=False)
    assert victim.path in str(raised.value) and "not kept" in str(raised.value)
    folder = data_dir / "raw" / "realfaces-train"
    assert not (folder / victim.path).exists()
    assert not (folder / ".complete").exists()
    assert realfaces.find_realfaces_source(progress=False) is None  # incomplete: not a source


def test_an_unreachable_host_says_to_check_the_network_or_use_a_local_copy(subset, data_dir, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(realfaces.URL_ENV, f"http://127.0.0.1:{port}/pinned/")
    with pytest.raises(realfaces.RealfacesUnreachable) as raised:
        realfaces.download_realfaces(progress=False)
    message = str(raised.value)
    assert "Check the network" in message and realfaces.SOURCE_ENV in message
    assert "MASKDETECT_DATA_SOURCE" not in message  # the observations' hint would mislead
    assert _files(data_dir) == []


# ---------------------------------------------------------------------------- layout and loading


def test_materialising_lays_out_train_and_validation_by_class_and_skips_unchanged(local_source, subset, data_dir, monkeypatch):
    monkeypatch.setenv(realfaces.SOURCE_ENV, str(local_source))
    target = realfaces.prepare_realfaces(progress=False)
    assert target == data_dir / "realfaces"
    expected = sorted(f"{r['split']}/{r['path']}" for r in realfaces.read_realfaces_splits())
    laid_out = [p for split in ("train", "validation", "test") for p in target.glob(f"{split}/*/*")]
    assert sorted(str(p.relative_to(target)) for p in laid_out) == expected
    assert {p.name for p in target.iterdir() if not p.name.startswith(".")} == {"current", "train", "validation"}
    first = target / expected[0]
    assert first.read_bytes() == (local_source / expected[0].split("/", 1)[1]).read_bytes()
    inode = first.stat().st_ino
    realfaces.prepare_realfaces(progress=False)
    assert first.stat().st_ino == inode  # nothing changed, nothing copied


def test_load_realfaces_gives_preprocessed_images_and_labels(local_source, subset, data_dir, monkeypatch):
    monkeypatch.setenv(realfaces.SOURCE_ENV, str(local_source))
    realfaces.prepare_realfaces(progress=False)
    for split in realfaces.SPLITS:
        images, labels, paths = load_realfaces(split, 32, progress=False)
        rows = [r for r in realfaces.read_realfaces_splits() if r["split"] == split]
        assert images.shape == (len(rows), 32, 32, 3) and images.dtype == np.float32
        assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.05
        assert labels.tolist() == [constants.LABELS.index(p.parent.name) for p in paths]  # label indices: 0 with_mask, 2 without_mask
        assert sorted(labels.tolist()) == sorted(constants.LABELS.index(r["class"]) for r in rows)
    gray, _, _ = load_realfaces("train", 16, channels=1, progress=False)
    assert gray.shape[1:] == (16, 16, 1)
    with pytest.raises(DataError, match="no 'test' split"):
        load_realfaces("test", 32, progress=False)


def test_maskdetect_data_lays_out_realfaces_after_the_observations(observations, local_source, subset, data_dir, monkeypatch, capsys):
    monkeypatch.setenv(realfaces.SOURCE_ENV, str(local_source))
    assert cli.main(["data", "--quiet", "--source", str(observations)]) == 0
    out = capsys.readouterr().out
    assert "realfaces-train (real face crops, verified)" in out and (data_dir / "realfaces" / "validation").is_dir()

    # Offline with nothing downloaded: the observations still succeed and the skip says why.
    monkeypatch.delenv(realfaces.SOURCE_ENV)
    monkeypatch.setenv(realfaces.URL_ENV, "http://127.0.0.1:9/pinned/")
    assert cli.main(["data", "--quiet", "--source", str(observations)]) == 0
    captured = capsys.readouterr()
    assert "already up to date" in captured.out
    assert "realfaces-train skipped" in captured.err and realfaces.SOURCE_ENV in captured.err
