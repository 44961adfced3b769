"""Atomic writes: the old file survives a failed write, and nothing is left beside it."""

import pytest

from maskdetect.core.files import atomic_path


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_finished_write_replaces_the_file_readable_by_all(tmp_path):
    target = tmp_path / "sub" / "face_detection.onnx"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".onnx"
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["face_detection.onnx"]
