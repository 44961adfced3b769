"""Synthetic labelled clips: the video, its truth, frames damaged as in real video, and the tracking measures
(three labels, each pooling rule) on hand-made tracker output."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from tests.samples import SHARED, photo, require
from maskdetect.cli import main
from maskdetect.core.constants import LABELS, PROJECT_ROOT
from maskdetect.data import pinned
from maskdetect.data.maskwear import MASKWEAR
from maskdetect.data.realfaces import REALFACES
from maskdetect.settings import Settings
from maskdetect.core.tracking import POOLING_RULES, FaceQuality, FrameResult, Pooling, TrackedFace, face_quality
from maskdetect.training import clips
from maskdetect.training.clips import (
    FACE_DAMAGE,
    FRAME_DAMAGE,
    Degradation,
    TruthFace,
    TruthFrame,
    camera_path,
    clips_report,
    compare_pooling,
    damage,
    evaluate_tracking,
    make_clip,
    make_clips,
    read_truth,
    repool,
    rule_poolings,
    search_pooling,
    write_truth,
)
from maskdetect.training.composites import HELD_OUT, held_out_faces, make_training_scenes, read_sources
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
    truth = make_clip(image, faces, tmp_path / "pan.mp4", size=(320, 180), seconds=2.0, fps=10.0, motion="pan", seed=1, people_motion=0)
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


def test_truth_round_trips_through_csv_empty_frames_and_pictures_included(tmp_path):
    frames = [
        TruthFrame(0, 0.0, [TruthFace(0, (1, 2, 30, 40), "with_mask"), TruthFace(3, (100, 5, 140, 61), "incorrect", picture=True)]),
        TruthFrame(1, 0.04, []),
        TruthFrame(2, 0.08, [TruthFace(3, (101, 6, 141, 62), "without_mask")]),
    ]
    assert read_truth(write_truth(frames, tmp_path / "truth.csv")) == frames
    old = tmp_path / "old.csv"  # written before faces could be pictures: no such column
    old.write_text("frame,t,person,xmin,ymin,xmax,ymax,label\n0,0.0,2,1,2,30,40,with_mask\n1,0.04,,,,,,\n")
    assert read_truth(old) == [TruthFrame(0, 0.0, [TruthFace(2, (1, 2, 30, 40), "with_mask")]), TruthFrame(1, 0.04, [])]


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


# People who move against the background.


class Recorder:
    """Stands in for cv2.VideoWriter: keeps the frames make_clip writes, before any codec touches them."""

    frames: list[np.ndarray] = []

    def __init__(self, *args):
        Recorder.frames = []

    def isOpened(self):
        return True

    def write(self, frame):
        Recorder.frames.append(frame.copy())

    def release(self):
        pass


def film(monkeypatch, image, faces, path, **options) -> tuple[list[TruthFrame], list[np.ndarray]]:
    """make_clip's truth and its frames exactly as written."""
    monkeypatch.setattr(clips.cv2, "VideoWriter", Recorder)
    truth = make_clip(image, faces, path, **options)
    return truth, Recorder.frames


def rigid_frame(photo: np.ndarray, window, size, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """The photo through the camera window, shifted by (dx, dy) photo px first: as make_clip films a still photo."""
    x0, y0, width = window
    scale = size[0] / width
    shift = [[scale, 0, scale * (0.5 + dx - x0) - 0.5], [0, scale, scale * (0.5 + dy - y0) - 0.5]]
    return cv2.warpAffine(photo, np.float32(shift), size, flags=cv2.INTER_LINEAR)


@pytest.fixture
def three_people(tmp_path):
    """A 640x360 photo of smooth random texture, three 48 px labelled 'faces' far apart, the middle one larger."""
    rng = np.random.default_rng(11)
    coarse = rng.uniform(0, 255, (36, 64, 3)).astype(np.float32)
    image = np.clip(cv2.resize(coarse, (640, 360), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
    path = tmp_path / "three.png"
    cv2.imwrite(str(path), image)
    faces = [Labelled((96, 150, 144, 198), "with_mask"), Labelled((290, 140, 350, 200), "without_mask"),
             Labelled((496, 160, 544, 208), "incorrect")]
    return path, faces, image


MOVING = dict(size=(320, 180), seconds=2.0, fps=10.0, motion="pan", seed=3)


def overlapped(moved, person: int, frame: int) -> bool:
    """Whether a nearer person's cut-out (pasted after this person's: over it) reaches the person's face box."""
    xmin, ymin, xmax, ymax = moved.box(person, frame)
    nearer = moved.order[moved.order.index(person) + 1:] if person in moved.order else moved.order
    regions = [np.array(moved.regions[p]) + np.tile(moved.offsets[p, frame], 2) for p in nearer]
    return any(r[0] < xmax and xmin < r[2] and r[1] < ymax and ymin < r[3] for r in regions)


def test_the_truth_boxes_follow_the_moved_faces_pixel_for_pixel(tmp_path, monkeypatch, three_people):
    image, faces, photo = three_people
    truth, frames = film(monkeypatch, image, faces, tmp_path / "clip.mp4", **MOVING)
    windows = camera_path((640, 360), (320, 180), 20, "pan", seed=3, faces=[f.box for f in faces])
    moved = clips.move_people([f.box for f in faces], (640, 360), 20, 10.0, clips.PEOPLE_MOTION, seed=3)
    checked = covered = 0
    for frame, expected, window in zip(frames, truth, windows):
        for face in expected.faces:
            assert face.label == faces[face.person].label and not face.picture
            dx, dy = moved.offsets[face.person, expected.index]
            if overlapped(moved, face.person, expected.index):
                covered += 1
                continue  # partly behind a nearer person: their pixels, not this face's
            xmin, ymin, xmax, ymax = face.box
            inner = (slice(ymin + 1, ymax - 1), slice(xmin + 1, xmax - 1))  # clear of the box's rounding
            there = rigid_frame(photo, window, (320, 180), dx, dy)  # the photo moved as the person moved
            assert np.abs(frame[inner].astype(float) - there[inner]).max() <= 1
            checked += 1
    assert checked >= 30 and covered < checked


def test_people_move_against_the_background_and_leave_no_copy_where_they_stood(tmp_path, monkeypatch, three_people):
    image, faces, photo = three_people
    options = {**MOVING, "motion": "pan-zoom"}  # all three in view most of the time
    truth, frames = film(monkeypatch, image, faces, tmp_path / "clip.mp4", **options)
    rigid = make_clip(image, faces, tmp_path / "rigid.mp4", **options, people_motion=0)
    windows = camera_path((640, 360), (320, 180), 20, "pan-zoom", seed=3, faces=[f.box for f in faces])
    apart = {}  # person -> per frame, (x, y) of the moved box's centre less the rigid one's, frame px
    for moving, still in zip(truth, rigid):
        where = {face.person: face.box for face in still.faces}
        for face in moving.faces:
            if face.person in where:
                r = where[face.person]
                apart.setdefault(face.person, []).append(((face.box[0] + face.box[2] - r[0] - r[2]) / 2, (face.box[1] + face.box[3] - r[1] - r[3]) / 2))
    assert len(apart) == 3
    for shifts in apart.values():
        assert len(shifts) >= 10 and np.ptp(np.array(shifts)[:, 0]) >= 20  # each moves 20+ frame px (half a face) against the background
    assert len({tuple(np.round(np.array(shifts)[-1])) for shifts in apart.values()}) == 3  # each their own way

    vacated = 0
    for moving, still, frame, window in zip(truth, rigid, frames, windows):
        boxes = {face.person: face.box for face in moving.faces}
        for face in still.faces:
            xmin, ymin, xmax, ymax = face.box
            if face.person not in boxes or abs(boxes[face.person][0] - xmin) < xmax - xmin:
                continue  # not yet far from where it stood
            if any(b[0] < xmax and xmin < b[2] and b[1] < ymax and ymin < b[3] for b in boxes.values()):
                continue  # someone stands there now
            original = rigid_frame(photo, window, (320, 180))[ymin:ymax, xmin:xmax].astype(float)
            assert np.abs(frame[ymin:ymax, xmin:xmax] - original).mean() > 15  # the face is gone from where it was
            vacated += 1
    assert vacated >= 5


def test_no_people_motion_films_the_still_photo_exactly_as_before(tmp_path, monkeypatch, three_people):
    image, faces, photo = three_people
    options = dict(size=(320, 180), seconds=1.0, fps=10.0, motion="pan-zoom", seed=2)
    truth, frames = film(monkeypatch, image, faces, tmp_path / "clip.mp4", people_motion=0, pictures={1}, **options)
    windows = camera_path((640, 360), (320, 180), 10, "pan-zoom", seed=2, faces=[f.box for f in faces])
    assert len(frames) == 10
    for frame, window in zip(frames, windows):
        assert (frame == rigid_frame(photo, window, (320, 180))).all()
    plain = clips.clip_truth(faces, windows, (320, 180), 10.0)
    assert [[(f.person, f.box) for f in t.faces] for t in truth] == [[(f.person, f.box) for f in t.faces] for t in plain]


def test_a_picture_stays_fixed_to_the_background_while_the_others_move(tmp_path, monkeypatch, three_people):
    image, faces, photo = three_people
    truth, frames = film(monkeypatch, image, faces, tmp_path / "clip.mp4", pictures={1}, **MOVING)
    rigid = make_clip(image, faces, tmp_path / "rigid.mp4", **MOVING, people_motion=0)
    windows = camera_path((640, 360), (320, 180), 20, "pan", seed=3, faces=[f.box for f in faces])
    boxes = [f.box for f in faces]
    with_picture = clips.move_people(boxes, (640, 360), 20, 10.0, seed=3, pictures={1})
    everyone = clips.move_people(boxes, (640, 360), 20, 10.0, seed=3)
    assert not with_picture.offsets[1].any() and np.array_equal(with_picture.offsets[[0, 2]], everyone.offsets[[0, 2]])
    assert with_picture.order == (0, 2) and everyone.order == (0, 2, 1)  # the picture is background: never pasted
    seen = 0
    for moving, still, frame, window in zip(truth, rigid, frames, windows):
        for face in moving.faces:
            assert face.picture == (face.person == 1)
            if face.picture:
                assert face.box == next(f.box for f in still.faces if f.person == 1)  # where the rigid camera puts it
                if overlapped(with_picture, 1, moving.index):
                    continue  # someone walks in front of it
                xmin, ymin, xmax, ymax = face.box
                inner = (slice(ymin + 1, ymax - 1), slice(xmin + 1, xmax - 1))
                assert np.abs(frame[inner].astype(float) - rigid_frame(photo, window, (320, 180))[inner]).max() <= 1
                seen += 1
    assert seen >= 10


def test_people_moving_repeat_with_the_seed_and_differ_with_another(tmp_path, monkeypatch, three_people):
    image, faces, _ = three_people
    first, frames = film(monkeypatch, image, faces, tmp_path / "a.mp4", **MOVING)
    again, frames_again = film(monkeypatch, image, faces, tmp_path / "b.mp4", **MOVING)
    assert again == first and all((a == b).all() for a, b in zip(frames, frames_again))
    boxes = [f.box for f in faces]
    assert not np.array_equal(clips.move_people(boxes, (640, 360), 20, 10.0, seed=3).offsets,
                              clips.move_people(boxes, (640, 360), 20, 10.0, seed=4).offsets)


def test_each_person_drifts_a_few_face_widths_smoothly_and_stays_in_the_photo():
    boxes = [(x, y, x + 40, y + 40) for x in range(100, 1900, 120) for y in (100, 500, 900)]
    moved = clips.move_people(boxes, (2000, 1000), 150, 25.0, people_motion=3.0, seed=1)
    across = np.ptp(moved.offsets[:, :, 0], axis=1) / 40  # face widths
    assert across.min() >= 1.0 and across.max() <= 2 * 3.0
    assert np.abs(np.diff(moved.offsets, axis=1)).max() < 0.3 * 40  # no jumps: under 0.3 face widths a frame (7.5 a second)
    for person, (xmin, ymin, xmax, ymax) in enumerate(boxes):
        dx, dy = moved.offsets[person, :, 0], moved.offsets[person, :, 1]
        assert (xmin + dx >= 0).all() and (xmax + dx <= 2000).all() and (ymin + dy >= 0).all() and (ymax + dy <= 1000).all()
    assert moved.order == tuple(range(len(boxes)))  # all alike in size: pasted in their order
    still = clips.move_people(boxes, (2000, 1000), 150, 25.0, people_motion=0.0, seed=1)
    assert not still.offsets.any() and still.order == ()
    with pytest.raises(ValueError, match="pictures"):
        clips.move_people(boxes, (2000, 1000), 10, 25.0, pictures={len(boxes)})


def test_a_face_behind_a_nearer_person_is_left_out_of_the_truth(three_people):
    _, faces, _ = three_people
    moved = clips.move_people([f.box for f in faces], (640, 360), 2, 10.0, seed=0)
    assert moved.order[-1] == 1  # the largest face is nearest: pasted last
    moved.offsets[:] = 0
    moved.offsets[0, 1] = (200, -5)  # person 0 walks behind person 1 in the second frame
    assert moved.hidden(0, 0) == 0 and moved.hidden(0, 1) > 0.9 and moved.hidden(1, 1) == 0
    truth = clips.clip_truth(faces, np.array([[0.0, 0.0, 640.0]] * 2), (640, 360), 10.0, moved)
    assert [f.person for f in truth[0].faces] == [0, 1, 2] and [f.person for f in truth[1].faces] == [1, 2]


def test_make_clips_keeps_its_scenes_and_camera_and_can_make_one_face_per_clip_a_picture(tmp_path):
    images = require(SCENES / "images")
    options = dict(count=3, min_faces=3, min_side=24, seed=7, size=(320, 180), seconds=0.4, fps=10.0)
    rigid = make_clips(images, SCENES / "labels.csv", tmp_path / "rigid", people_motion=0, **options)
    moving = make_clips(images, SCENES / "labels.csv", tmp_path / "moving", **options)
    assert [clip.name for clip, _ in moving] == [clip.name for clip, _ in rigid]  # the same scenes, filmed the same way
    assert all(read_truth(truth)[0] == read_truth(rigid_truth)[0] for (_, truth), (_, rigid_truth) in zip(moving, rigid))  # all start where the photo has them
    rigid = make_clips(images, SCENES / "labels.csv", tmp_path / "rigid-pictures", people_motion=0, pictures_per_clip=1, **options)
    moving = make_clips(images, SCENES / "labels.csv", tmp_path / "pictures", pictures_per_clip=1, **options)
    for (_, rigid_truth), (_, truth_path) in zip(rigid, moving):
        truth = read_truth(truth_path)
        pictures = {f.person for frame in truth for f in frame.faces if f.picture}
        assert len(pictures) == 1
        still = {(frame.index, f.person): f.box for frame in read_truth(rigid_truth) for f in frame.faces}
        assert all(still[frame.index, f.person] == f.box for frame in truth for f in frame.faces if f.picture)


# The measures, on hand-made tracker output: two people walking right over ten frames.


def people_truth(frames: int = 10) -> list[TruthFrame]:
    return [
        TruthFrame(k, k / 25, [
            TruthFace(0, (10 + 2 * k, 10, 50 + 2 * k, 50), "with_mask"),
            TruthFace(1, (200 + 2 * k, 20, 240 + 2 * k, 60), "without_mask"),
        ])
        for k in range(frames)
    ]


P = {"with_mask": (0.9, 0.05, 0.05), "incorrect": (0.1, 0.8, 0.1), "without_mask": (0.05, 0.05, 0.9)}


def tracked(id: int, box, label: str, track_label: str | None = None, quality=None) -> TrackedFace:
    track_label = track_label or label
    return TrackedFace(id, box, 0.9, label, *P[label], track_label, *P[track_label], quality=quality)


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


def test_a_picture_is_no_person_and_a_track_on_it_is_a_picture_counted_as_one():
    truth = people_truth()
    for frame in truth:
        frame.faces.append(TruthFace(2, (300, 30, 340, 70), "without_mask", picture=True))
    report = evaluate_tracking(truth, perfect(truth))  # tracks the picture as a person
    assert report["people"] == 2 and report["pictures"] == 1 and report["picture_tracks"] == 1
    assert report["recall_per_track"] == report["per_track_label_accuracy"] == 1.0 and report["labelled_tracks"] == 2
    assert report["unique_people_estimated"] == 3 and report["unique_people_error"] == 0.5 and report["false_tracks"] == 0
    assert report["unmasked_people"] == 1 and report["unmasked_people_estimated"] == 2
    report = evaluate_tracking(truth, perfect(people_truth()))  # no track on the picture: right
    assert report["picture_tracks"] == 0 and report["unique_people_error"] == 0.0 and report["recall_per_track"] == 1.0


@dataclass(frozen=True)
class Judged(TrackedFace):
    picture: bool = False  # the tracker's verdict, as the picture rule gives it


def test_a_track_the_tracker_calls_a_picture_is_not_counted_and_a_person_it_calls_one_is_reported():
    truth = people_truth()
    for frame in truth:
        frame.faces.append(TruthFace(2, (300, 30, 340, 70), "without_mask", picture=True))
    results = [FrameResult(r.index, r.t, [Judged(**{**vars(f), "picture": f.id == 2}) for f in r.faces]) for r in perfect(truth)]
    report = evaluate_tracking(truth, results)
    assert report["picture_tracks"] == 0 and report["called_pictures"] == 1 and report["people_called_pictures"] == 0
    assert report["unique_people_estimated"] == 2 and report["unique_people_error"] == 0.0 and report["tracks_on_people"] == 2
    results = [FrameResult(r.index, r.t, [Judged(**{**vars(f), "picture": f.id == 1 and r.index >= 8}) for f in r.faces])
               for r in perfect(truth)]  # calls person 1 a picture in the end, and the picture a person
    report = evaluate_tracking(truth, results)
    assert report["people_called_pictures"] == 1 and report["picture_tracks"] == 1 and report["tracks_on_people"] == 1
    assert report["labelled_people_error"] == 0.5 and report["recall_per_track"] == 1.0


def test_a_tracker_run_on_every_other_frame_is_measured_on_those_frames():
    report = evaluate_tracking(people_truth(), perfect(people_truth())[::2])
    assert report["frames"] == 5 and report["truth_frames"] == 10
    assert report["recall_per_track"] == 1.0 and report["id_switches"] == 0


# Three labels: judged masked or not, and exactly.


def test_a_mask_below_the_nose_called_unmasked_is_right_masked_or_not_and_wrong_exactly():
    truth = people_truth()
    for frame in truth:
        frame.faces[1] = TruthFace(1, frame.faces[1].box, "incorrect")
    report = evaluate_tracking(truth, perfect(people_truth()))  # person 1 seen as without_mask throughout
    assert report["per_frame_label_accuracy"] == report["per_track_label_accuracy"] == 1.0
    assert report["per_frame_label_accuracy_by_person_3way"] == report["per_track_label_accuracy_3way"] == 0.5
    assert report["unmasked_people"] == report["unmasked_people_estimated"] == 1
    results = perfect(truth)  # now seen as incorrect: exactly right, and still not masked
    report = evaluate_tracking(truth, results)
    assert report["per_track_label_accuracy_3way"] == 1.0 and report["unmasked_people_estimated"] == 1
    # a with_mask person tracked as incorrect is wrong either way
    for frame in results:
        frame.faces[0] = tracked(0, frame.faces[0].box, "incorrect")
    report = evaluate_tracking(truth, results)
    assert report["per_track_label_accuracy"] == report["per_frame_label_accuracy"] == 0.5
    assert report["unmasked_people_estimated"] == 2


def test_the_brier_score_reads_each_persons_pooled_p_with_mask_at_the_tracks_last_frame():
    report = evaluate_tracking(people_truth(), perfect(people_truth()))
    assert report["per_track_masked_brier"] == pytest.approx(((0.9 - 1) ** 2 + 0.05**2) / 2)


# Pooling again: the same tracks, another rule.


def mixed_quality() -> list[FrameResult]:
    """Person 0 seen well in 3 frames (called with_mask) and poorly in 7 (called without_mask); person 1 always well."""
    results = perfect(people_truth())
    good, poor = FaceQuality(80, 0.95, 1.5, 0.0), FaceQuality(12, 0.65, 0.05, 0.8)
    for k, frame in enumerate(results):
        clear = k in (2, 5, 8)
        frame.faces[0] = tracked(0, frame.faces[0].box, "with_mask" if clear else "without_mask", quality=good if clear else poor)
        frame.faces[1] = tracked(1, frame.faces[1].box, "without_mask", quality=good)
    return results


def test_repooling_relabels_the_tracks_by_the_rule_and_keeps_everything_else():
    results = mixed_quality()
    plain, weighted = repool(results, Pooling("mean")), repool(results, Pooling("weighted"))
    assert [f.track_label for f in plain[-1].faces] == ["without_mask", "without_mask"]
    assert [f.track_label for f in weighted[-1].faces] == ["with_mask", "without_mask"]
    assert plain[-1].faces[0].track_with_mask == pytest.approx((3 * 0.9 + 7 * 0.05) / 10)
    assert [(f.id, f.box, f.label, f.quality) for r in weighted for f in r.faces] == [(f.id, f.box, f.label, f.quality) for r in results for f in r.faces]
    assert weighted[3].faces[0].track_label == "with_mask"  # pooled from frames 0-3 only

    table = compare_pooling([(people_truth(), results)], rule_poolings())
    assert list(table) == list(POOLING_RULES)
    assert [row["per_frame_label_accuracy_by_person"] for row in table.values()] == [pytest.approx((0.3 + 1) / 2)] * 3
    assert table["mean"]["per_track_label_accuracy"] == 0.5
    assert table["weighted"]["per_track_label_accuracy"] == table["weighted-log"]["per_track_label_accuracy"] == 1.0
    assert table["weighted"]["per_track_masked_brier"] < table["mean"]["per_track_masked_brier"]


def test_the_clips_report_compares_the_rules_on_the_same_tracks():
    runs = [(people_truth(), mixed_quality()), (people_truth(), perfect(people_truth()))]
    report = clips_report(["a.mp4", "b.mp4"], runs, {"a.mp4": 20.0})
    assert report["clips"] == 2 and report["total"]["people"] == 4
    assert report["mean"]["per_track_label_accuracy"] == pytest.approx((0.5 + 1.0) / 2)  # the tracker's labels as given
    assert report["pooling"]["mean"]["per_track_label_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert report["pooling"]["weighted"]["per_track_label_accuracy"] == 1.0
    assert report["per_clip"]["a.mp4"]["frames_per_second"] == 20.0 and report["per_clip"]["b.mp4"]["frames_per_second"] is None


# Frames damaged as real video damages them.


def test_damage_episodes_come_and_go_and_repeat_with_the_seed():
    degradation = Degradation(face_rate=1.0, frame_rate=0.5)
    people, whole = degradation.episodes(5, 150, 25.0, seed=3)
    assert (people, whole) == degradation.episodes(5, 150, 25.0, seed=3) and (people, whole) != degradation.episodes(5, 150, 25.0, seed=4)
    assert sum(map(len, people)) > 10 and {e.kind for person in people for e in person} <= set(FACE_DAMAGE)
    assert {e.kind for e in whole} <= set(FRAME_DAMAGE)
    for episode in (e for person in people for e in person):
        assert 0.3 * 25 - 1 <= episode.end - episode.start <= 1.6 * 25 + 1
        levels = [clips._level(episode, k) for k in range(episode.start - 2, episode.end + 2)]
        assert levels[0] == levels[1] == levels[-1] == 0 and 0 < max(levels) <= episode.strength
    shares = [np.mean([any(clips._level(e, k) > 0 for e in person) for k in range(150)]) for person in people]
    assert 0.1 < np.mean(shares) < 0.9  # each person has clear frames and poor ones


@pytest.mark.parametrize("kind", ["blur", "motion", "lowres"])
def test_blurring_damage_takes_away_more_detail_the_stronger_it_is(kind):
    face = np.asarray(textured_face(), np.float32)
    sharpness = [face_quality(np.clip(damage(face, kind, level, 80, angle=0.7), 0, 255).astype(np.uint8)[..., 0], (0, 0, 80, 80), 0.9).sharpness
                 for level in (0.0, 0.3, 0.6, 1.0)]
    assert sharpness[0] == max(sharpness) and sharpness[3] < 0.6 * sharpness[0]


def test_the_other_damage_darkens_adds_noise_or_hides_part_of_the_face():
    face = np.asarray(textured_face(), np.float32)
    assert damage(face, "dark", 1.0, 80).mean() < 0.3 * face.mean()
    assert np.std(damage(face, "noise", 1.0, 80, seed=1) - face) == pytest.approx(32, rel=0.1)
    hidden = damage(face, "occlude", 1.0, 80, angle=2, seed=1)  # from below: the mouth and the mask
    assert np.abs(hidden[:20] - face[:20]).mean() < 1 and np.abs(hidden[-40:] - face[-40:]).mean() > 20
    assert (damage(face, "blur", 0.0, 80) == face).all()
    with pytest.raises(ValueError, match="smudge"):
        damage(face, "smudge", 0.5, 80)


def textured_face(side: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = cv2.resize(rng.uniform(0, 255, (10, 10)).astype(np.float32), (side, side))
    grey = np.clip(coarse + rng.normal(0, 30, (side, side)), 0, 255)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def test_a_degraded_clip_damages_only_around_the_faces_and_repeats_with_the_seed(tmp_path, grid_photo):
    image, faces = grid_photo
    options = dict(size=(320, 180), seconds=2.0, fps=10.0, motion="pan", seed=2)
    clean = make_clip(image, faces, tmp_path / "clean.mp4", **options)
    degradation = Degradation(face_rate=2.0, frame_rate=0.0)
    truth = make_clip(image, faces, tmp_path / "damaged.mp4", degradation=degradation, **options)
    assert truth == clean  # the same truth: damage moves no face
    make_clip(image, faces, tmp_path / "again.mp4", degradation=degradation, **options)
    before, after, again = (read_frames(tmp_path / name)[0] for name in ("clean.mp4", "damaged.mp4", "again.mp4"))
    assert all((a == b).all() for a, b in zip(after, again))
    near, far = [], []
    for frame, a, b in zip(truth, before, after):
        around = np.zeros(a.shape[:2], bool)
        for face in frame.faces:
            xmin, ymin, xmax, ymax = face.box
            grow = max(xmax - xmin, ymax - ymin) // 2 + 4
            around[max(0, ymin - grow):ymax + grow, max(0, xmin - grow):xmax + grow] = True
        difference = np.abs(a.astype(float) - b.astype(float)).mean(axis=2)
        near.append(difference[around].mean())
        far.append(difference[~around].mean() if (~around).any() else 0.0)
    assert max(far) < 3 and max(near) > 8  # the codec's noise away from the faces; damage at them


# Scenes composed of held-out training faces.


@pytest.fixture(scope="module")
def held_out():
    """The held-out training faces, read from the local copies the test set-up names (no download, no checksums)."""
    settings = Settings.from_env()
    if settings.maskwear_source is None or settings.realfaces_source is None:
        pytest.skip("set MASKDETECT_MASKWEAR_SOURCE and MASKDETECT_REALFACES_SOURCE to the training sets' local copies")
    return held_out_faces(require(settings.maskwear_source), require(settings.realfaces_source))


def test_the_held_out_faces_are_the_validation_and_test_files_of_the_training_sets_only(held_out):
    splits = {(name, row["path"]): row["split"] for name, dataset in (("maskwear-train", MASKWEAR), ("realfaces-train", REALFACES))
              for row in pinned.read_splits(dataset)}
    assert {face.set for face in held_out} == {"maskwear-train", "realfaces-train"}
    assert {face.label for face in held_out} == set(LABELS)
    for face in held_out:
        assert face.split == splits[face.set, face.path] and face.split in HELD_OUT[face.set]
        assert face.file.is_file() and face.label == face.path.split("/")[0]
    assert sum(face.set == "realfaces-train" for face in held_out) == sum(split == "validation" for (name, _), split in splits.items() if name == "realfaces-train")
    evaluation = {row["sha256"] for row in csv.DictReader(open(require(SHARED / "realworld-dev" / "manifest.csv")))}
    evaluation |= {hashlib.sha256(path.read_bytes()).hexdigest() for path in require(SCENES / "images").iterdir()}
    assert not evaluation & {face.sha256 for face in held_out}
    assert not any(part in {"realworld-dev", "scenes-dev"} for face in held_out for part in face.file.parts)


def test_a_composed_scene_has_each_labelled_box_on_its_pasted_face_and_uses_each_file_once(tmp_path, held_out):
    images, labels = make_training_scenes(tmp_path, count=3, seed=5, faces=(4, 6), pool=held_out)
    scenes = read_labels(labels)
    sources = read_sources(tmp_path / "sources.csv")
    assert sorted(scenes) == [f"composite-{n:03d}.jpg" for n in range(3)] and sorted(p.name for p in images.iterdir()) == sorted(scenes)
    assert len(sources) == sum(map(len, scenes.values())) and len({row["sha256"] for row in sources}) == len(sources)
    by_sha = {face.sha256: face for face in held_out}
    sides, rng = [], np.random.default_rng(0)
    own, elsewhere = [], []
    for row in sources:
        face = by_sha[row["sha256"]]
        labelled = scenes[row["image"]][int(row["person"])]
        assert (labelled.label, row["split"], row["path"]) == (face.label, face.split, face.path)
        scene = cv2.imread(str(images / row["image"])).astype(float)
        source = cv2.imread(str(face.file))
        xmin, ymin, xmax, ymax = face.box or (0, 0, source.shape[1], source.shape[0])
        x0, y0, x1, y1 = labelled.box
        sides.append(max(x1 - x0, y1 - y0))
        expected = cv2.resize(source[ymin:ymax, xmin:xmax], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(float)
        inner = (slice((y1 - y0) // 5, (y1 - y0) * 4 // 5), slice((x1 - x0) // 5, (x1 - x0) * 4 // 5))  # clear of the blended edges
        own.append(np.abs(scene[y0:y1, x0:x1][inner] - expected[inner]).mean())
        x, y = rng.integers(0, scene.shape[1] - (x1 - x0)), rng.integers(0, scene.shape[0] - (y1 - y0))
        elsewhere.append(np.abs(scene[y:y + y1 - y0, x:x + x1 - x0][inner] - expected[inner]).mean())
    assert np.median(own) < 10 and np.median(own) < np.median(elsewhere) / 3
    assert min(sides) >= 16 and max(sides) <= 112
    again, _ = make_training_scenes(tmp_path / "again", count=3, seed=5, faces=(4, 6), pool=held_out)
    assert read_sources(tmp_path / "again" / "sources.csv") == sources


def test_composed_scenes_film_as_clips_with_their_truth(tmp_path, held_out):
    images, labels = make_training_scenes(tmp_path, count=4, seed=1, pool=held_out)
    made = make_clips(images, labels, tmp_path / "clips", count=2, seed=1, size=(320, 180), seconds=0.4, fps=10.0, degradation=Degradation())
    for clip, truth_path in made:
        assert len(read_frames(clip)[0]) == 4 and {f.label for frame in read_truth(truth_path) for f in frame.faces} <= set(LABELS)


def test_scenes_are_not_made_from_more_faces_than_are_held_out(tmp_path, held_out):
    with pytest.raises(ValueError, match="ran out"):
        make_training_scenes(tmp_path, count=3, faces=(4, 4), pool=held_out[:10])


def test_the_pooling_search_measures_each_setting_as_the_report_does():
    runs = [(people_truth(), mixed_quality()), (people_truth(), perfect(people_truth()))]
    grid = {"rule": ("weighted", "weighted-log"), "size_px": (0.0, 40.0), "sharpness": (0.0, 0.5), "turn_half": (0.0,)}
    found = search_pooling(runs, grid, top=100)
    assert len(found["best"]) == 8 and found["people"] == 4
    table = compare_pooling(runs, {"mean": Pooling("mean"), "default": Pooling()})
    for name in ("mean", "default"):
        for key in ("per_track_label_accuracy", "per_track_label_accuracy_3way", "per_track_masked_brier"):
            assert found[name][key] == pytest.approx(table[name][key], abs=1e-4)
    unweighted = [row for row in found["best"] if row["size_px"] == row["sharpness"] == 0.0]
    assert {row["per_track_label_accuracy"] for row in unweighted} == {0.75}  # score alone barely tells these frames apart
    assert found["best"][0]["per_track_label_accuracy"] == 1.0
    keys = [(-row["per_track_label_accuracy"], row["per_track_masked_brier"]) for row in found["best"]]
    assert keys == sorted(keys)


# The command.


@pytest.mark.parametrize("args", [(), ("--from-training", "--images", "x"), ("--labels", "labels.csv")])
def test_evaluate_clips_takes_labelled_scenes_or_the_training_faces_not_both(args, capsys):
    assert main(["evaluate", "clips", *args, "--quiet"]) == 1
    assert "give --images and --labels" in capsys.readouterr().err


@pytest.mark.slow  # the detector and the model on every frame of a clip
def test_evaluate_clips_from_training_films_held_out_faces_and_compares_the_rules(tmp_path, capsys):
    model = require(PROJECT_ROOT / "deployment" / "maskdetect.tflite")
    assert main(["evaluate", "clips", "--from-training", "--count", "1", "--out", str(tmp_path), "--model", str(model), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 1 and report["scenes"].startswith("held-out training faces")
    assert list(report["pooling"]) == list(POOLING_RULES) and report["total"]["people"] >= 3
    search = report["pooling_search"]
    assert search["best"] and {"mean", "default", "people", "criterion"} <= set(search)
    sources = read_sources(tmp_path / "scenes" / "sources.csv")
    assert {row["split"] for row in sources} <= {"validation", "test"} and len(list(tmp_path.glob("composite-*.mp4"))) == 1
