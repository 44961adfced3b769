"""What a clip may cost POST /detect: refused before decoding when its container says it is over a limit, stopped
at the limit while reading when it says less than it holds, and the costliest clip the limits accept, counted.

The service's analyzer is replaced by SquareDetector and FixedPredictor (tests/samples.py): white squares are the
faces, so the counts are exact and the tests fast. How long the costliest clips take with the real detector and
model is measured by benchmarks/clip_limits.py (documentation/service.md), not asserted here.
"""

import math
import time

import numpy as np
import pytest

from maskdetect.core import constants
from maskdetect.core import video as video_module
from maskdetect.core.crowd import CrowdAnalyzer
from maskdetect.core.video import VideoLimits, VideoSource, VideoTooLarge, open_video
from maskdetect.service import api, create_app
from tests.samples import FixedPredictor, SquareDetector, squares_clip, squares_frame

TFLITE = constants.PROJECT_ROOT / "deployment" / constants.SERVED_FILE
SMALL = VideoLimits(max_seconds=2, max_pixels=64 * 48, max_decoded_pixels=10 * 64 * 48)  # 10 frames of 64x48


@pytest.fixture(scope="module")
def app():
    app = create_app({"TESTING": True, "MODEL_PATH": str(TFLITE)})
    app.extensions["maskdetect.analyzer"] = CrowdAnalyzer(SquareDetector(), FixedPredictor())
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def moving(index, count=1, side=16):
    """``count`` squares side by side, moving 1 px a frame."""
    return [(4 + index + 24 * i, 10, 4 + index + 24 * i + side, 10 + side) for i in range(count)]


def small_clip(path, frames=12, fps=10.0, size=(64, 48), squares=1):
    return squares_clip(path, fps, [moving(i, squares) for i in range(frames)], size)


@pytest.fixture
def conversions(monkeypatch):
    """Every frame converted to RGB (a frame decoded and read, not only grabbed)."""
    counted = []
    convert = video_module.cv2.cvtColor
    monkeypatch.setattr(video_module.cv2, "cvtColor", lambda *args: counted.append(1) or convert(*args))
    return counted


# ---------------------------------------------------------------------------- the source


def test_a_clip_whose_container_says_it_is_over_the_pixels_to_decode_is_refused_before_a_frame_is_decoded(tmp_path, conversions):
    path = small_clip(tmp_path / "clip.mp4")  # 12 frames at 10 fps: within 2 s, over 10 frames' pixels
    conversions.clear()
    with pytest.raises(VideoTooLarge) as refused:
        open_video(path, limits=SMALL, name="the video")
    assert str(refused.value) == ("the video is 12 frames of 64x48, 0 megapixels to decode, over the 0-megapixel limit; "
                                  "send at most 1 s of it, or 2 s at up to 5 frames a second at this size")
    assert conversions == []
    assert len(list(open_video(path, limits=SMALL, max_frames=10))) == 10  # its first 10 frames are within


def test_a_clip_whose_frames_are_over_the_limit_is_refused_before_a_frame_is_decoded(tmp_path, conversions):
    path = small_clip(tmp_path / "clip.mp4", size=(96, 64))
    conversions.clear()
    with pytest.raises(VideoTooLarge) as refused:
        open_video(path, limits=SMALL, name="the video")
    assert str(refused.value) == ("the video's frames are 96x64 (0.0061 megapixels), over the 0.0031-megapixel limit per frame; "
                                  "send at most 2 s at up to 73x41 and 5 frames a second")
    assert conversions == []
    limits = VideoLimits(max_seconds=None, max_pixels=1000)  # as maskdetect watch: no length limit
    with pytest.raises(VideoTooLarge, match="send up to 42x23$"):
        open_video(path, limits=limits)


def test_a_clip_that_holds_more_frames_than_its_container_says_stops_at_the_limit_while_reading():
    arrays = [np.asarray(squares_frame((64, 48), [])) for _ in range(30)]
    for said, message in ((5, "reaches 11 frames of 64x48, more than the 5 its container says"), (None, "reaches 11 frames of 64x48 by now")):
        video = VideoSource("the video", iter(arrays), 10.0, said, SMALL)
        read = []
        with pytest.raises(VideoTooLarge, match=message):
            for index, _ in video.frames(3):
                read.append(index)
        assert read == [0, 3, 6, 9] and video.decoded_pixels == 11 * 64 * 48  # skipped frames count: FFmpeg decodes them


def test_a_stream_whose_frames_grow_on_the_way_is_refused_at_the_first_large_one():
    arrays = [np.zeros((48, 64, 3), np.uint8)] * 3 + [np.zeros((480, 640, 3), np.uint8)]
    video = VideoSource("the stream", iter(arrays), 10.0, None, VideoLimits(max_seconds=None, max_pixels=64 * 48))
    with pytest.raises(VideoTooLarge, match="the stream's frames are 640x480"):
        assert [index for index, _ in video] == [0, 1, 2]


# ---------------------------------------------------------------------------- the stride


@pytest.mark.parametrize("fps, frames, stride", [
    (1, 20, 1), (5, 100, 1), (10, 100, 1), (10, 101, 2), (10, 200, 2), (14, 280, 3), (25, 100, 2), (25, 250, 3),
    (25, 500, 5), (30, 600, 6), (240, 4800, 48), (10, None, 2), (1, None, 1),
])
def test_the_stride_tracks_about_10_frames_a_second_and_at_most_the_frame_limit(fps, frames, stride):
    assert api.clip_stride(fps, frames) == stride


def test_no_clip_within_the_time_limit_has_more_frames_tracked_than_the_limit():
    for fps in np.arange(0.5, 241, 0.5):
        longest = math.floor(fps * constants.MAX_VIDEO_SECONDS) + 1  # the seconds limit lets in a frame at exactly 20 s
        for frames in {1, longest // 3, longest // 2, longest - 1, longest}:
            assert math.ceil(frames / api.clip_stride(fps, frames)) <= constants.MAX_VIDEO_PROCESSED_FRAMES
        assert math.ceil(longest / api.clip_stride(fps, None)) <= constants.MAX_VIDEO_PROCESSED_FRAMES + 1


# ---------------------------------------------------------------------------- POST /detect


def test_the_service_refuses_a_clip_over_its_limits_with_a_422_that_says_what_to_send(client, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "CLIP_LIMITS", SMALL)
    monkeypatch.setattr(api, "ANNOTATED_CLIP_LIMITS", VideoLimits(2, 64 * 48, 6 * 64 * 48, hint="; or leave format out"))
    body = small_clip(tmp_path / "clip.mp4", frames=8).read_bytes()
    assert client.post("/detect", data=body, content_type="video/mp4").status_code == 200
    answer = client.post("/detect?format=mp4", data=body, content_type="video/mp4")
    assert answer.status_code == 422
    assert answer.get_json()["error"].endswith("send at most 0.6 s of it, or 2 s at up to 3 frames a second at this size; or leave format out")
    large = small_clip(tmp_path / "large.mp4", size=(96, 64)).read_bytes()
    answer = client.post("/detect", data=large, content_type="video/mp4")
    assert answer.status_code == 422 and "send at most 2 s at up to 73x41" in answer.get_json()["error"]


def test_the_service_stops_a_clip_whose_container_understates_its_frames(client, tmp_path, monkeypatch):
    path = small_clip(tmp_path / "clip.mp4")
    opened = api.open_video
    monkeypatch.setattr(api, "MAX_VIDEO_PROCESSED_FRAMES", 3)
    assert client.post("/detect", data=path.read_bytes(), content_type="video/mp4").get_json()["frames"] == 3  # stride 4
    monkeypatch.setattr(api, "open_video", lambda *args, **options: VideoSource(
        "the video", iter([np.asarray(frame) for _, frame in opened(path)]), 10.0, 2, api.CLIP_LIMITS))  # says 2 frames
    answer = client.post("/detect", data=path.read_bytes(), content_type="video/mp4")
    assert answer.status_code == 422 and "holds more frames than its container says" in answer.get_json()["error"]


def test_the_service_refuses_a_clip_once_its_tracked_frames_show_more_faces_than_the_limit(client, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "MAX_VIDEO_FACES", 5)
    body = small_clip(tmp_path / "clip.mp4", squares=2).read_bytes()  # 2 faces a frame
    answer = client.post("/detect", data=body, content_type="video/mp4")
    assert answer.status_code == 422
    assert answer.get_json()["error"] == ("the video shows 6 faces in the 3 frames tracked in its first 0.3 s, over the 5 a clip may "
                                          "show (each is classified in every frame tracked); send at most 0.2 s of it, or a clip with "
                                          "fewer people in view")


# ---------------------------------------------------------------------------- the costliest clips accepted


@pytest.mark.slow  # writes and reads 600 frames of 1280x720
def test_the_costliest_json_clip_the_limits_accept_is_answered_within_every_work_limit(client, tmp_path, monkeypatch):
    """20 s of 1280x720 at 30 fps, each frame with as many faces as the face limit allows on average: prints its time."""
    size, fps = (1280, 720), 30.0
    frames = constants.MAX_VIDEO_DECODED_PIXELS // constants.MAX_VIDEO_FRAME_PIXELS
    assert size[0] * size[1] == constants.MAX_VIDEO_FRAME_PIXELS and frames / fps == constants.MAX_VIDEO_SECONDS
    per_frame = constants.MAX_VIDEO_FACES // constants.MAX_VIDEO_PROCESSED_FRAMES
    boxes = [[(20 + i % 5 * 250 + index % 50, 60 + i // 5 * 300, 80 + i % 5 * 250 + index % 50, 120 + i // 5 * 300)
              for i in range(per_frame)] for index in range(frames)]
    body = squares_clip(tmp_path / "worst.mp4", fps, boxes, size).read_bytes()
    assert len(body) <= constants.MAX_IMAGE_BYTES
    sources, counted = [], []
    opened, count = api.open_video, api._FaceCount
    monkeypatch.setattr(api, "open_video", lambda *args, **options: sources.append(opened(*args, **options)) or sources[-1])
    monkeypatch.setattr(api, "_FaceCount", lambda *args: counted.append(count(*args)) or counted[-1])
    started = time.perf_counter()
    answer = client.post("/detect", data=body, content_type="video/mp4")
    seconds = time.perf_counter() - started
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    print(f"the costliest JSON clip: {frames} frames of {size[0]}x{size[1]}, {summary['frames']} tracked at stride "
          f"{summary['stride']}, {counted[0].faces} faces, {sources[0].decoded_pixels / 1e6:.0f} megapixels decoded: {seconds:.1f} s")
    assert summary["frames"] == constants.MAX_VIDEO_PROCESSED_FRAMES and summary["stride"] == frames // summary["frames"]
    assert sources[0].decoded_pixels == constants.MAX_VIDEO_DECODED_PIXELS
    assert counted[0].faces == constants.MAX_VIDEO_FACES
    assert summary["unique_people"] == per_frame


@pytest.mark.slow  # writes, reads, draws and encodes 250 frames
def test_the_costliest_annotated_clip_the_limits_accept_is_answered_within_every_work_limit(client, tmp_path, monkeypatch):
    size = (640, 360)
    frames = constants.MAX_VIDEO_ANNOTATED_PIXELS // (size[0] * size[1])
    fps = frames / constants.MAX_VIDEO_SECONDS
    body = squares_clip(tmp_path / "worst.mp4", fps, [moving(index, 3, side=40) for index in range(frames)], size).read_bytes()
    sources = []
    opened = api.open_video
    monkeypatch.setattr(api, "open_video", lambda *args, **options: sources.append(opened(*args, **options)) or sources[-1])
    started = time.perf_counter()
    answer = client.post("/detect?format=webm", data=body, content_type="video/mp4")
    print(f"the costliest annotated clip: {frames} frames of {size[0]}x{size[1]} as webm: {time.perf_counter() - started:.1f} s")
    assert answer.status_code == 200 and answer.mimetype == "video/webm"
    assert sources[0].decoded_pixels == constants.MAX_VIDEO_ANNOTATED_PIXELS
    back = tmp_path / "back.webm"
    back.write_bytes(answer.data)
    assert len(list(open_video(back, limits=VideoLimits(max_seconds=None)))) == frames
    answer = client.post("/detect?format=webm", data=squares_clip(tmp_path / "over.mp4", fps, [[]] * (frames + 1), size).read_bytes(),
                         content_type="video/mp4")
    assert answer.status_code == 422 and "leave format out: a JSON answer may decode 553 megapixels" in answer.get_json()["error"]
