"""Integration tests on the real dataset: the committed split, download, corruption."""

import csv
import shutil
import tarfile
from collections import defaultdict

import numpy as np
import pytest

from maskdetect import cli
from maskdetect.core import constants
from maskdetect.core.files import sha256_file
from maskdetect.data.boxes import FACES_FILE, compute_faces, read_faces
from maskdetect.data.source import SOURCE_COMMIT, SOURCE_FOLDER, read_manifest, verify_source
from maskdetect.data.split import SPLITS, SPLITS_FILE, SPLIT_FRACTIONS, check_splits_against_manifest, compute_splits, file_level_splits, leaked_test_files, read_splits, split_counts, write_splits
from maskdetect.training.inputs import face_boxes
from tests.samples import photo


def _row_of_every_file(rows):
    """Map every source path (duplicates included) to the row of its kept copy."""
    by_sha = {row["sha256"]: row for row in rows}
    return {entry.path: by_sha[entry.sha256] for entry in read_manifest()}


def _reference_agreement(rows, reference_pairs, reference_groups):
    row_of = _row_of_every_file(rows)
    with open(reference_pairs) as handle:
        pairs = list(csv.DictReader(handle))
    together = sum(
        row_of[f"with_mask/{p['with_mask_file']}"]["group"] == row_of[f"without_mask/{p['without_mask_file']}"]["group"]
        for p in pairs
    )
    splits_of_group = defaultdict(set)
    with open(reference_groups) as handle:
        for r in csv.DictReader(handle):
            splits_of_group[r["group"]].add(row_of[r["path"].split("/", 1)[1]]["split"])
    crossing = [g for g, splits in splits_of_group.items() if len(splits) > 1]
    return together / len(pairs), crossing


def test_committed_split_keeps_reference_groups_whole(reference_pairs, reference_groups):
    rows = read_splits()
    pair_share, crossing = _reference_agreement(rows, reference_pairs, reference_groups)
    assert pair_share >= 0.98
    assert crossing == []


def test_committed_split_is_distinct_complete_and_stratified():
    rows = read_splits()
    manifest = read_manifest()
    assert len(rows) == 1279 == len({e.sha256 for e in manifest})
    assert len({r["sha256"] for r in rows}) == len(rows)
    check_splits_against_manifest(rows, manifest)
    groups = defaultdict(set)
    for row in rows:
        groups[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in groups.values())
    counts = split_counts(rows)
    for label in constants.CLASSES:
        total = sum(counts[s][label] for s in SPLITS)
        for split, fraction in SPLIT_FRACTIONS.items():
            assert abs(counts[split][label] / total - fraction) < 0.02


@pytest.fixture(scope="module")
def recomputed(observations):
    return compute_splits(observations, progress=False)


@pytest.mark.slow
def test_recomputing_the_split_reproduces_the_committed_file(recomputed, tmp_path):
    path = write_splits(recomputed, tmp_path / "splits.csv")
    assert path.read_text() == SPLITS_FILE.read_text()


@pytest.mark.slow
def test_recomputed_grouping_agrees_with_the_reference(recomputed, reference_pairs, reference_groups):
    pair_share, crossing = _reference_agreement(recomputed, reference_pairs, reference_groups)
    assert pair_share >= 0.98
    assert crossing == []


def _materialised(target):
    return {str(p.relative_to(target)): sha256_file(p) for p in target.glob("*/*/*.jpg")}


def _expected(rows):
    return {f"{r['split']}/{r['class']}/{r['file']}": r["sha256"] for r in rows}


def test_download_extract_verify_and_materialise(observations, data_dir, http_server, tmp_path, capsys):
    top = f"observations-{SOURCE_COMMIT}"
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(constants.PROJECT_ROOT / "pyproject.toml", f"{top}/README.md")  # other upstream files
        for label in constants.CLASSES:
            tar.add(observations / label, f"{top}/{SOURCE_FOLDER}/{label}")
    http_server["/observations.tar.gz"] = (200, archive.read_bytes())
    url = f"{http_server.base_url}/observations.tar.gz"

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDETECT_DATA_URL", url)
        assert cli.main(["data", "--quiet"]) == 0
    assert "materialised" in capsys.readouterr().out
    assert verify_source(data_dir / "raw" / "observations", progress=False)
    assert _materialised(data_dir) == _expected(read_splits())
    leftovers = [p.name for p in (*data_dir.iterdir(), *(data_dir / "raw").iterdir()) if p.name.startswith(".")]
    assert leftovers == [".builds"]  # no partial download, staging folder or link

    # Nothing changed: quick, and no second download (the server is gone).
    http_server.clear()
    assert cli.main(["data", "--quiet"]) == 0
    assert "already up to date" in capsys.readouterr().out


def test_corrupted_source_is_named_and_the_earlier_split_stays(observations, data_dir, tmp_path, capsys):
    source = tmp_path / "source"
    shutil.copytree(observations, source)
    assert cli.main(["data", "--quiet", "--source", str(source)]) == 0
    before = _materialised(data_dir)

    victim = source / "without_mask" / "475.jpg"
    victim.write_bytes(victim.read_bytes()[:-100])
    (data_dir / ".builds" / next((data_dir / ".builds").iterdir()).name / ".complete").unlink()  # force a rebuild
    assert cli.main(["data", "--quiet", "--source", str(source)]) == 1
    error = capsys.readouterr().err
    assert "without_mask/475.jpg" in error and "altered" in error and "Nothing was written" in error
    assert _materialised(data_dir) == before


def test_file_level_split_is_written_elsewhere(observations, data_dir):
    assert cli.main(["data", "--quiet", "--strategy", "files", "--source", str(observations)]) == 0
    files = _materialised(data_dir / "files-split")
    assert len(files) == 1376
    assert not (data_dir / "train").exists()


def test_missing_source_folder_is_a_clear_cli_error(data_dir, tmp_path, capsys):
    assert cli.main(["data", "--source", str(tmp_path / "nowhere")]) == 1
    assert "point --source" in capsys.readouterr().err


def test_file_level_split_leaks_and_the_group_split_does_not():
    groups = read_splits()
    leaky = file_level_splits(read_manifest())
    leaked = leaked_test_files(leaky, groups)
    assert len(leaked) / sum(r["split"] == "test" for r in leaky) > 0.5
    assert leaked_test_files(groups, groups) == []


def test_committed_face_boxes_cover_the_split(observations):
    from maskdetect.core.images import decode_image

    rows = read_splits()
    boxes = read_faces()
    with open(FACES_FILE) as handle:
        listed = [r["source"] for r in csv.DictReader(handle)]
    assert listed == [r["source"] for r in rows]
    assert len(boxes) / len(rows) > 0.9
    for source, (xmin, ymin, xmax, ymax) in list(boxes.items())[::50]:
        width, height = decode_image(observations / source).size  # boxes are in displayed pixels
        assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height


def test_committed_face_boxes_are_what_the_subject_detector_finds_now(observations):
    rows = read_splits()[::60]
    with open(FACES_FILE) as handle:
        committed = {r["source"]: r for r in csv.DictReader(handle)}
    found = [{name: str(value) for name, value in row.items()} for row in compute_faces(observations, rows, progress=False)]
    assert sum(r["xmin"] != "" for r in found) >= 0.9 * len(rows)
    assert found == [committed[r["source"]] for r in rows]  # `maskdetect data faces` would write the same rows


def test_face_boxes_place_the_face_in_the_photo_and_in_its_crop(observations, data_dir):
    from maskdetect.core.faces import expand_box
    from maskdetect.core.images import decode_image

    assert cli.main(["data", "--quiet", "--source", str(observations)]) == 0
    boxes = read_faces()
    rows = [r for r in read_splits() if r["split"] == "train"][::4]
    paths = [data_dir / "train" / r["class"] / r["file"] for r in rows]
    whole, cropped = face_boxes(paths), face_boxes(paths, crop_margin=0.2)
    assert whole.shape == cropped.shape == (len(rows), 4)
    checked_unclipped = 0
    for row, in_photo, in_crop in zip(rows, whole, cropped):
        if row["source"] not in boxes:
            assert np.isnan(in_photo).all() and np.isnan(in_crop).all()
            continue
        width, height = decode_image(observations / row["source"]).size
        xmin, ymin, xmax, ymax = boxes[row["source"]]
        np.testing.assert_allclose(in_photo, [xmin / width, ymin / height, xmax / width, ymax / height], rtol=1e-5)
        left, top, right, bottom = expand_box(boxes[row["source"]], 0.2, width, height)
        assert 0 <= in_crop[0] < in_crop[2] <= 1 and 0 <= in_crop[1] < in_crop[3] <= 1
        side = max(xmax - xmin, ymax - ymin)
        if right - left == bottom - top and right - left > 1.39 * side:  # the crop was not clipped
            # the face's longer side spans 1 / (1 + 2 * margin) of the crop, centred
            assert max(in_crop[2] - in_crop[0], in_crop[3] - in_crop[1]) == pytest.approx(1 / 1.4, abs=0.02)
            checked_unclipped += 1
    assert checked_unclipped >= 10
    stranger = data_dir / "stranger.jpg"  # found by content, so a file from elsewhere has no box
    photo(5).save(stranger)
    assert np.isnan(face_boxes([stranger])).all()
