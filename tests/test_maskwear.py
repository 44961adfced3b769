"""maskwear-train: the committed manifest, split and face boxes, a local copy, the download, the layout."""

import csv
import dataclasses
import shutil
import socket
import urllib.parse
from collections import Counter, defaultdict

import pytest
from PIL import Image

from maskdetect import cli
from maskdetect.data import maskwear, pinned
from maskdetect.data.maskwear import MASKWEAR
from maskdetect.data.source import DataError
from tests.samples import SHARED, require

CLASSES = ("with_mask", "incorrect", "without_mask")


@pytest.fixture(scope="session")
def shared_maskwear():
    """The shared verified copy of maskwear-train (three class folders and manifest.csv)."""
    return require(SHARED / "maskwear-train")


def _subset_paths():
    """One file per split and class, and one whose upstream path holds spaces."""
    manifest = maskwear.read_maskwear_manifest()
    chosen = {}
    for row in maskwear.read_maskwear_splits():
        chosen.setdefault((row["split"], row["class"]), row["path"])
    spaced = next(e.path for e in manifest if " " in e.source_path and e.path not in chosen.values())
    return sorted(chosen.values()) + [spaced]


@pytest.fixture
def subset(tmp_path, monkeypatch, data_dir):
    """A subset manifest and split in place of the committed ones; no local copy or URL from the environment."""
    paths = set(_subset_paths())
    for name, committed in (("manifest", MASKWEAR.manifest), ("splits", MASKWEAR.splits_file)):
        lines = committed.read_text().splitlines(keepends=True)
        kept = [line for line in lines[1:] if line.split(",")[0] in paths]
        (tmp_path / f"maskwear-{name}.csv").write_text(lines[0] + "".join(kept))
    smaller = dataclasses.replace(
        MASKWEAR, manifest=tmp_path / "maskwear-manifest.csv", splits_file=tmp_path / "maskwear-splits.csv"
    )
    monkeypatch.setattr(maskwear, "MASKWEAR", smaller)
    monkeypatch.delenv(maskwear.SOURCE_ENV, raising=False)
    monkeypatch.delenv(maskwear.URL_ENV, raising=False)
    return maskwear.read_maskwear_manifest()


@pytest.fixture
def local_copy(subset, shared_maskwear, tmp_path):
    """The subset's files copied from the shared copy into tmp_path/copy."""
    copy = tmp_path / "copy"
    for entry in subset:
        (copy / entry.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_maskwear / entry.path, copy / entry.path)
    return copy


def _route(entry):
    return f"/{entry.source_repo}/{entry.source_commit}/{urllib.parse.quote(entry.source_path)}"


@pytest.fixture
def upstream(subset, shared_maskwear, http_server, monkeypatch):
    """The five pinned repositories on 127.0.0.1: each file at /<repo>/<commit>/<quoted source_path>."""
    for entry in subset:
        http_server[_route(entry)] = (200, (shared_maskwear / entry.path).read_bytes())
    monkeypatch.setenv(maskwear.URL_ENV, http_server.base_url)
    return http_server


def _download(**kwargs):
    return pinned.download_files(maskwear.MASKWEAR, progress=False, **kwargs)


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _refused_url():
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# ---------------------------------------------------------------------------- the committed files


def test_the_committed_manifest_is_the_shared_one_with_three_classes_from_five_repositories(shared_maskwear):
    assert MASKWEAR.manifest.read_bytes() == (shared_maskwear / "manifest.csv").read_bytes()
    manifest = maskwear.read_maskwear_manifest()
    assert Counter(e.label for e in manifest) == {"with_mask": 1264, "incorrect": 926, "without_mask": 1244}
    assert MASKWEAR.classes == CLASSES
    assert len({(e.source_repo, e.source_commit) for e in manifest}) == 5
    assert all(e.path.startswith(f"{e.label}/") and e.source_sha256 == e.sha256 for e in manifest)


def test_the_committed_split_is_the_recomputation_of_the_manifest(tmp_path):
    rows = maskwear.read_maskwear_splits()
    pinned.check_splits(MASKWEAR, rows, maskwear.read_maskwear_manifest())
    recomputed = maskwear.write_maskwear_splits(maskwear.compute_maskwear_splits(), tmp_path / "splits.csv")
    assert recomputed.read_text() == MASKWEAR.splits_file.read_text()


def test_no_group_is_in_two_splits_and_every_class_and_origin_is_split_about_70_15_15():
    rows = maskwear.read_maskwear_splits()
    origin = {e.path: e.origin for e in maskwear.read_maskwear_manifest()}
    sides = defaultdict(set)
    for row in rows:
        sides[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    counts = Counter((row["class"], origin[row["path"]], row["split"]) for row in rows)
    strata = {(label, kind) for label, kind, _ in counts}
    assert len(strata) == 11 and {label for label, _ in strata} == set(CLASSES)
    for stratum in strata:
        total = sum(counts[(*stratum, split)] for split in maskwear.SPLITS)
        for split, share in maskwear.MASKWEAR_SPLIT_FRACTIONS.items():
            assert counts[(*stratum, split)] > 0, (stratum, split)
            assert abs(counts[(*stratum, split)] / total - share) < 0.03, (stratum, split)


def test_a_split_file_with_a_group_in_two_splits_is_refused_with_the_command_that_recomputes_it():
    rows = [dict(r) for r in maskwear.read_maskwear_splits()]
    by_group = defaultdict(list)
    for row in rows:
        by_group[row["group"]].append(row)
    group = next(g for g, members in by_group.items() if len(members) > 1)
    by_group[group][0]["split"] = "test" if by_group[group][0]["split"] != "test" else "train"
    with pytest.raises(DataError) as raised:
        pinned.check_splits(MASKWEAR, rows, maskwear.read_maskwear_manifest())
    assert group in str(raised.value) and "more than one split" in str(raised.value)
    assert "maskdetect data split --set maskwear" in str(raised.value)


def test_the_committed_face_boxes_list_exactly_the_manifest_files_with_boxes_inside_each_image():
    with open(maskwear.MASKWEAR_FACES_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    manifest = {e.path: e for e in maskwear.read_maskwear_manifest()}
    assert [r["path"] for r in rows] == list(manifest)
    boxes = maskwear.read_maskwear_faces()
    assert set(boxes) == {r["path"] for r in rows if r["xmin"] != ""}
    assert len(boxes) / len(manifest) > 0.99
    with open(MASKWEAR.manifest, newline="") as handle:
        size = {r["path"]: (int(r["width"]), int(r["height"])) for r in csv.DictReader(handle)}
    for path, (xmin, ymin, xmax, ymax) in boxes.items():
        width, height = size[path]
        assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height, path


def test_maskdetect_data_faces_recomputes_the_committed_boxes(local_copy, subset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(maskwear.SOURCE_ENV, str(local_copy))
    out = tmp_path / "faces.csv"
    assert cli.main(["data", "faces", "--set", "maskwear", "--quiet", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    committed = {row["path"]: row for row in csv.DictReader(maskwear.MASKWEAR_FACES_FILE.open(newline=""))}
    recomputed = list(csv.DictReader(out.open(newline="")))
    assert [r["path"] for r in recomputed] == [e.path for e in subset]
    assert recomputed == [committed[r["path"]] for r in recomputed]


# ---------------------------------------------------------------------------- a local copy


def test_a_local_copy_is_verified_and_used_in_place(local_copy, subset, data_dir, monkeypatch):
    monkeypatch.setenv(maskwear.SOURCE_ENV, str(local_copy))
    assert pinned.acquire_source(maskwear.MASKWEAR, progress=False) == local_copy
    assert not (data_dir / "raw").exists()


def test_a_missing_or_altered_local_file_is_a_data_error_naming_it_and_the_variable(local_copy, subset, data_dir, monkeypatch):
    altered, missing = subset[0].path, subset[-1].path
    (local_copy / altered).write_bytes((local_copy / altered).read_bytes()[:-10])
    (local_copy / missing).unlink()
    monkeypatch.setenv(maskwear.SOURCE_ENV, str(local_copy))
    with pytest.raises(DataError) as raised:
        maskwear.prepare_maskwear(progress=False)
    message = str(raised.value)
    assert f"altered (sha256 differs): {altered}" in message and f"missing: {missing}" in message
    assert str(local_copy) in message and maskwear.SOURCE_ENV in message
    assert not (data_dir / "maskwear").exists()


# ---------------------------------------------------------------------------- the download


def test_the_download_fetches_each_file_from_its_repository_and_commit_and_verifies_it(upstream, subset, data_dir):
    folder = _download()
    assert folder == data_dir / "raw" / "maskwear-train"
    assert _files(folder) == sorted(e.path for e in subset)
    assert (folder / ".complete").is_file()
    assert sorted(path for path, _ in upstream.requests) == sorted(_route(e) for e in subset)
    assert any("%20" in path for path, _ in upstream.requests)
    assert pinned.find_source(maskwear.MASKWEAR, progress=False) == folder


def test_a_downloaded_file_with_the_wrong_sha256_is_named_and_not_kept(upstream, subset, data_dir):
    victim = subset[1]
    upstream[_route(victim)] = (200, b"not the pinned bytes")
    with pytest.raises(DataError) as raised:
        pinned.acquire_source(maskwear.MASKWEAR, progress=False)
    message = str(raised.value)
    assert victim.path in message and "not kept" in message and maskwear.URL_ENV in message
    folder = data_dir / "raw" / "maskwear-train"
    assert not (folder / victim.path).exists() and not (folder / ".complete").exists()
    assert len(_files(folder)) == len(subset) - 1  # the others are kept
    assert pinned.find_source(maskwear.MASKWEAR, progress=False) is None  # incomplete: not a source


def test_an_interrupted_download_resumes_with_only_the_missing_file(upstream, subset, shared_maskwear, data_dir):
    victim = subset[2]
    body = (shared_maskwear / victim.path).read_bytes()
    upstream[_route(victim)] = (200, body[: len(body) // 2], len(body))  # the connection closes halfway
    with pytest.raises(pinned.SourceUnreachable) as raised:
        _download()
    assert victim.path in str(raised.value) and "the next run resumes" in str(raised.value)
    folder = data_dir / "raw" / "maskwear-train"
    assert _files(folder) == sorted(e.path for e in subset if e != victim)

    upstream.requests.clear()
    upstream[_route(victim)] = (200, body)
    _download()
    assert [path for path, _ in upstream.requests] == [_route(victim)]
    assert _files(folder) == sorted(e.path for e in subset) and (folder / ".complete").is_file()


def test_a_refused_connection_names_the_local_copy_variable_and_keeps_the_downloaded_files(upstream, subset, data_dir, monkeypatch):
    folder = _download()
    (folder / subset[0].path).unlink()
    monkeypatch.setenv(maskwear.URL_ENV, _refused_url())
    with pytest.raises(pinned.SourceUnreachable) as raised:
        _download()
    message = str(raised.value)
    assert "Check the network" in message and maskwear.SOURCE_ENV in message
    assert f"{len(subset) - 1} of {len(subset)} files" in message
    assert _files(folder) == sorted(e.path for e in subset[1:]) and not (folder / ".complete").exists()


# ---------------------------------------------------------------------------- the layout


def test_the_layout_puts_each_file_under_its_split_and_class(local_copy, subset, data_dir, monkeypatch):
    monkeypatch.setenv(maskwear.SOURCE_ENV, str(local_copy))
    target = maskwear.prepare_maskwear(progress=False)
    assert target == maskwear.maskwear_dir() == data_dir / "maskwear"
    rows = maskwear.read_maskwear_splits()
    expected = sorted(f"{r['split']}/{r['path']}" for r in rows)
    laid_out = sorted(str(p.relative_to(target)) for split in maskwear.SPLITS for p in target.glob(f"{split}/*/*"))
    assert laid_out == expected
    assert {r["split"] for r in rows} == set(maskwear.SPLITS) and {r["class"] for r in rows} == set(CLASSES)
    first = target / expected[0]
    assert first.read_bytes() == (local_copy / expected[0].split("/", 1)[1]).read_bytes()
    with Image.open(first) as image:
        image.verify()


def test_maskdetect_data_lays_out_maskwear_after_realfaces_and_skips_it_offline(observations, local_copy, subset, data_dir, monkeypatch, capsys):
    monkeypatch.setenv(maskwear.SOURCE_ENV, str(local_copy))
    assert cli.main(["data", "--quiet", "--source", str(observations)]) == 0
    out = capsys.readouterr().out
    assert out.index("realfaces-train (") < out.index("maskwear-train (")
    counts = out[out.index("maskwear-train ("):].splitlines()
    assert counts[1].split() == ["split", *CLASSES, "total"] and counts[2].split()[0] == "train"
    assert (data_dir / "maskwear" / "test").is_dir()

    monkeypatch.delenv(maskwear.SOURCE_ENV)
    monkeypatch.setenv(maskwear.URL_ENV, _refused_url())
    shutil.rmtree(data_dir / "raw", ignore_errors=True)
    assert cli.main(["data", "--quiet", "--source", str(observations)]) == 0
    captured = capsys.readouterr()
    assert "maskwear-train skipped" in captured.err and maskwear.SOURCE_ENV in captured.err
