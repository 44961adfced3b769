"""The web page with a video: real Chromium plays the visitor's clip back, the tracked faces drawn over it
in their track's colour (green with_mask, amber incorrect, red without_mask), the people listed by label."""

from __future__ import annotations

import os

import pytest

from tests.samples import SHARED, require
from maskdetect.core.crowd import PICTURE_COLOUR
from test_page_detect import COLOUR_PIXELS, OVERLAY_PIXELS, colour_pixels

pytestmark = pytest.mark.slow  # a browser

CHART_PIXELS = OVERLAY_PIXELS.replace("'overlay'", "'share-chart'")
VIDEO_OVERLAY_PIXELS = OVERLAY_PIXELS.replace("'overlay'", "'video-overlay'")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two seconds of VP8 WebM at 10 fps: a real street scene panned 2 px a frame (Chromium plays it)."""
    import cv2

    scene = cv2.imread(str(require(SHARED / "scenes-dev" / "images" / "scene000.jpg")))
    width, height = scene.shape[1] - 40, scene.shape[0] - 20
    path = tmp_path_factory.mktemp("clip") / "street.webm"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 10, (width, height))
    for index in range(20):
        writer.write(scene[10 : 10 + height, 2 * index : 2 * index + width])
    writer.release()
    assert path.stat().st_size > 10_000
    return path


def severe_errors(browser):
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_a_video_plays_back_with_its_tracked_faces_its_summary_and_chart(browser, live_app, clip, tmp_path):
    import requests
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    answer = requests.post(f"{live_app}/detect?frames=1", data=clip.read_bytes(), headers={"Content-Type": "video/webm"}, timeout=120)
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    people = answer["unique_people"]
    assert people >= 1
    frames = answer["tracked_frames"]
    with_faces = next(frame for frame in frames if frame["faces"])
    without_faces = next(frame for frame in frames if not frame["faces"])  # the tracker confirms a face after 3 frames
    assert frames[-1]["faces"]

    browser.get(f"{live_app}/")  # predict mode: a video needs no crowd mode
    browser.find_element(By.ID, "file").send_keys(str(clip))
    result = browser.find_element(By.ID, "result")
    WebDriverWait(browser, 10).until(lambda d: "Analysing the clip" in result.text or result.get_attribute("data-label") == "video")
    WebDriverWait(browser, 120).until(lambda d: result.get_attribute("data-label") == "video")
    assert result.get_attribute("data-people") == str(people)
    summary = browser.find_element(By.ID, "summary")
    assert summary.is_displayed()
    assert f"Unique people: {people}" in summary.text, summary.text
    assert f"Unique unmasked people: {answer['unique_unmasked_people']} (a mask worn incorrectly, or none)" in summary.text
    by_label = answer["people_by_label"]
    assert (f"{by_label['with_mask']} with mask, {by_label['incorrect']} mask worn incorrectly, "
            f"{by_label['without_mask']} without mask") in summary.text, summary.text
    listed = browser.find_elements(By.CSS_SELECTOR, "#people-list li")
    assert [item.get_attribute("data-label") for item in listed] == [person["label"] for person in answer["people"]]
    assert not browser.find_element(By.ID, "preview").is_displayed()

    video = browser.find_element(By.ID, "video")
    assert video.get_attribute("src").startswith("blob:")
    loaded = WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "const v = document.getElementById('video'); return v.error ? `error: ${v.error.message}` : v.readyState >= 2 && 'ok'"))
    assert loaded == "ok", (loaded, severe_errors(browser))  # e.g. a Content-Security-Policy without media-src blob:
    assert browser.execute_script("return document.getElementById('video').duration") > 1.5
    seek = "document.getElementById('video').currentTime = arguments[0]"
    browser.execute_script(seek, with_faces["t"])
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(VIDEO_OVERLAY_PIXELS) > 100)  # boxes, #ids, p(with_mask)
    drawn = colour_pixels(browser, "video-overlay")
    for label in {face["track_label"] for face in with_faces["faces"]}:  # the brightness model: mid-grey faces are incorrect, amber
        assert drawn[label] > 20, (label, drawn)
    assert browser.execute_script(CHART_PIXELS) > 100  # the axes, the share, the marker
    browser.execute_script(seek, without_faces["t"])
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(VIDEO_OVERLAY_PIXELS) == 0)  # the boxes follow the time
    browser.execute_script("document.getElementById('video').play()")  # muted: allowed without a gesture
    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return document.getElementById('video').ended"))
    assert browser.execute_script(VIDEO_OVERLAY_PIXELS) > 100  # drawn in step with playback, to the last frame
    browser.save_screenshot(str(os.environ.get("MASKDETECT_SCREENSHOT") or tmp_path / "video-page.png"))
    assert severe_errors(browser) == []


def free_square(frames, size, side=40):
    """The top left of a side x side square of the frame that no tracked face's box comes near (10 px) in any frame."""
    boxes = [face["box"] for frame in frames for face in frame["faces"]]
    for y in range(0, size[1] - side, side // 2):
        for x in range(0, size[0] - side, side // 2):
            if all(x + side + 10 < b[0] or b[2] + 10 < x or y + side + 10 < b[1] or b[3] + 10 < y for b in boxes):
                return x, y
    raise AssertionError("every part of the clip has a face: no room for an empty zone")


def test_a_zone_drawn_on_the_first_frame_is_sent_and_counts_only_the_people_inside(browser, live_app, clip):
    from urllib.parse import parse_qs, urlsplit

    import cv2
    import requests
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    answer = requests.post(f"{live_app}/detect?frames=1", data=clip.read_bytes(), headers={"Content-Type": "video/webm"}, timeout=120).json()
    people = answer["unique_people"]
    assert people >= 1 and answer["zones"] == {"include": [], "ignore": []}
    capture = cv2.VideoCapture(str(clip))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    x0, y0 = free_square(answer["tracked_frames"], size)
    corners = [(x0 + 5, y0 + 5), (x0 + 35, y0 + 5), (x0 + 5, y0 + 35)]  # a triangle no face comes near

    browser.get(f"{live_app}/")
    browser.execute_script("""window.sent = []; const fetched = window.fetch.bind(window);
        window.fetch = (url, options) => { window.sent.push(String(url)); return fetched(url, options); };""")
    browser.find_element(By.ID, "file").send_keys(str(clip))
    result = browser.find_element(By.ID, "result")
    WebDriverWait(browser, 120).until(lambda d: result.get_attribute("data-label") == "video")
    assert result.get_attribute("data-people") == str(people)
    assert "Counted: everywhere in the frame" in browser.find_element(By.ID, "summary").text
    canvas = browser.find_element(By.ID, "zone-canvas")
    assert canvas.is_displayed()
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(  # the first frame, drawn under the zone
        "const c = document.getElementById('zone-canvas'); return c.height > 0 && "
        "c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0)"))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    shown = browser.execute_script("const c = document.getElementById('zone-canvas'); return [c.clientWidth, c.clientHeight]")
    scale = shown[0] / size[0]
    for x, y in corners:  # offsets from the canvas's centre
        ActionChains(browser).move_to_element_with_offset(canvas, round(x * scale - shown[0] / 2), round(y * scale - shown[1] / 2)).click().perform()
    typed = browser.find_element(By.ID, "zone-points").get_attribute("value")
    clicked = [tuple(map(int, corner.split(","))) for corner in typed.split()]
    assert len(clicked) == 3 and all(abs(a - b) <= 2 for corner, want in zip(clicked, corners) for a, b in zip(corner, want)), (typed, corners)

    browser.find_element(By.ID, "zone-count").click()
    WebDriverWait(browser, 120).until(lambda d: result.get_attribute("data-people") == "0")
    assert result.text == "Nobody counted in the zone"
    assert parse_qs(urlsplit(browser.execute_script("return window.sent.at(-1)")).query)["zone"] == [typed]
    assert f"Counted: in the zone {typed}" in browser.find_element(By.ID, "summary").text

    browser.find_element(By.ID, "zone-clear").click()  # back to the whole frame
    WebDriverWait(browser, 120).until(lambda d: result.get_attribute("data-people") == str(people))
    assert "zone" not in parse_qs(urlsplit(browser.execute_script("return window.sent.at(-1)")).query)
    assert browser.find_element(By.ID, "zone-points").get_attribute("value") == ""

    points = browser.find_element(By.ID, "zone-points")  # without a mouse: the corners typed, Enter to count
    points.send_keys("10,10 60,10", Keys.ENTER)
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 60).until(lambda d: error.is_displayed())
    assert error.text.startswith('Could not check this video: zone "10,10 60,10" has 2 distinct corners'), error.text
    assert browser.find_element(By.ID, "zone-form").is_displayed()  # to correct it
    assert [entry for entry in severe_errors(browser) if "/detect" not in entry] == []  # the 400 is logged, nothing else


def random_bytes(path, size):
    path.write_bytes(os.urandom(size))


def too_long(path, size):
    """25 s of a tiny grey VP8 clip: readable, but over the 20 s limit."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 1, (64, 48))
    for index in range(25):
        writer.write(np.full((48, 64, 3), 10 * index, np.uint8))
    writer.release()


@pytest.mark.parametrize(
    "make, size, status, message",
    [
        (random_bytes, 20_000, 422, "damaged"),
        (too_long, None, 422, "longer than the 20 s limit"),
        (random_bytes, 11 * 1024 * 1024, 413, "over the 10 MB limit"),
    ],
    ids=["damaged", "too-long", "too-big"],
)
def test_a_clip_the_service_refuses_shows_its_error(browser, live_app, tmp_path, make, size, status, message):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = tmp_path / "clip.webm"
    make(clip, size)
    browser.get(f"{live_app}/")
    browser.find_element(By.ID, "file").send_keys(str(clip))
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 60).until(lambda d: error.is_displayed())
    assert error.text.startswith("Could not check this video:") and message in error.text, error.text
    assert not browser.find_element(By.ID, "summary").is_displayed()
    assert not browser.find_element(By.ID, "video").is_displayed()  # no answer to play back
    assert any("/detect" in logged and str(status) in logged for logged in severe_errors(browser))


def canned_clip() -> dict:
    """A /detect clip answer (with tracked_frames) of three people, one per label, and a poster's face (a picture),
    in every frame of two seconds."""
    boxes = {1: [60, 80, 120, 150], 2: [200, 80, 260, 150], 3: [340, 80, 400, 150], 4: [60, 170, 120, 240]}
    labels = {1: "incorrect", 2: "with_mask", 3: "without_mask", 4: "without_mask"}
    probabilities = {"with_mask": [0.9, 0.06, 0.04], "incorrect": [0.1, 0.8, 0.1], "without_mask": [0.02, 0.08, 0.9]}

    def face(id_):
        p = dict(zip(("with_mask", "incorrect", "without_mask"), probabilities[labels[id_]]))
        return {"id": id_, "box": boxes[id_], "score": 0.95, "label": labels[id_], **p, "track_label": labels[id_],
                **{f"track_{k}": v for k, v in p.items()}, "picture": id_ == 4, "person": id_ != 4}

    frames = [{"frame": i, "t": i / 10, "faces": [face(i_) for i_ in boxes], "close_pairs": []} for i in range(20)]
    people = [{"id": i, "label": labels[i], **dict(zip(("with_mask", "incorrect", "without_mask"), probabilities[labels[i]])),
               "frames": 20, "first_s": 0.0, "last_s": 1.9} for i in boxes]
    people, pictures = people[:3], people[3:]
    return {
        "frames": 20, "seconds": 2.0, "fps": 10.0, "stride": 1, "unique_people": 3, "unique_unmasked_people": 2,
        "unmasked_share": 0.6667, "people_by_label": {"with_mask": 1, "incorrect": 1, "without_mask": 1}, "people": people,
        "pictures": pictures,
        "close_encounters": [], "share_over_time": [{"start_s": 0.0, "end_s": 1.0, "people": 3, "unmasked": 2, "unmasked_share": 0.6667,
                                                     "close_unmasked_pairs": 0}, {"start_s": 1.0, "end_s": 2.0, "people": 3, "unmasked": 2,
                                                                                  "unmasked_share": 0.6667, "close_unmasked_pairs": 0}],
        "model": "canned", "zones": {"include": [], "ignore": []}, "tracked_frames": frames,
    }


def test_the_video_view_draws_each_tracks_label_in_its_colour_and_lists_people_by_label(browser, live_app, clip, client):
    """The page side alone: /detect's answer is canned (one person per label), the clip is real and plays back."""
    import json

    import jsonschema
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    answer = canned_clip()
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    jsonschema.validate(answer, {"$ref": "#/components/schemas/ClipSummary", "components": {"schemas": schemas}})  # the real shape
    browser.get(f"{live_app}/")
    browser.execute_script(
        "const answer = arguments[0]; window.fetch = async () => new Response(answer, {headers: {'Content-Type': 'application/json'}});",
        json.dumps(answer),
    )
    browser.find_element(By.ID, "file").send_keys(str(clip))
    result = browser.find_element(By.ID, "result")
    WebDriverWait(browser, 30).until(lambda d: result.get_attribute("data-label") == "video")
    assert result.text == "3 people, 2 not masked" and result.get_attribute("class") == "without_mask"
    summary = browser.find_element(By.ID, "summary").text
    assert "Unique people: 3: 1 with mask, 1 mask worn incorrectly, 1 without mask" in summary, summary
    assert "Unique unmasked people: 2 (a mask worn incorrectly, or none)" in summary
    listed = browser.find_elements(By.CSS_SELECTOR, "#people-list li")
    assert [item.get_attribute("data-label") for item in listed] == ["incorrect", "with_mask", "without_mask"]
    assert listed[0].text.startswith("#1 Mask worn incorrectly (with mask 10 %, mask worn incorrectly 80 %, without mask 10 %)"), listed[0].text
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "const v = document.getElementById('video'); return v.readyState >= 2"))
    browser.execute_script("document.getElementById('video').currentTime = 0.5")
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(VIDEO_OVERLAY_PIXELS) > 100)
    drawn = colour_pixels(browser, "video-overlay")
    assert drawn["incorrect"] > 50 and drawn["with_mask"] > 50 and drawn["without_mask"] > 50, drawn  # amber, green, red
    assert browser.execute_script(COLOUR_PIXELS, "video-overlay", {"picture": list(PICTURE_COLOUR)})["picture"] > 50  # the poster: grey
    assert "Pictures of faces, fixed to the scene (posters, screens; grey, not counted): #4, 0.0–1.9 s" in summary, summary
    assert severe_errors(browser) == []
