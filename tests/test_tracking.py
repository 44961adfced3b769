"""FaceTracker: ids that persist, labels from all of a person's frames, people counted once, encounters once."""

from dataclasses import dataclass

import pytest
from PIL import Image

from maskdetect.core.crowd import CrowdAnalyzer
from maskdetect.core.faces import Face
from maskdetect.core.inference import Prediction
from maskdetect.core.tracking import SHARE_COLUMNS, FaceTracker

FRAME = Image.new("RGB", (640, 360))


class ScriptedDetector:
    """Answers each detect() with the next frame's faces: lists of (box, score)."""

    def __init__(self, frames: list[list[tuple[tuple[int, int, int, int], float]]]):
        self.frames = iter(frames)

    def detect(self, image):
        return [Face(box, score) for box, score in next(self.frames)]


@dataclass
class ScriptedPredictor:
    """p(with_mask) per crop, in the order the crops come: one list per frame."""

    frames: list[list[float]]
    threshold: float = 0.5
    name: str = "scripted"

    def predict_batch(self, crops):
        ps = self.frames.pop(0)
        assert len(ps) == len(crops)
        return [Prediction("with_mask" if p >= self.threshold else "without_mask", p, 1 - p, self.name) for p in ps]


def track(faces_per_frame, ps_per_frame, fps=10.0, stride=1, **options) -> tuple[FaceTracker, list]:
    analyzer = CrowdAnalyzer(ScriptedDetector(faces_per_frame), ScriptedPredictor(list(ps_per_frame)))
    tracker = FaceTracker(analyzer, fps, stride, **options)
    results = [tracker.update(index * stride, FRAME) for index in range(len(faces_per_frame))]
    return tracker, results


def moving(x0, y0, side=40, step=4, frames=20, score=0.9):
    return [((x0 + step * i, y0, x0 + step * i + side, y0 + side), score) for i in range(frames)]


def test_a_face_moving_steadily_keeps_one_id_and_is_one_person():
    tracker, results = track([[face] for face in moving(50, 100)], [[0.9]] * 20)
    ids = {face.id for result in results for face in result.faces}
    assert len(ids) == 1
    assert sum(bool(result.faces) for result in results) >= 18  # shown from the third frame: the tracker confirms first
    summary = tracker.summary()
    assert (summary["unique_people"], summary["unique_unmasked_people"]) == (1, 0)
    assert summary["people"][0]["frames"] == sum(bool(result.faces) for result in results)


def test_two_people_walking_past_each_other_keep_their_own_ids():
    left, right = moving(100, 100, step=6), moving(400, 100, step=-6)
    tracker, results = track([[a, b] for a, b in zip(left, right)], [[0.9, 0.1]] * 20)
    by_id = {}
    for result in results:
        for face in result.faces:
            by_id.setdefault(face.id, set()).add(face.label)
    assert len(by_id) == 2 and all(len(labels) == 1 for labels in by_id.values())
    assert tracker.summary()["unique_unmasked_people"] == 1


def test_one_blurred_frame_does_not_flip_a_persons_label():
    ps = [[0.9]] * 10
    ps[6] = [0.05]  # a motion-blurred frame, classified unmasked alone
    tracker, results = track([[face] for face in moving(50, 100, frames=10)], ps)
    assert results[6].faces[0].label == "without_mask" and results[6].faces[0].track_label == "with_mask"
    assert tracker.summary()["people"][0]["label"] == "with_mask"


def test_a_face_seen_once_or_only_faintly_is_nobody():
    flicker = [[]] * 10
    flicker[3] = [((10, 10, 50, 50), 0.9)]  # one frame: never confirmed
    faint = [[face] for face in moving(300, 100, frames=10, score=0.6)]  # confirmed, but never sure to be a face
    tracker, _ = track([a + b for a, b in zip(flicker, faint)], [[0.9] * (len(a) + len(b)) for a, b in zip(flicker, faint)])
    assert tracker.summary()["unique_people"] == 0
    assert tracker.tracks  # the faint face was tracked, just not counted


def test_a_face_hidden_for_less_than_keep_s_keeps_its_id():
    path = moving(50, 100, frames=20)
    frames = [[face] if not 8 <= i < 14 else [] for i, face in enumerate(path)]  # hidden 0.6 s at 10 fps
    ps = [[0.9] if faces else [] for faces in frames]
    tracker, results = track(frames, ps, keep_s=1.0)
    assert len({face.id for result in results for face in result.faces}) == 1


def test_close_unmasked_people_make_one_encounter_per_meeting_with_its_duration():
    # With the default camera, two 80 px faces side by side are under a metre apart; 30 px faces at the
    # frame's edges (farther away) nearly 3 m. Close, apart, close again.
    near = lambda i: [((200, 100, 280, 180), 0.9), ((300, 100, 380, 180), 0.9)]  # noqa: E731
    far = lambda i: [((20, 100, 50, 130), 0.9), ((590, 100, 620, 130), 0.9)]  # noqa: E731
    frames = [near(i) for i in range(10)] + [far(i) for i in range(30)] + [near(i) for i in range(10)]
    tracker, results = track(frames, [[0.1, 0.1]] * 50, keep_s=5.0, max_distance=10.0)
    encounters = tracker.summary()["close_encounters"]
    assert [e["people"] for e in encounters] == [[1, 2], [1, 2]]
    first, second = encounters
    assert first["start_s"] == pytest.approx(0.2) and first["duration_s"] == pytest.approx(0.8)  # seen from the 3rd frame
    assert second["start_s"] == pytest.approx(4.0) and second["duration_s"] == pytest.approx(1.0)
    assert all(e["closest_m"] < 1.5 for e in encounters)
    assert any(result.close_pairs for result in results)


def test_close_people_with_masks_are_no_encounter():
    frames = [[((200, 100, 280, 180), 0.9), ((300, 100, 380, 180), 0.9)]] * 10
    tracker, results = track(frames, [[0.9, 0.9]] * 10)
    assert tracker.summary()["close_encounters"] == [] and not any(result.close_pairs for result in results)


def test_the_share_over_time_counts_each_person_in_view_per_interval():
    masked, unmasked = moving(50, 100, frames=30, step=2), moving(400, 100, frames=30, step=2)
    frames = [[a] + ([b] if i >= 10 else []) for i, (a, b) in enumerate(zip(masked, unmasked))]
    ps = [[0.9] + ([0.1] if i >= 10 else []) for i in range(30)]
    tracker, _ = track(frames, ps)
    rows = tracker.summary()["share_over_time"]
    assert [tuple(row) for row in rows][0] == SHARE_COLUMNS
    assert [(row["people"], row["unmasked"]) for row in rows] == [(1, 0), (2, 1), (2, 1)]
    assert rows[1]["unmasked_share"] == 0.5


def test_a_stride_stands_for_the_frames_skipped():
    tracker, results = track([[face] for face in moving(50, 100, step=8, frames=10)], [[0.9]] * 10, stride=3)
    assert [result.index for result in results] == list(range(0, 30, 3))
    summary = tracker.summary()
    assert summary["stride"] == 3 and summary["seconds"] == pytest.approx(3.0) and summary["unique_people"] == 1
