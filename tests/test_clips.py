"""Synthetic labelled clips: the video, its truth, and the tracking measures on hand-made tracker output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.samples import SHARED, photo, require
from maskdetect.core.tracking import FrameResult, TrackedFace
from maskdetect.training import clips
from maskdetect.training.clips import (
    TruthFace,
    TruthFrame,
    camera_path,
    evaluate_tracking,
    make_clip,
    make_clips,
    read_truth,
    write_truth,
)
from maskdetect.training.scenes import Labelled, read_labels

SCENES = SHARED / "scenes-dev"


def read_frames(path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    return frames, fps


def longer_side(box) -> int:
    return max(box[2] - box[0], box[3] - box[1])


@pytest.fixture
def grid_photo(tmp_path):
    """A 400x225 synthetic photo with a 6x3 grid of 30 px 'faces', alternately masked."""
    path = tmp_path / "grid.jpg"
    photo(3, size=(400, 225)).save(path)
    faces = [
        Labelled((x, y, x + 30, y + 30), "with_mask" if (x + y) % 2 else "without_mask")
        for y in (20, 95, 170) for x in (10, 80, 150, 220, 290, 360)
    ]
    return path, faces


# The clip and its truth.


def test_a_clip_of_a_real_scene_has_the_promised_frames_and_its_truth_boxes_follow_the_faces(tmp_path):
    image = require(SCENES / "images" / "scene000.jpg")
    faces = read_labels(SCENES / "labels.csv")["scene000.jpg"]
    truth = make_clip(image, faces, tmp_path / "clip.mp4", size=(480, 270), seconds=2.0, fps=10.0, motion="pan-zoom")

    frames, fps = read_frames(tmp_path / "clip.mp4")
    assert len(frames) == len(truth) == 20 and fps == 10.0
    assert all(frame.shape == (270, 480, 3) for frame in frames)
    assert [f.index for f in truth] == list(range(20)) and truth[10].t == pytest.approx(1.0)

    source = cv2.imread(str(image))
    rng = np.random.default_rng(0)
    own, elsewhere = [], []
    for frame, expected in zip(frames, truth):
        for face in expected.faces:
            xmin, ymin, xmax, ymax = face.box
            if longer_side(face.box) < 24 or xmin == 0 or ymin == 0 or xmax == 480 or ymax == 270:
                continue  # small or clipped: the photo crop would not be the same patch
            labelled = faces[face.person].box
            crop = source[labelled[1]:labelled[3], labelled[0]:labelled[2]]
            reference = cv2.resize(crop, (xmax - xmin, ymax - ymin)).astype(float)
            x, y = rng.integers(0, 480 - (xmax - xmin)), rng.integers(0, 270 - (ymax - ymin))
            own.append(np.abs(frame[ymin:ymax, xmin:xmax] - reference).mean())
            elsewhere.append(np.abs(frame[y:y + ymax - ymin, x:x + xmax - xmin] - reference).mean())
    assert len(own) >= 20
    assert np.mean(own) < 12 and np.mean(own) < np.mean(elsewhere) / 3


def test_a_face_is_in_a_frames_truth_exactly_when_at_least_half_of_it_is_in_view(tmp_path, grid_photo):
    image, faces = grid_photo
    truth = make_clip(image, faces, tmp_path / "pan.mp4", size=(320, 180), seconds=2.0, fps=10.0, motion="pan", seed=1)
    windows = camera_path((400, 225), (320, 180), 20, "pan", seed=1, faces=[f.box for f in faces])

    seen_counts = []
    for frame, (x0, y0, width) in zip(truth, windows):
        height = width * 180 / 320
        present = {face.person: face for face in frame.faces}
        seen_counts.append(len(present))
        for person, labelled in enumerate(faces):
            xmin, ymin, xmax, ymax = labelled.box
            inside = max(0, min(xmax, x0 + width) - max(xmin, x0)) * max(0, min(ymax, y0 + height) - max(ymin, y0)) / 900
            if abs(inside - 0.5) > 0.05:  # away from the rounding at the threshold
                assert (person in present) == (inside > 0.5)
            if person in present:
                assert present[person].label == labelled.label
                box = present[person].box
                assert 0 <= box[0] < box[2] <= 320 and 0 <= box[1] < box[3] <= 180
    assert max(seen_counts) < len(faces)  # the pan window never shows the whole photo
    people = [{f.person for f in frame.faces} for frame in truth]
    assert people[0] != people[-1]  # some faces left the view and others came in


def test_the_same_seed_films_the_same_clip_and_another_seed_another(tmp_path, grid_photo):
    image, faces = grid_photo
    options = dict(size=(320, 180), seconds=1.0, fps=10.0, motion="zoom")
    first = make_clip(image, faces, tmp_path / "a.mp4", seed=4, **options)
    assert make_clip(image, faces, tmp_path / "b.mp4", seed=4, **options) == first
    assert make_clip(image, faces, tmp_path / "c.mp4", seed=5, **options) != first


def test_a_clip_that_cannot_be_written_raises_and_leaves_no_file(tmp_path, grid_photo, monkeypatch):
    image, faces = grid_photo

    class ClosedWriter:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

    monkeypatch.setattr(clips.cv2, "VideoWriter", ClosedWriter)
    with pytest.raises(RuntimeError, match="mp4v"):
        make_clip(image, faces, tmp_path / "clip.mp4", seconds=1.0)
    assert list(tmp_path.glob("*.mp4")) == []


def test_an_unknown_motion_is_refused():
    with pytest.raises(ValueError, match="tilt"):
        camera_path((400, 225), (640, 360), 10, "tilt")


def test_truth_round_trips_through_csv_empty_frames_included(tmp_path):
    frames = [
        TruthFrame(0, 0.0, [TruthFace(0, (1, 2, 30, 40), "with_mask"), TruthFace(3, (100, 5, 140, 61), "incorrect")]),
        TruthFrame(1, 0.04, []),
        TruthFrame(2, 0.08, [TruthFace(3, (101, 6, 141, 62), "without_mask")]),
    ]
    assert read_truth(write_truth(frames, tmp_path / "truth.csv")) == frames


def test_make_clips_picks_scenes_with_enough_large_faces_varies_the_motion_and_repeats_with_the_seed(tmp_path):
    images = require(SCENES / "images")
    options = dict(count=3, min_faces=3, min_side=24, seed=7, size=(320, 180), seconds=0.4, fps=10.0)
    made = make_clips(images, SCENES / "labels.csv", tmp_path / "a", **options)

    assert [clip.name.split("-", 1)[1] for clip, _ in made] == ["pan.mp4", "zoom.mp4", "pan-zoom.mp4"]
    for clip, truth_path in made:
        assert clip.is_file() and truth_path == clip.with_suffix(".csv")
        truth = read_truth(truth_path)
        assert len(truth) == 4 and len(read_frames(clip)[0]) == 4
        assert len({f.person for frame in truth for f in frame.faces if longer_side(f.box) >= 24}) >= 3
    again = make_clips(images, SCENES / "labels.csv", tmp_path / "b", **options)
    assert [clip.name for clip, _ in again] == [clip.name for clip, _ in made]


# The measures, on hand-made tracker output: two people walking right over ten frames.


def people_truth(frames: int = 10) -> list[TruthFrame]:
    return [
        TruthFrame(k, k / 25, [
            TruthFace(0, (10 + 2 * k, 10, 50 + 2 * k, 50), "with_mask"),
            TruthFace(1, (200 + 2 * k, 20, 240 + 2 * k, 60), "without_mask"),
        ])
        for k in range(frames)
    ]


def tracked(id: int, box, label: str, track_label: str | None = None) -> TrackedFace:
    track_label = track_label or label
    p = {"with_mask": 0.9, "without_mask": 0.1}
    return TrackedFace(id, box, 0.9, label, p[label], track_label, p[track_label])


def perfect(truth: list[TruthFrame]) -> list[FrameResult]:
    """A tracker that sees every face, gives it its person's id and labels it right."""
    return [FrameResult(f.index, f.t, [tracked(face.person, face.box, face.label) for face in f.faces]) for f in truth]


def test_a_perfect_tracker_scores_full_recall_no_switches_right_labels_and_the_right_count():
    report = evaluate_tracking(people_truth(), perfect(people_truth()))
    assert report["frames"] == 10 and report["people"] == 2 and report["tracked_people"] == 2
    assert report["recall_per_track"] == report["frame_recall"] == 1.0
    assert report["id_switches"] == 0 and report["id_switches_per_track"] == 0.0
    assert report["per_frame_label_accuracy"] == report["per_track_label_accuracy"] == 1.0
    assert report["unique_people_estimated"] == 2 and report["unique_people_error"] == 0.0
    assert report["false_tracks"] == 0 and report["unmasked_people"] == report["unmasked_people_estimated"] == 1


def test_one_id_change_mid_track_is_one_switch_and_an_extra_person():
    results = perfect(people_truth())
    for frame in results[5:]:
        frame.faces[0] = tracked(7, frame.faces[0].box, "with_mask")
    report = evaluate_tracking(people_truth(), results)
    assert report["id_switches"] == 1 and report["id_switches_per_track"] == 0.5
    assert report["recall_per_track"] == 1.0
    assert report["unique_people_estimated"] == 3 and report["unique_people_error"] == 0.5


def test_a_track_wrong_in_one_frame_but_right_overall_is_right_per_track_only():
    results = perfect(people_truth())
    box = results[3].faces[1].box
    results[3].faces[1] = tracked(1, box, "with_mask", track_label="without_mask")
    report = evaluate_tracking(people_truth(), results)
    assert report["per_frame_label_accuracy"] == pytest.approx(19 / 20)
    assert report["per_track_label_accuracy"] == 1.0


def test_the_track_label_is_read_at_the_tracks_last_frame():
    results = perfect(people_truth())
    for frame in results[:9]:  # wrong while the evidence gathers, right at the end
        frame.faces[1] = tracked(1, frame.faces[1].box, "without_mask", track_label="with_mask")
    assert evaluate_tracking(people_truth(), results)["per_track_label_accuracy"] == 1.0
    results[9].faces[1] = tracked(1, results[9].faces[1].box, "without_mask", track_label="with_mask")
    report = evaluate_tracking(people_truth(), results)
    assert report["per_track_label_accuracy"] == 0.5 and report["per_frame_label_accuracy"] == 1.0
    assert report["unmasked_people_estimated"] == 0


def test_an_extra_track_with_no_truth_counts_as_an_extra_person():
    results = perfect(people_truth())
    for frame in results[2:6]:
        frame.faces.append(tracked(9, (400, 100, 440, 140), "without_mask"))
    report = evaluate_tracking(people_truth(), results)
    assert report["recall_per_track"] == 1.0 and report["per_frame_label_accuracy"] == 1.0
    assert report["unique_people_estimated"] == 3 and report["false_tracks"] == 1
    assert report["unique_people_error"] == 0.5


def test_a_person_seen_in_few_frames_lowers_recall_and_is_not_tracked():
    results = perfect(people_truth())
    for frame in results[3:]:
        del frame.faces[1]
    report = evaluate_tracking(people_truth(), results)
    assert report["recall_per_track"] == pytest.approx((1 + 0.3) / 2)
    assert report["frame_recall"] == pytest.approx(13 / 20)
    assert report["tracked_people"] == 1 and report["unique_people_estimated"] == 2


def test_faces_under_min_side_are_neither_required_nor_penalised():
    truth = people_truth()
    for frame in truth:
        frame.faces.append(TruthFace(2, (300, 30, 316, 46), "without_mask"))  # 16 px: too small to count
    results = perfect(people_truth())
    for frame in results:
        frame.faces.append(tracked(5, (301, 30, 317, 46), "with_mask"))  # tracks the small person, wrongly labelled
        frame.faces.append(tracked(6, (500, 30, 512, 42), "with_mask"))  # a small box on nothing labelled
    report = evaluate_tracking(truth, results)
    assert report["people"] == 2 and report["recall_per_track"] == 1.0
    assert report["per_frame_label_accuracy"] == report["per_track_label_accuracy"] == 1.0
    assert report["unique_people_estimated"] == 2 and report["ignored_tracks"] == 2 and report["false_tracks"] == 0
    assert evaluate_tracking(truth, perfect(people_truth()))["recall_per_track"] == 1.0  # missing it costs nothing


def test_a_tracker_run_on_every_other_frame_is_measured_on_those_frames():
    report = evaluate_tracking(people_truth(), perfect(people_truth())[::2])
    assert report["frames"] == 5 and report["truth_frames"] == 10
    assert report["recall_per_track"] == 1.0 and report["id_switches"] == 0
