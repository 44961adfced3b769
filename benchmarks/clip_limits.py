"""The costliest clips POST /detect accepts, timed through the Flask test client with the served model and detector.

    python benchmarks/clip_limits.py [--photo PHOTO] [--only json webm ...]

For each answer, the clip that costs most within the limits of maskdetect.core.constants: MAX_VIDEO_SECONDS
long, its frames as large as MAX_VIDEO_FRAME_PIXELS allows or smaller, at the highest frame rate whose
frames stay within MAX_VIDEO_DECODED_PIXELS (an annotated answer, ?format=mp4 or webm, draws and encodes
every frame: MAX_VIDEO_ANNOTATED_PIXELS). Each clip pans over PHOTO (default: scenes-dev's scene000.jpg,
a street with 3 faces; scene518.jpg has 70), written as MPEG-4 part 2 like `maskdetect watch --out`.
Prints one JSON line per clip: its size, rate, frames and bytes, the answer's status, the stride and the
frames tracked, the pixels decoded, and the wall and CPU seconds of the request. gunicorn kills a worker
whose request runs past 30 s; the limits aim at half that on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from maskdetect.core import constants  # noqa: E402
from maskdetect.core.video import video_writer  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402

# (answer format, frame size, frames a second): the costliest clips within the limits, each MAX_VIDEO_SECONDS long.
HD = (1280, 720)
assert HD[0] * HD[1] == constants.MAX_VIDEO_FRAME_PIXELS


def highest_fps(size: tuple[int, int], budget: int) -> float:
    """The highest rate (a whole number of frames in MAX_VIDEO_SECONDS) whose frames stay within ``budget`` pixels."""
    frames = budget // (size[0] * size[1])
    return frames / constants.MAX_VIDEO_SECONDS


def worst_clips() -> list[tuple[str, tuple[int, int], float]]:
    """The JSON answer decodes most at HD (every stride-th of 600 frames tracked: 200); smaller frames at a higher
    rate decode no more pixels. An annotated answer also draws and encodes every frame: the largest frames
    (fewest, each tracked) and 640x360 at 25 fps (most frames, every 3rd tracked) bound its cost."""
    json_fps = highest_fps(HD, constants.MAX_VIDEO_DECODED_PIXELS)
    clips = [("json", HD, json_fps), ("json", (848, 480), math.floor(highest_fps((848, 480), constants.MAX_VIDEO_DECODED_PIXELS)))]
    for kind in ("mp4", "webm"):
        clips += [(kind, HD, highest_fps(HD, constants.MAX_VIDEO_ANNOTATED_PIXELS)),
                  (kind, (640, 360), highest_fps((640, 360), constants.MAX_VIDEO_ANNOTATED_PIXELS))]
    return clips


def write_clip(path: Path, photo: Image.Image, size: tuple[int, int], fps: float, seconds: float) -> int:
    """``seconds`` of ``photo`` panned slowly left to right at ``size``; the number of frames written."""
    count = round(seconds * fps)
    margin = max(8, size[0] // 10)
    wide = photo.convert("RGB").resize((size[0] + margin, size[1]), Image.Resampling.BILINEAR)
    with video_writer(path, fps, size) as write:
        for index in range(count):
            left = round(margin * index / max(count - 1, 1))
            write(wide.crop((left, 0, left + size[0], size[1])))
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, help="the photo each clip pans over (default: scenes-dev's scene000.jpg)")
    parser.add_argument("--model", type=Path, default=ROOT / "deployment" / constants.SERVED_FILE)
    parser.add_argument("--only", nargs="+", choices=("json", "mp4", "webm"), help="only these answers")
    args = parser.parse_args(argv)
    photo = Image.open(args.photo or Settings.from_env().shared_data / "scenes-dev" / "images" / "scene000.jpg")

    from maskdetect.service import api, create_app

    client = create_app({"MODEL_PATH": str(args.model)}).test_client()
    sources = []
    opened = api.open_video
    api.open_video = lambda *a, **k: sources.append(opened(*a, **k)) or sources[-1]  # to read what it decoded
    with tempfile.TemporaryDirectory(prefix="maskdetect-clip-limits-") as scratch:
        for kind, size, fps in worst_clips():
            if args.only and kind not in args.only:
                continue
            path = Path(scratch) / f"{kind}-{size[0]}x{size[1]}.mp4"
            frames = write_clip(path, photo, size, fps, constants.MAX_VIDEO_SECONDS)
            body = path.read_bytes()
            wall, cpu = time.perf_counter(), time.process_time()
            answer = client.post("/detect" + ("" if kind == "json" else f"?format={kind}"), data=body, content_type="video/mp4")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            video = sources[-1]
            report = {
                "answer": kind, "size": list(size), "fps": round(fps, 2), "frames": frames, "bytes": len(body),
                "status": answer.status_code, "stride": None, "tracked": None,
                "decoded_megapixels": round(video.decoded_pixels / 1e6, 1), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            }
            if answer.status_code == 200 and kind == "json":
                summary = answer.get_json()
                report.update(stride=summary["stride"], tracked=summary["frames"])
            elif answer.status_code == 200:
                report["stride"] = api.clip_stride(video.fps, video.frame_count)
                report["tracked"] = math.ceil(frames / report["stride"])
            else:
                report["error"] = answer.get_json()["error"]
            print(json.dumps(report), flush=True)
    print(json.dumps({"limits": {name: getattr(constants, name) for name in (
        "MAX_VIDEO_SECONDS", "VIDEO_PROCESS_FPS", "MAX_VIDEO_PROCESSED_FRAMES", "MAX_VIDEO_FRAME_PIXELS",
        "MAX_VIDEO_DECODED_PIXELS", "MAX_VIDEO_ANNOTATED_PIXELS", "MAX_IMAGE_BYTES")}, "photo": Path(photo.filename).name}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
