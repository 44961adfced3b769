"""FaceTracker: ids that persist, three-way labels from all of a person's frames weighed by how well each shows them,
people counted once, encounters once."""

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from PIL import Image

from maskdetect.core.constants import LABELS
from maskdetect.core.crowd import COLOURS, PICTURE_COLOUR, CrowdAnalyzer
from maskdetect.core.faces import Face
from maskdetect.core.inference import Prediction
from norfair import Detection

from maskdetect.core.tracking import (
    MIN_WEIGHT,
    POOLING_RULES,
    SHARE_COLUMNS,
    FaceQuality,
    FaceTracker,
    FrameWeighting,
    Pooling,
    Track,
    annotate_frame,
    appearance,
    face_quality,
)

FRAME = Image.new("RGB", (640, 360))


class ScriptedDetector:
    """Answers each detect() with the next frame's faces: lists of (box, score)."""

    def __init__(self, frames: list[list[tuple[tuple[int, int, int, int], float]]]):
        self.frames = iter(frames)

    def detect(self, image):
        return [Face(box, score) for box, score in next(self.frames)]


def probabilities(p) -> tuple[float, float, float]:
    """p(with_mask) alone as (p, 0, 1 - p), as a two-class model answers; three numbers as they are."""
    return (p, 0.0, 1 - p) if isinstance(p, float | int) else tuple(p)


@dataclass
class ScriptedPredictor:
    """The probabilities per crop, in the order the crops come: one list per frame (see :func:`probabilities`)."""

    frames: list[list]
    name: str = "scripted"

    def predict_batch(self, crops):
        ps = self.frames.pop(0)
        assert len(ps) == len(crops)
        answers = [probabilities(p) for p in ps]
        return [Prediction(LABELS[max(range(3), key=lambda i: (a[i], -i))], *a, self.name) for a in answers]


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


@pytest.mark.parametrize("fps", [1.0, 2.0, 2.5, 5.0])
def test_a_clip_at_a_few_frames_per_second_is_tracked(fps):
    tracker, results = track([[face] for face in moving(50, 100, step=8, frames=8)], [[0.9]] * 8, fps=fps)
    assert tracker.summary()["unique_people"] == 1 and len({face.id for result in results for face in result.faces}) == 1


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
def test_a_face_found_in_one_processed_frame_is_nobody_at_any_stride(stride):
    frames = [[]] * 6
    frames[2] = [((100, 100, 160, 160), 0.95)]
    tracker, _ = track(frames, [[0.1] if faces else [] for faces in frames], stride=stride)
    assert tracker.summary()["unique_people"] == 0


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_a_face_becomes_a_person_on_its_third_processed_frame_at_any_stride(stride):
    tracker, results = track([[face] for face in moving(50, 100, frames=5)], [[0.9]] * 5, stride=stride)
    assert [len(result.faces) for result in results] == [0, 0, 1, 1, 1]
    assert tracker.summary()["unique_people"] == 1


# Three labels.


def test_a_track_is_labelled_with_the_most_probable_of_three_pooled_labels():
    # a mask on the chin: the frames lean incorrect, one frame says without_mask
    ps = [[(0.2, 0.6, 0.2)]] * 10
    ps[5] = [(0.1, 0.2, 0.7)]
    tracker, results = track([[face] for face in moving(50, 100, frames=10)], ps)
    face = results[-1].faces[0]
    assert (face.label, face.track_label) == ("incorrect", "incorrect")
    assert results[5].faces[0].label == "without_mask" and results[5].faces[0].track_label == "incorrect"
    assert face.track_with_mask + face.track_incorrect + face.track_without_mask == pytest.approx(1.0)
    person = tracker.summary()["people"][0]
    assert person["label"] == "incorrect" and set(person) == {
        "id", "label", "with_mask", "incorrect", "without_mask", "frames", "first_s", "last_s"}
    assert person["frames"] == 8 and person["incorrect"] == pytest.approx((7 * 0.6 + 0.2) / 8)  # from the third frame: confirmed


def test_the_json_of_a_frame_and_the_summary_carry_all_three_probabilities():
    tracker, results = track([[face] for face in moving(50, 100, frames=6)], [[(0.1, 0.7, 0.2)]] * 6)
    face = results[-1].as_dict(people={1})["faces"][0]
    assert set(face) == {"id", "box", "score", "label", "with_mask", "incorrect", "without_mask", "track_label",
                         "track_with_mask", "track_incorrect", "track_without_mask", "picture", "person"}
    assert (face["label"], face["incorrect"], face["track_incorrect"], face["person"]) == ("incorrect", 0.7, 0.7, True)
    assert "person" not in results[-1].as_dict()["faces"][0]
    summary = tracker.summary()
    assert summary["people_by_label"] == {"with_mask": 0, "incorrect": 1, "without_mask": 0}
    assert (summary["unique_people"], summary["unique_unmasked_people"], summary["unmasked_share"]) == (1, 1, 1.0)


def test_people_with_a_mask_below_the_nose_count_as_not_masked_in_the_share_and_encounters():
    # side by side, 80 px faces: under a metre apart; one with a mask on the chin, one without
    frames = [[((200, 100, 280, 180), 0.9), ((300, 100, 380, 180), 0.9), ((500, 100, 580, 180), 0.9)]] * 12
    ps = [[(0.1, 0.8, 0.1), (0.1, 0.1, 0.8), (0.9, 0.05, 0.05)]] * 12
    tracker, results = track(frames, ps)
    summary = tracker.summary()
    assert summary["people_by_label"] == {"with_mask": 1, "incorrect": 1, "without_mask": 1}
    assert summary["unique_unmasked_people"] == 2 and summary["unmasked_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert [e["people"] for e in summary["close_encounters"]] == [[1, 2]]
    assert {(a, b) for r in results for a, b, _ in r.close_pairs} == {(1, 2)}
    assert [(row["people"], row["unmasked"], row["close_unmasked_pairs"]) for row in summary["share_over_time"]] == [(3, 2, 1), (3, 2, 1)]


def test_the_annotated_frame_boxes_each_label_in_its_own_colour():
    boxes = [(20, 40, 100, 120), (160, 40, 240, 120), (300, 40, 380, 120)]
    tracker, results = track([[(box, 0.9) for box in boxes]] * 4, [[(0.9, 0.05, 0.05), (0.1, 0.8, 0.1), (0.05, 0.05, 0.9)]] * 4)
    image = np.asarray(annotate_frame(FRAME, results[-1]))
    for box, label in zip(boxes, LABELS):
        assert tuple(image[box[3] - 1, (box[0] + box[2]) // 2]) == COLOURS[label]  # the box's bottom edge


def test_the_annotated_frame_boxes_a_picture_in_grey_whatever_its_label():
    boxes = [(500 - 6 * i, 100, 540 - 6 * i, 140) for i in range(60)]  # a poster as the camera pans
    images = [paint(frame, box) for frame, box in zip(panned(60), boxes)]
    ps = [[(0.05, 0.05, 0.9)]] * 60
    tracker = FaceTracker(CrowdAnalyzer(ScriptedDetector([[(box, 0.9)] for box in boxes]), ScriptedPredictor(ps)), 10.0)
    last = [tracker.update(index, image) for index, image in enumerate(images)][-1]
    assert last.faces[0].picture and last.as_dict()["faces"][0]["picture"] is True
    drawn = np.asarray(annotate_frame(images[-1], last))
    assert tuple(drawn[boxes[-1][3] - 1, (boxes[-1][0] + boxes[-1][2]) // 2]) == PICTURE_COLOUR


# Frames weighed by how well they show the face.


def textured(size=(640, 360), faces=(), seed=0) -> Image.Image:
    """A grey frame with, per (box, blur sigma), a face-sized patch of random texture, blurred that much."""
    rng = np.random.default_rng(seed)
    frame = np.full((size[1], size[0]), 110, np.uint8)
    for (xmin, ymin, xmax, ymax), blur in faces:
        patch = rng.integers(0, 255, (ymax - ymin, xmax - xmin)).astype(np.float32)
        patch = cv2.resize(cv2.resize(patch, (12, 12), interpolation=cv2.INTER_AREA), (xmax - xmin, ymax - ymin))
        patch += rng.normal(0, 40, patch.shape)  # fine detail over the coarse features
        if blur:
            patch = cv2.GaussianBlur(patch, (0, 0), blur)
        frame[ymin:ymax, xmin:xmax] = np.clip(patch, 0, 255)
    return Image.fromarray(frame).convert("RGB")


def frontal(box, turn=0.0):
    """Five YuNet-style landmarks for a face in ``box``: eyes, nose tip (shifted ``turn`` eye distances), mouth corners."""
    xmin, ymin, xmax, ymax = box
    w, h = xmax - xmin, ymax - ymin
    eyes = ((xmin + 0.3 * w, ymin + 0.4 * h), (xmin + 0.7 * w, ymin + 0.4 * h))
    nose = (xmin + 0.5 * w + turn * 0.4 * w, ymin + 0.6 * h)
    return (*eyes, nose, (xmin + 0.35 * w, ymin + 0.8 * h), (xmin + 0.65 * w, ymin + 0.8 * h))


class FrameDetector:
    """Answers each detect() with the next frame's faces: (box, score, landmarks)."""

    def __init__(self, frames):
        self.frames = iter(frames)

    def detect(self, image):
        return [Face(box, score, landmarks) for box, score, landmarks in next(self.frames)]


def test_a_few_large_sharp_frontal_frames_outweigh_many_tiny_blurred_ones():
    # One person standing still: every 4th frame shows an 80 px face, sharp and frontal, which the classifier
    # calls with_mask; the others a 16 px face in the same place, blurred and turned, which it calls without_mask.
    good_box, bad_box = (200, 100, 280, 180), (232, 132, 248, 148)
    good = [i % 4 == 3 for i in range(24)]
    detections = [[(good_box, 0.95, frontal(good_box))] if g else [(bad_box, 0.7, frontal(bad_box, turn=0.6))] for g in good]
    images = [textured(faces=[(good_box if g else bad_box, 0 if g else 2.0)], seed=i) for i, g in enumerate(good)]
    ps = [[(0.9, 0.05, 0.05)] if g else [(0.3, 0.05, 0.65)] for g in good]

    labels = {}
    for rule in POOLING_RULES:
        tracker = FaceTracker(CrowdAnalyzer(FrameDetector(detections), ScriptedPredictor(list(ps))), 10.0, pooling=Pooling(rule))
        results = [tracker.update(i, image) for i, image in enumerate(images)]
        assert len({face.id for r in results for face in r.faces}) == 1
        labels[rule] = tracker.summary()["people"][0]["label"]
        qualities = [r.faces[0].quality for r in results if r.faces]
    assert labels == {"mean": "without_mask", "weighted": "with_mask", "weighted-log": "with_mask"}
    sharp = [q for q in qualities if q.size == 80]
    blurred = [q for q in qualities if q.size == 16]
    assert min(q.sharpness for q in sharp) > max(q.sharpness for q in blurred)
    assert max(q.turn for q in sharp) < 0.05 < 0.5 < min(q.turn for q in blurred)
    weighting = FrameWeighting()
    assert min(map(weighting.weight, sharp)) > 10 * max(map(weighting.weight, blurred))


def test_frame_weights_are_positive_bounded_and_rise_with_size_sharpness_and_score():
    weighting = FrameWeighting()
    sizes, sharpness, scores = [4, 10, 16, 24, 40, 64, 120, 400], [0.0, 0.05, 0.2, 0.5, 1.0, 3.0], [0.5, 0.7, 0.9, 1.0]
    for turn in (None, 0.0, 0.3, 1.5):
        grid = np.array([[[weighting.weight(FaceQuality(size, score, sharp, turn)) for score in scores] for sharp in sharpness] for size in sizes])
        assert np.all(grid >= MIN_WEIGHT) and np.all(grid <= 1.0)
        assert np.all(np.diff(grid, axis=0) >= 0) and np.all(np.diff(grid, axis=1) >= 0) and np.all(np.diff(grid, axis=2) >= 0)
        assert grid[-1, -1, -1] > 0.5 if turn in (None, 0.0) else True
    turns = [weighting.weight(FaceQuality(60, 0.9, 1.0, t)) for t in (0.0, 0.2, 0.4, 0.8)]
    assert turns == sorted(turns, reverse=True) and turns[0] > 2 * turns[-1]
    assert weighting.weight(FaceQuality(60, 0.9, 1.0, None)) == weighting.weight(FaceQuality(60, 0.9, 1.0, 0.0))
    assert Pooling("mean").weight(FaceQuality(4, 0.5, 0.0, 2.0)) == 1.0


def test_face_quality_measures_sharpness_at_the_faces_scale_and_the_turn_from_the_landmarks():
    box = (100, 100, 180, 180)
    sharp, blurred = (np.asarray(textured(faces=[(box, blur)], seed=1).convert("L")) for blur in (0, 5))
    flat = np.full((360, 640), 90, np.uint8)
    measured = [face_quality(image, box, 0.9).sharpness for image in (sharp, blurred, flat)]
    assert measured[0] > 2 * measured[1] > 0 and measured[2] == 0.0
    assert face_quality(sharp, box, 0.9).size == 80 and face_quality(sharp, box, 0.9).turn is None
    assert face_quality(sharp, box, 0.9, frontal(box)).turn == pytest.approx(0.0, abs=1e-9)
    assert face_quality(sharp, box, 0.9, frontal(box, turn=0.5)).turn == pytest.approx(0.5)
    assert face_quality(sharp, (630, 350, 660, 380), 0.9).size == 30  # a box running off the frame still measures


def test_pooled_probabilities_sum_to_one_and_the_log_pool_is_a_renormalised_geometric_mean():
    frames = [((0.8, 0.1, 0.1), 1.0), ((0.2, 0.2, 0.6), 3.0)]
    plain, log = Track(1, 0, 0), Track(1, 0, 0, log=True)
    for probabilities, weight in frames:
        plain.add(probabilities, weight)
        log.add(probabilities, weight)
    assert plain.probabilities == pytest.approx((0.35, 0.175, 0.475))
    geometric = np.array([0.8 * 0.2**3, 0.1 * 0.2**3, 0.1 * 0.6**3]) ** 0.25
    assert log.probabilities == pytest.approx(tuple(geometric / geometric.sum()))
    assert Track(2, 0, 0).probabilities == pytest.approx((1 / 3,) * 3) and Track(2, 0, 0).label == "with_mask"
    assert Track(3, 0, 0, log=True, sums=[0.0] * 3, weight=0.0).label == "with_mask"
    with pytest.raises(ValueError, match="median"):
        Pooling("median")


def test_a_tracks_state_does_not_grow_with_its_frames():
    track = Track(1, 0.0, 0.0)
    track.add((0.5, 0.2, 0.3))
    before = {name: np.size(value) for name, value in vars(track).items()}
    for _ in range(5000):
        track.add((0.5, 0.2, 0.3), 0.7)
    assert {name: np.size(value) for name, value in vars(track).items()} == before


# Real motion: frames cut from a textured scene by a camera that pans, with faces painted on them.

SCENE = Image.fromarray(cv2.GaussianBlur(np.random.default_rng(7).integers(0, 256, (360, 2400, 3), dtype=np.uint8), (0, 0), 2))


def paint(frame: Image.Image, box, face=(200, 160, 140), clothes=None) -> Image.Image:
    """The frame with a face of one colour in ``box`` and, given ``clothes``, a block of that colour below it."""
    pixels = np.asarray(frame).copy()
    xmin, ymin, xmax, ymax = box
    if clothes is not None:
        pixels[ymax + 10:ymax + 100, max(xmin - 40, 0):xmax + 40] = clothes
    pixels[ymin:ymax, xmin:xmax] = face
    return Image.fromarray(pixels)


def track_images(images, faces_per_frame, fps=10.0, **options) -> FaceTracker:
    ps = [[0.9] * len(faces) for faces in faces_per_frame]
    tracker = FaceTracker(CrowdAnalyzer(ScriptedDetector(faces_per_frame), ScriptedPredictor(ps)), fps, **options)
    for index, image in enumerate(images):
        tracker.update(index, image)
    return tracker


def panned(frames: int, speed: int = 6) -> list[Image.Image]:
    return [SCENE.crop((speed * i, 0, speed * i + 640, 360)) for i in range(frames)]


def test_a_face_that_moves_with_the_panned_background_is_a_picture_and_not_a_person():
    boxes = [(500 - 6 * i, 100, 540 - 6 * i, 140) for i in range(60)]  # fixed on the scene: it slides as the camera pans
    tracker = track_images([paint(frame, box) for frame, box in zip(panned(60), boxes)], [[(box, 0.9)] for box in boxes])
    summary = tracker.summary()
    assert (summary["unique_people"], len(summary["pictures"])) == (0, 1)
    assert summary["share_over_time"][-1]["people"] == 0


def test_a_person_walking_against_the_panned_background_is_a_person():
    boxes = [(300 + round(3 * np.sin(i / 4)), 100, 340 + round(3 * np.sin(i / 4)), 140) for i in range(60)]  # followed by the camera
    tracker = track_images([paint(frame, box) for frame, box in zip(panned(60), boxes)], [[(box, 0.9)] for box in boxes])
    summary = tracker.summary()
    assert (summary["unique_people"], summary["pictures"]) == (1, [])


def test_with_a_still_camera_a_face_unmoved_for_many_seconds_is_a_picture_and_a_swaying_one_a_person():
    still = [((100, 100, 140, 140), 0.9)] * 120  # 12 s at 10 fps
    sways = [((400 + round(6 * np.sin(i / 5)), 100 + round(4 * np.cos(i / 7)), 440 + round(6 * np.sin(i / 5)),
               140 + round(4 * np.cos(i / 7))), 0.9) for i in range(120)]
    images = [paint(paint(SCENE.crop((0, 0, 640, 360)), a[0]), b[0]) for a, b in zip(still, sways)]
    tracker = track_images(images, [[a, b] for a, b in zip(still, sways)])
    summary = tracker.summary()
    assert (summary["unique_people"], len(summary["pictures"])) == (1, 1)
    assert summary["pictures"][0]["id"] != summary["people"][0]["id"]


def test_a_person_lost_for_seconds_is_known_again_by_their_colours_and_a_stranger_is_not():
    frame = Image.new("RGB", (640, 360), (90, 90, 90))
    red, blue = (200, 30, 30), (30, 60, 200)
    before = [((100 + 4 * i, 100, 140 + 4 * i, 140), 0.9) for i in range(20)]  # seen 2 s, then gone 3 s (past keep_s)
    back = [((450, 120, 490, 160), 0.9)] * 20  # somewhere else: the tracker alone cannot join it
    frames = [[face] for face in before] + [[]] * 30 + [[face] for face in back]

    def run(colour_back):
        images = [paint(frame, faces[0][0], clothes=red if i < 20 else colour_back) if faces else frame for i, faces in enumerate(frames)]
        return track_images(images, frames).summary()

    same, stranger = run(red), run(blue)
    assert same["unique_people"] == 1 and same["people"][0]["frames"] > 30
    assert stranger["unique_people"] == 2
    assert run(red)["unique_people"] == 1 and track_images(
        [paint(frame, faces[0][0], clothes=red) if faces else frame for faces in frames], frames, reid_s=0).summary()["unique_people"] == 2


@pytest.mark.slow
def test_a_long_watch_keeps_only_the_tracks_it_reports():
    # 2 minutes at 10 fps: every 2 s a faint face (never sure to be a face) passes; one person stays throughout.
    frames = []
    for i in range(1200):
        x = 300 + round(10 * np.sin(i / 10))
        faces = [((x, 200, x + 40, 240), 0.9)]
        if i % 20 < 5:
            faces.append(((50 + (i // 20) % 10 * 20, 50, 80 + (i // 20) % 10 * 20, 80), 0.6))
        frames.append(faces)
    tracker, _ = track(frames, [[0.9] * len(faces) for faces in frames])
    assert tracker.summary()["unique_people"] == 1
    assert len(tracker.tracks) <= 5  # the faint ones are forgotten once norfair drops them, not kept for ever


def test_a_face_midway_between_two_tracks_goes_to_the_one_it_looks_like():
    frame = Image.new("RGB", (640, 360), (90, 90, 90))
    red, blue = (200, 30, 30), (30, 60, 200)
    a, b = (200, 100, 240, 140), (280, 100, 320, 140)
    frames = [[(a, 0.9), (b, 0.9)]] * 5
    images = [paint(paint(frame, a, face=red, clothes=red), b, face=blue, clothes=blue)] * 5
    tracker = track_images(images, frames)
    tracks = sorted(tracker._tracker.get_active_objects(), key=lambda obj: obj.estimate[0, 0])  # the red one, the blue one
    middle = (240, 100, 280, 140)
    hsv = cv2.cvtColor(np.asarray(paint(frame, middle, face=blue, clothes=blue)), cv2.COLOR_RGB2HSV)
    found = Detection(np.array([[240, 100], [280, 140]], float), embedding=appearance(hsv, middle))
    by_place_and_looks = tracker._tracker.distance_function.get_distances(tracks, [found])[0]
    assert by_place_and_looks[1] < by_place_and_looks[0]  # as far from both, nearer the blue track
    assert abs(by_place_and_looks[1] - 1.0) < 0.2  # a face size away, and looking alike
