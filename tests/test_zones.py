"""Zones: polygons in the frame where a fixed camera's people are counted, from `maskdetect watch --zone` and
`POST /detect?zone=` to the tracker; a polygon that cannot be used is an error that says what to do."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from maskdetect import cli
from maskdetect.core.crowd import CrowdAnalyzer
from maskdetect.core.video import video_writer
from maskdetect.core.zones import MAX_CORNERS, ZoneError, Zones, parse_polygon, parse_zones
from tests.test_tracking import ScriptedDetector, ScriptedPredictor, moving, track

LEFT_HALF = "0,0 320,0 320,360 0,360"  # of a 640x360 frame
SQUARE = "10,10 110,10 110,110 10,110"


def inside_left_and_right(frames=20):
    """A person walking in the left half of a 640x360 frame, another in the right half, both masked; and their probabilities."""
    left, right = moving(60, 100, frames=frames, step=2), moving(420, 100, frames=frames, step=2)
    return [[a, b] for a, b in zip(left, right)], [[0.9, 0.9]] * frames


# ---------------------------------------------------------------------------- the text form and the point test


@pytest.mark.parametrize("text", [SQUARE, "10,10;110,10;110,110;10,110", " 10,10  110,10\t110,110 10,110 ", "10,10 110,10 110,110 10,110 10,10",
                                  "10,10 10,10 110,10 110,110 10,110", "10.0,10 110,1e1 110,110.0 +10,110"])
def test_a_zone_is_its_corners_as_x_comma_y_apart_by_spaces_or_semicolons(text):
    zone = parse_polygon(text)
    assert zone.corners == ((10, 10), (110, 10), (110, 110), (10, 110))  # a repeated corner, or the ring closed again, dropped
    assert str(zone) == SQUARE and zone.as_list() == [[10, 10], [110, 10], [110, 110], [10, 110]]


def test_a_point_is_in_a_zone_inside_or_on_its_edge_and_not_outside():
    zone = parse_polygon("0,0 100,0 100,100 50,40 0,100")  # a square with a notch cut from the bottom
    assert (50, 20) in zone and (10, 80) in zone and (100, 50) in zone and (0, 0) in zone and (50, 40) in zone
    assert (50, 80) not in zone and (10, 95) not in zone and (150, 50) not in zone and (-1, 50) not in zone and (50, 40.5) not in zone


def test_a_point_counts_in_any_zone_and_in_no_ignore_zone():
    zones = parse_zones([SQUARE, "200,200 300,200 300,300"], ["40,40 80,40 80,80 40,80"])
    assert zones((20, 20)) and zones((290, 210)) and zones((30, 60))
    assert not zones((60, 60)) and not zones((150, 150)) and not zones((210, 290))
    everywhere, only_ignored = Zones(), parse_zones(ignore=["0,0 100,0 100,100"])
    assert everywhere.everywhere and everywhere((5000, -3)) and not only_ignored.everywhere
    assert only_ignored((10, 50)) and not only_ignored((50, 10))
    assert zones.as_dict() == {"include": [[[10, 10], [110, 10], [110, 110], [10, 110]], [[200, 200], [300, 200], [300, 300]]],
                               "ignore": [[[40, 40], [80, 40], [80, 80], [40, 80]]]}


def test_a_point_on_an_ignore_zones_edge_is_ignored():
    zones = parse_zones([SQUARE], ["40,40 80,40 80,80 40,80"])
    assert not zones((40, 60)) and not zones((80, 80))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty: give its corners as x,y"),
        ("10,10 110,10", "has 2 distinct corners: a zone needs 3 or more"),
        ("10,10 10,10 10,10 10,10", "has 1 distinct corner: a zone needs 3 or more"),
        ("10,10 110 110,110", "corner 2 '110' is not x,y: give each corner as two numbers joined by a comma"),
        ("10, 10 110, 10 110, 110", "corner 1 '10,' is not x,y"),
        ("a,b 110,10 110,110", "corner 1 'a,b' is not x,y"),
        ("10,10,3 110,10 110,110", "corner 1 '10,10,3' is not x,y"),
        ("1_0,10 110,10 110,110", "corner 1 '1_0,10' is not x,y"),
        ("10,10 nan,10 110,110", "corner 2 (nan,10) is not a finite number"),
        ("10,10 110,10 1e999,110", "corner 3 (1e999,110) is not a finite number"),
        ("0,0 50,50 100,100", "has no area (its corners lie on one line)"),
        ("0,0 100,100 100,0 0,100", "crosses itself (the edge from corner 1 to 2 meets the one from corner 3 to 4)"),
        ("0,0 100,0 50,0 50,50", "crosses itself (the edge from corner 1 to 2 meets the one from corner 2 to 3)"),  # folds back
        ("0,0 100,0 100,100 50,0 0,100", "crosses itself"),  # touches its own edge
        (" ".join(f"{x},{(x * 7) % 13}" for x in range(MAX_CORNERS + 1)), f"over the {MAX_CORNERS} a zone may have"),
    ],
)
def test_a_polygon_that_is_no_zone_says_what_is_wrong_and_what_to_do(text, message):
    with pytest.raises(ZoneError) as error:
        parse_polygon(text)
    assert message in str(error.value)
    with pytest.raises(ZoneError, match=r'^zone "') as named:
        parse_zones([SQUARE, text], names=("zone", "ignore_zone"))
    assert message in str(named.value) and f'"{text[:20]}' in str(named.value)


def test_a_corner_outside_the_frame_is_named_with_the_frames_size():
    zones = parse_zones([SQUARE], ["600,10 700,10 700,100"])
    with pytest.raises(ZoneError) as error:
        zones.check_frame((640, 360), ("--zone", "--ignore-zone"))
    assert str(error.value) == ('--ignore-zone "600,10 700,10 700,100" corner 2 (700,10) is outside the 640x360 frame: '
                                "give corners within x 0-640 and y 0-360 (pixels of the video, from its top left)")
    parse_zones(["0,0 640,0 640,360 0,360"]).check_frame((640, 360))  # the frame's own corners are inside it
    with pytest.raises(ZoneError, match=r"corner 1 \(-1,5\) is outside the 640x360 frame"):
        parse_zones(["-1,5 100,5 100,100"]).check_frame((640, 360))


def test_too_many_zones_are_refused():
    with pytest.raises(ZoneError, match="give at most 16 of each"):
        parse_zones([SQUARE] * 17)


# ---------------------------------------------------------------------------- the tracker counts only the people in the zone


def test_of_two_people_only_the_one_inside_the_zone_is_counted():
    frames, ps = inside_left_and_right()
    tracker, results = track(frames, ps, zone=parse_zones([LEFT_HALF]))
    summary = tracker.summary()
    left = {face.id for result in results for face in result.faces if face.box[0] < 320}
    assert summary["unique_people"] == 1 and {person["id"] for person in summary["people"]} == left
    assert len({face.id for result in results for face in result.faces}) == 2  # both tracked, one counted
    assert [row["people"] for row in summary["share_over_time"]] == [1, 1]
    everywhere, _ = track(*inside_left_and_right())
    assert everywhere.summary()["unique_people"] == 2


def test_an_ignore_zone_leaves_out_the_faces_seen_only_inside_it():
    frames, ps = inside_left_and_right()
    tracker, _ = track(frames, ps, zone=parse_zones(ignore=["380,0 640,0 640,360 380,360"]))  # e.g. a poster on the right
    assert tracker.summary()["unique_people"] == 1
    walking_out, _ = track([[face] for face in moving(300, 100, frames=20, step=8)], [[0.9]] * 20,
                           zone=parse_zones(ignore=["0,0 330,0 330,360 0,360"]))
    assert walking_out.summary()["unique_people"] == 1  # seen outside the ignore zone once: a person


def test_the_unmasked_outside_the_zone_make_no_encounter():
    near = [((200, 100, 280, 180), 0.9), ((300, 100, 380, 180), 0.9)]  # side by side, under a metre apart, both unmasked
    tracker, _ = track([near] * 10, [[0.1, 0.1]] * 10, zone=parse_zones(["0,0 250,0 250,360 0,360"]))
    summary = tracker.summary()
    assert summary["unique_people"] == 1 and summary["unique_unmasked_people"] == 1 and summary["close_encounters"] == []


# ---------------------------------------------------------------------------- maskdetect watch --zone


@pytest.fixture
def grey_clip(tmp_path):
    """Two seconds of grey 640x360 frames at 10 fps: the faces come from a scripted detector."""
    path = tmp_path / "grey.mp4"
    with video_writer(path, 10.0, (640, 360)) as write:
        for _ in range(20):
            write(Image.fromarray(np.full((360, 640, 3), 128, np.uint8)))
    return path


@pytest.fixture
def scripted_watch(monkeypatch):
    """`maskdetect watch` with the two scripted people of inside_left_and_right instead of the detector and the model."""
    frames, ps = inside_left_and_right()
    monkeypatch.setattr(cli, "_detector", lambda args: (ScriptedDetector(frames), {}))
    monkeypatch.setattr(cli, "_crowd_predictor", lambda args: ScriptedPredictor(list(ps)))


def test_watch_counts_only_the_people_in_its_zones_and_says_which(grey_clip, scripted_watch, capsys):
    assert cli.main(["watch", str(grey_clip), "--quiet", "--zone", LEFT_HALF, "--ignore-zone", "0,300 50,300 50,360"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["unique_people"] == 1
    assert summary["zones"] == {"include": [[[0, 0], [320, 0], [320, 360], [0, 360]]], "ignore": [[[0, 300], [50, 300], [50, 360]]]}


def test_watch_without_a_zone_counts_everyone_and_says_so(grey_clip, scripted_watch, capsys):
    assert cli.main(["watch", str(grey_clip), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["unique_people"] == 2 and summary["zones"] == {"include": [], "ignore": []}


@pytest.mark.parametrize("option, value, message", [
    ("--zone", "10,10 110,10", 'argument --zone: "10,10 110,10" has 2 distinct corners: a zone needs 3 or more, e.g. "10,10 600,10'),
    ("--ignore-zone", "0,0 100,100 100,0 0,100", "argument --ignore-zone: \"0,0 100,100 100,0 0,100\" crosses itself"),
    ("--zone", "10;10 110;10 110;110", "argument --zone: \"10;10 110;10 110;110\" corner 1 '10' is not x,y"),
])
def test_watch_refuses_a_polygon_that_is_no_zone_as_a_usage_error(grey_clip, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit:
        cli.main(["watch", str(grey_clip), option, value])
    assert exit.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and "usage: maskdetect watch" in captured.err


def test_watch_refuses_a_zone_outside_the_frame_once_it_knows_the_frame(grey_clip, scripted_watch, capsys):
    assert cli.main(["watch", str(grey_clip), "--quiet", "--zone", "10,10 700,10 700,300"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err == ('maskdetect: error: --zone "10,10 700,10 700,300" corner 2 (700,10) is outside the 640x360 frame: '
                            "give corners within x 0-640 and y 0-360 (pixels of the video, from its top left)\n")


# ---------------------------------------------------------------------------- POST /detect?zone=


@pytest.fixture
def scripted_service(app, client, monkeypatch):
    """The service with the two scripted people of inside_left_and_right as its crowd analyzer."""
    frames, ps = inside_left_and_right()
    monkeypatch.setitem(app.extensions, "maskdetect.analyzer", CrowdAnalyzer(ScriptedDetector(frames), ScriptedPredictor(list(ps))))
    return client


def test_a_clip_with_zones_counts_only_the_people_inside_and_answers_with_its_zones(scripted_service, grey_clip, client):
    zone = LEFT_HALF.replace(" ", "+")  # as a URL carries spaces
    answer = scripted_service.post(f"/detect?frames=1&zone={zone}&ignore_zone=0,300;50,300;50,360", data=grey_clip.read_bytes(),
                                   content_type="video/mp4")
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    assert summary["unique_people"] == 1
    assert summary["zones"] == {"include": [[[0, 0], [320, 0], [320, 360], [0, 360]]], "ignore": [[[0, 300], [50, 300], [50, 360]]]}
    counted = {face["box"][0] < 320: face["person"] for frame in summary["tracked_frames"] for face in frame["faces"]}
    assert counted == {True: True, False: False}  # the one on the right is tracked, not counted
    import jsonschema

    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    jsonschema.validate(summary, {"$ref": "#/components/schemas/ClipSummary", "components": {"schemas": schemas}})


def test_a_clip_without_zones_says_it_counted_everywhere(scripted_service, grey_clip):
    summary = scripted_service.post("/detect", data=grey_clip.read_bytes(), content_type="video/mp4").get_json()
    assert summary["unique_people"] == 2 and summary["zones"] == {"include": [], "ignore": []}


@pytest.mark.parametrize("query, message", [
    ("zone=10,10+110,10", 'zone "10,10 110,10" has 2 distinct corners: a zone needs 3 or more'),
    ("zone=10,10+600,10+600,300+10,300&ignore_zone=0,0+50,50+0,50+50,0", 'ignore_zone "0,0 50,50 0,50 50,0" crosses itself'),
    ("zone=", 'zone "" is empty: give its corners as x,y'),
    ("zone=10,10+700,10+600,300", 'zone "10,10 700,10 600,300" corner 2 (700,10) is outside the 640x360 frame: give corners within'),
])
def test_a_zone_that_cannot_be_used_is_a_json_400_that_says_what_to_do(scripted_service, grey_clip, query, message):
    answer = scripted_service.post(f"/detect?{query}", data=grey_clip.read_bytes(), content_type="video/mp4")
    assert answer.status_code == 400 and answer.is_json
    assert message in answer.get_json()["error"], answer.get_json()


def test_a_zone_with_a_photo_is_a_400_not_silently_ignored(client):
    from tests.samples import encode

    photo = encode(Image.new("RGB", (64, 48), "white"))
    answer = client.post(f"/detect?zone={SQUARE}", data=photo, content_type="image/jpeg")
    assert answer.status_code == 400 and "zone= and ignore_zone= go with a video clip" in answer.get_json()["error"]
    assert client.post("/detect?ignore_zone=1", data=photo, content_type="image/jpeg").status_code == 400
