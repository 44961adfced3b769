"""Clips at 1, 2 and 5 frames a second and at strides 1 to 3, through POST /detect and `maskdetect watch`.

Every clip shows one face throughout and another only in the frames one processed frame stands for:
the answer is a 200 (exit 0) with one person, never a 500 and never a person seen in a single processed
frame. White squares are the faces (SquareDetector, FixedPredictor: tests/samples.py), so the clips are
small and the tests fast; tests/test_tracking.py checks the tracker itself at these rates.
"""

import json

import pytest

from maskdetect import cli
from maskdetect.core import constants
from maskdetect.core.crowd import CrowdAnalyzer
from maskdetect.service import create_app
from tests.samples import FixedPredictor, SquareDetector, squares_clip

SIZE = (160, 120)
FRAMES = 15
FLASH = 6  # the first frame of the face seen once: processed at strides 1, 2 and 3


def faces(stride: int, processed: int = 1) -> list[list[tuple[int, int, int, int]]]:
    """Per frame: a face moving 2 px a frame throughout, and one in view from FLASH for ``processed`` processed frames only."""
    flash = range(FLASH, FLASH + processed * stride)
    return [[(20 + 2 * i, 40, 56 + 2 * i, 76)] + ([(110, 40, 146, 76)] if i in flash else []) for i in range(FRAMES)]


@pytest.fixture(scope="module")
def client():
    app = create_app({"TESTING": True, "MODEL_PATH": str(constants.PROJECT_ROOT / "deployment" / constants.SERVED_FILE)})
    app.extensions["maskdetect.analyzer"] = CrowdAnalyzer(SquareDetector(), FixedPredictor())
    return app.test_client()


@pytest.mark.parametrize("fps, stride", [(1, 1), (2, 1), (5, 1), (20, 2), (30, 3)])
def test_a_clip_at_any_rate_is_answered_with_its_people_and_no_person_from_a_single_processed_frame(client, tmp_path, fps, stride):
    clip = squares_clip(tmp_path / "clip.mp4", fps, faces(stride), SIZE)
    answer = client.post("/detect?frames=1", data=clip.read_bytes(), content_type="video/mp4")
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    assert (summary["fps"], summary["stride"], summary["frames"]) == (fps, stride, -(-FRAMES // stride))
    assert summary["unique_people"] == 1 and len(summary["people"]) == 1
    assert summary["seconds"] == pytest.approx(FRAMES / fps, abs=stride / fps)
    assert [frame["frame"] for frame in summary["tracked_frames"]] == list(range(0, FRAMES, stride))


@pytest.fixture
def watch_with_squares(monkeypatch):
    """`maskdetect watch` with SquareDetector and FixedPredictor in place of YuNet and the model."""
    monkeypatch.setattr(cli, "_detector", lambda args: (SquareDetector(), {}))
    monkeypatch.setattr(cli, "_crowd_predictor", lambda args: FixedPredictor())


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("fps", [1, 2, 5])
def test_watch_tracks_a_folder_of_frames_at_any_rate_and_stride_without_a_person_from_a_single_processed_frame(
    watch_with_squares, tmp_path, capsys, fps, stride
):
    for processed, people in ((1, 1), (3, 2)):  # seen in 3 processed frames, the second face is a person
        folder = squares_clip(tmp_path / f"frames-{processed}", fps, faces(stride, processed), SIZE)
        assert cli.main(["watch", str(folder), "--fps", str(fps), "--stride", str(stride), "--quiet"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (summary["fps"], summary["stride"], summary["frames"]) == (fps, stride, -(-FRAMES // stride))
        assert summary["unique_people"] == people


@pytest.mark.parametrize("fps, stride", [(2, 2), (5, 3)])
def test_watch_tracks_a_clip_at_a_few_frames_a_second_and_writes_every_frame(watch_with_squares, tmp_path, capsys, fps, stride):
    clip = squares_clip(tmp_path / "clip.mp4", fps, faces(stride), SIZE)
    out = tmp_path / "annotated.mp4"
    assert cli.main(["watch", str(clip), "--stride", str(stride), "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["fps"], summary["stride"], summary["unique_people"]) == (fps, stride, 1)
    assert out.is_file()
