"""Video in and out, `maskdetect watch`, and POST /detect with a clip: real frames, the real detector and model."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from maskdetect.cli import main
from maskdetect.core import video as video_module
from maskdetect.core.constants import LABELS, PROJECT_ROOT
from maskdetect.core.crowd import CrowdAnalyzer
from maskdetect.core.fetch import URLRefused
from maskdetect.core.images import ImageDecodeError
from maskdetect.core.tracking import SHARE_COLUMNS, analyze_video
from maskdetect.core.video import Frames, VideoError, VideoLimits, VideoSource, VideoTooLong, open_video, video_writer
from maskdetect.service import create_app
from maskdetect.training.clips import make_clip, read_truth, write_truth
from maskdetect.training.scenes import read_labels
from tests.samples import SHARED, FixedPredictor, SquareDetector, require

TFLITE = PROJECT_ROOT / "deployment" / "maskdetect.tflite"
SCENE = "scene000.jpg"
FACE_KEYS = {"id", "box", "score", "label", "with_mask", "incorrect", "without_mask",
             "track_label", "track_with_mask", "track_incorrect", "track_without_mask", "picture"}  # a tracked face in the JSON


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two seconds of a real crowd photo, panned at 320x180 and 10 fps, with its truth."""
    scenes = require(SHARED / "scenes-dev")
    path = tmp_path_factory.mktemp("clip") / "scene.mp4"
    truth = make_clip(scenes / "images" / SCENE, read_labels(scenes / "labels.csv")[SCENE], path, size=(320, 180), seconds=2.0, fps=10.0)
    write_truth(truth, path.with_suffix(".csv"))
    return path


@pytest.fixture(scope="module")
def service():
    return create_app({"TESTING": True, "MODEL_PATH": str(TFLITE)}).test_client()


def frames(count=12, size=(64, 48)):
    return [Image.fromarray(np.full((size[1], size[0], 3), 20 * i % 256, np.uint8)) for i in range(count)]


# ---------------------------------------------------------------------------- reading and writing


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_a_written_clip_reads_back_with_its_rate_size_and_frames(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    with video_writer(path, 10.0, (64, 48)) as write:
        for frame in frames():
            write(frame)
    video = open_video(path)
    read = list(video)
    assert (video.fps, video.size, len(read)) == (10.0, (64, 48), 12)
    assert [index for index, _ in read] == list(range(12))
    assert abs(np.asarray(read[5][1]).mean() - 100) < 8  # the frame's grey level survives the lossy codec


def write_clip(path, count=12, size=(64, 48), fps=10.0):
    with video_writer(path, fps, size) as write:
        for frame in frames(count, size):
            write(frame)
    return path


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
def test_a_strided_read_gives_the_same_frames_and_converts_only_those(tmp_path, monkeypatch, stride):
    path = write_clip(tmp_path / "clip.mp4")
    every = [(index, np.asarray(frame)) for index, frame in open_video(path)]
    conversions = []
    convert = video_module.cv2.cvtColor
    monkeypatch.setattr(video_module.cv2, "cvtColor", lambda *args: conversions.append(1) or convert(*args))
    strided = [(index, np.asarray(frame)) for index, frame in open_video(path).frames(stride)]
    assert [index for index, _ in strided] == list(range(0, 12, stride))
    assert all(np.array_equal(frame, every[index][1]) for index, frame in strided)
    assert len(conversions) == len(strided)  # the frames between were grabbed, never converted


def test_a_folders_skipped_frames_are_never_opened(tmp_path):
    for i, frame in enumerate(frames(7)):
        frame.save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"not a png")  # read, it would be an error
    assert [index for index, _ in open_video(tmp_path).frames(2)] == [0, 2, 4, 6]
    with pytest.raises(ImageDecodeError):
        list(open_video(tmp_path))


def test_max_frames_ends_a_video_after_its_first_frames(tmp_path):
    path = write_clip(tmp_path / "clip.mp4")
    video = open_video(path, max_frames=5)
    assert video.frame_count == 5 and [index for index, _ in video] == [0, 1, 2, 3, 4]
    assert [index for index, _ in open_video(path, max_frames=5).frames(3)] == [0, 3]
    assert len(list(open_video(path, max_frames=50))) == 12
    long = write_clip(tmp_path / "long.mp4", count=30)  # 3 s: over a 2 s limit, but its first 2 s are within
    assert len(list(open_video(long, limits=VideoLimits(max_seconds=2), max_frames=20))) == 20


def test_analyze_video_decodes_only_the_processed_frames_unless_it_writes_every_frame(tmp_path):
    class Counted(Frames):
        reads = skips = 0

        def read(self):
            frame = super().read()
            Counted.reads += frame is not None
            return frame

        def skip(self):
            skipped = super().skip()
            Counted.skips += skipped
            return skipped

    analyzer = CrowdAnalyzer(SquareDetector(), FixedPredictor())
    for out, reads in ((None, 4), (tmp_path / "out.mp4", 12)):
        Counted.reads = Counted.skips = 0
        video = VideoSource("clip", Counted(np.asarray(frame) for frame in frames(12)), 10.0, 12, VideoLimits())
        tracker = analyze_video(video, analyzer, 3, out=out)
        assert tracker.frames == 4 and (Counted.reads, Counted.skips) == (reads, 12 - reads)


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stop"), video_writer(path, 10.0, (64, 48)) as write:
        write(frames(1)[0])
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoError, match=r"\.mp4 or \.webm"), video_writer(tmp_path / "out.avi", 10.0, (64, 48)):
        pass


def test_a_folder_of_frames_is_read_in_natural_order_at_25_fps_unless_told(tmp_path):
    for i, frame in enumerate(frames(11)):
        frame.save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    video = open_video(tmp_path)
    levels = [round(float(np.asarray(frame).mean())) for _, frame in video]
    assert video.fps == 25.0 and video.frame_count == 11 and levels == [20 * i for i in range(11)]
    assert open_video(tmp_path, fps=5).fps == 5


@pytest.mark.parametrize("content", [b"", b"\x00" * 5000, b"ftypisom" + bytes(range(256)) * 40])
def test_a_damaged_or_empty_file_is_a_clear_error_at_once(tmp_path, content):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    started = time.monotonic()
    with pytest.raises(VideoError, match="damaged"):
        list(open_video(path))
    assert time.monotonic() - started < 5


def test_a_clip_over_its_limits_is_refused(tmp_path):
    path = tmp_path / "long.mp4"
    with video_writer(path, 10.0, (64, 48)) as write:
        for frame in frames(30):
            write(frame)
    with pytest.raises(VideoTooLong, match="longer than the 2 s limit"):
        open_video(path, limits=VideoLimits(max_seconds=2))
    with pytest.raises(VideoError, match="megapixels"):
        open_video(path, limits=VideoLimits(max_pixels=1000))
    for _ in open_video(path, limits=VideoLimits(max_seconds=3)):
        pass  # 3 s of a 3 s clip: within


def test_a_source_of_unknown_length_stops_at_the_first_frame_past_the_limit():
    stream = (np.asarray(frame) for frame in frames(100))  # a live stream says no length
    video = VideoSource("stream", stream, 2.0, None, VideoLimits(max_seconds=2.5))
    read = []
    with pytest.raises(VideoTooLong):
        for index, _ in video:
            read.append(index)
    assert read == [0, 1, 2, 3, 4, 5]  # 0 to 2.5 s


def test_stream_urls_follow_the_address_rules_without_any_traffic():
    for url in ("rtsp://127.0.0.1/live", "http://10.0.0.7:8080/stream.mjpg", "rtsp://[::1]:8554/cam", "rtsps://169.254.169.254/x"):
        with pytest.raises(URLRefused, match="not a public address"):
            open_video(url)
    with pytest.raises(URLRefused, match="rtsp://"):
        open_video("ftp://example.com/clip.mp4")


def test_the_stream_check_is_best_effort_ffmpeg_follows_a_redirect_it_never_saw(tmp_path, http_server, monkeypatch):
    """What crowd.md and `watch --help` say: the URL as given is checked, then FFmpeg connects and redirects on its own."""
    with video_writer(tmp_path / "clip.webm", 10, (64, 48)) as write:
        for shade in range(0, 200, 20):
            write(Image.new("RGB", (64, 48), (shade, 0, 0)))
    clip = (tmp_path / "clip.webm").read_bytes()
    http_server["/start"] = (302, b"", 0, {"Location": f"http://localhost:{http_server.port}/clip.webm"})
    http_server["/clip.webm"] = (200, clip, len(clip), {"Content-Type": "video/webm"})
    checked = []
    real = video_module.resolve

    def check(host, port, **options):  # 127.0.0.1 stands in for a public camera host
        checked.append(host)
        return real(host, port, **{**options, "allow_private": True})

    monkeypatch.setattr(video_module, "resolve", check)
    video = open_video(f"http://127.0.0.1:{http_server.port}/start")
    assert sum(1 for _ in video) == 10
    assert checked == ["127.0.0.1"]  # "localhost", where FFmpeg went next, was never checked
    assert [path for path, _ in http_server.requests] == ["/start", "/clip.webm"]


def test_watch_help_says_the_stream_check_is_best_effort(capsys):
    with pytest.raises(SystemExit):
        main(["watch", "--help"])
    assert "best-effort" in " ".join(capsys.readouterr().out.split())


def test_a_missing_source_names_itself(tmp_path):
    with pytest.raises(VideoError, match="no such file or folder"):
        open_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="holds no image files"):
        open_video(tmp_path)


# ---------------------------------------------------------------------------- maskdetect watch


def run_watch(*args):
    return main(["watch", *map(str, args), "--model", str(TFLITE), "--quiet"])


@pytest.mark.slow  # the detector and the model on every frame of a clip
def test_watch_prints_the_summary_and_writes_every_output(clip, tmp_path, capsys):
    out, lines, table = tmp_path / "annotated.webm", tmp_path / "frames.jsonl", tmp_path / "share.csv"
    assert run_watch(clip, "--out", out, "--jsonl", lines, "--csv", table, "--stride", 2) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["frames"] == 10 and summary["stride"] == 2 and summary["seconds"] == pytest.approx(2.0)
    assert summary["unique_people"] >= 1 and summary["unique_people"] == len(summary["people"])
    assert summary["unique_unmasked_people"] == sum(p["label"] in ("incorrect", "without_mask") for p in summary["people"])
    assert summary["people_by_label"] == {label: sum(p["label"] == label for p in summary["people"]) for label in LABELS}
    assert all(p["with_mask"] + p["incorrect"] + p["without_mask"] == pytest.approx(1, abs=1e-3) for p in summary["people"])
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(0, 20, 2))
    faces = [face for r in records for face in r["faces"]]
    assert faces and all(set(face) == FACE_KEYS for face in faces)
    assert all(face[f"track_{face['track_label']}"] == max(face[f"track_{label}"] for label in LABELS) for face in faces)
    assert {face["id"] for r in records for face in r["faces"]} >= {p["id"] for p in summary["people"]}
    assert table.read_text().splitlines()[0] == ",".join(SHARE_COLUMNS) and len(table.read_text().splitlines()) == 3
    annotated = open_video(out)
    assert annotated.frame_count in (20, None) and len(list(annotated)) == 20 and annotated.size == (320, 180)
    assert all(f"wrote {path}" in captured.err for path in (out, lines, table))


@pytest.mark.slow  # the detector and the model on every frame of a clip
def test_watch_tracks_the_labelled_faces_of_a_clip_as_people(clip, capsys):
    assert run_watch(clip) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    truth = read_truth(clip.with_suffix(".csv"))
    labelled = {face.person for frame in truth for face in frame.faces if max(face.box[2] - face.box[0], face.box[3] - face.box[1]) >= 24}
    assert abs(summary["unique_people"] - len(labelled)) <= max(1, len(labelled) // 2)


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "give one source"),
        (("clip.mp4", "--camera", "0"), "give one source"),
        (("clip.mp4", "--stride", "0"), "--stride must be 1 or more"),
        (("missing.mp4",), "no such file or folder"),
        (("rtsp://192.168.1.20/live",), "192.168.1.20 is a private address; MASKDETECT_ALLOW_PRIVATE_URLS=1 lifts"),
    ],
)
def test_watch_errors_say_what_to_do(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MASKDETECT_ALLOW_PRIVATE_URLS", raising=False)
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert run_watch(*args) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and captured.err.startswith("maskdetect: error: ")


# ---------------------------------------------------------------------------- POST /detect with a clip


@pytest.mark.slow  # the detector and the model on every frame of a clip
def test_a_clip_is_answered_with_the_people_over_time(service, clip):
    answer = service.post("/detect?frames=1", data=clip.read_bytes(), content_type="video/mp4")
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    assert summary["stride"] == 1 and summary["frames"] == 20  # 10 fps is under the service's 10 processed per second
    assert set(summary) >= {"unique_people", "unique_unmasked_people", "close_encounters", "share_over_time", "people", "model"}
    assert len(summary["tracked_frames"]) == 20 and summary["tracked_frames"][4]["t"] == pytest.approx(0.4)
    faces = [face for frame in summary["tracked_frames"] for face in frame["faces"]]
    assert faces and all(set(face) == FACE_KEYS | {"person"} for face in faces)
    assert set(summary["people_by_label"]) == set(LABELS) and sum(summary["people_by_label"].values()) == summary["unique_people"]
    assert "tracked_frames" not in service.post("/detect", data=clip.read_bytes(), content_type="video/mp4").get_json()


@pytest.mark.slow  # the detector and the model on every frame of a clip
def test_a_clip_comes_back_annotated_as_mp4_or_webm(service, clip, tmp_path):
    for kind in ("mp4", "webm"):
        answer = service.post(f"/detect?format={kind}", data=clip.read_bytes(), content_type="video/mp4")
        assert answer.status_code == 200 and answer.mimetype == f"video/{kind}"
        path = tmp_path / f"back.{kind}"
        path.write_bytes(answer.data)
        assert len(list(open_video(path))) == 20


@pytest.mark.slow  # the detector and the model on every frame of a clip
def test_a_bad_clip_is_a_clear_json_error(service, clip, tmp_path):
    assert service.post("/detect", data=b"\x00" * 4096, content_type="video/mp4").status_code == 422
    assert "damaged" in service.post("/detect", data=b"\x00" * 4096, content_type="video/webm").get_json()["error"]
    assert service.post("/detect", data=b"", content_type="video/mp4").status_code == 400
    assert "format=png is not offered for a video" in service.post(
        "/detect?format=png", data=clip.read_bytes(), content_type="video/mp4"
    ).get_json()["error"]
    answer = service.post("/predict", data=clip.read_bytes(), content_type="video/mp4")
    assert answer.status_code == 415 and "POST /detect" in answer.get_json()["error"]
    long = tmp_path / "long.mp4"
    with video_writer(long, 5.0, (32, 24)) as write:
        for frame in frames(110, (32, 24)):  # 22 s
            write(frame)
    answer = service.post("/detect", data=long.read_bytes(), content_type="video/mp4")
    assert answer.status_code == 422 and "longer than the 20 s limit" in answer.get_json()["error"]


@pytest.mark.slow  # the detector and the model on every frame of a clip
def test_a_clip_over_the_body_limit_is_a_413(clip):
    small = create_app({"TESTING": True, "MODEL_PATH": str(TFLITE), "MAX_CONTENT_LENGTH": 1000}).test_client()
    answer = small.post("/detect", data=clip.read_bytes(), content_type="video/mp4")
    assert answer.status_code == 413 and "limit" in answer.get_json()["error"]


@pytest.mark.slow  # a fresh interpreter with the service
def test_photos_never_load_the_tracker():
    """norfair and scipy serve clips only: a worker answering photos stays as small as before."""
    script = (
        "import sys, io; from PIL import Image; from maskdetect.service import create_app\n"
        f"client = create_app({{'TESTING': True, 'MODEL_PATH': {str(TFLITE)!r}}}).test_client()\n"
        "buffer = io.BytesIO(); Image.new('RGB', (64, 64), 'white').save(buffer, 'JPEG')\n"
        "assert client.post('/detect', data=buffer.getvalue(), content_type='image/jpeg').status_code == 200\n"
        "assert client.post('/predict', data=buffer.getvalue(), content_type='image/jpeg').status_code == 200\n"
        "print(sorted({'norfair', 'scipy'} & {name.split('.')[0] for name in sys.modules}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
