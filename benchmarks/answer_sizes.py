"""The largest answer each annotated format of POST /detect can give, and what a clip in flight writes to /tmp.

    python benchmarks/answer_sizes.py [--skip-webm]

Noise is the worst case of every encoder here: a photo's answer is a 1920x1920 square of noise (the
largest the cap lets through; PNG's pixel cap shrinks it to 1788x1788) encoded as
maskdetect.core.crowd.annotated_photo encodes it; a clip's annotated answer is noise frames at the
MAX_VIDEO_ANNOTATED_PIXELS limit (62 of 1280x720 and 250 of 640x360) written by the video writer
POST /detect uses, into the folder /tmp would hold. Prints one JSON line per answer: its format, size in
pixels, bytes and seconds to encode. documentation/deployment.md ("Sizing: /tmp") sizes nginx's
buffers and the pod's /tmp from these.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from maskdetect.core import constants  # noqa: E402
from maskdetect.core.crowd import capped_size  # noqa: E402
from maskdetect.core.video import video_writer  # noqa: E402


def photo_answers(rng) -> list[dict]:
    noise = Image.fromarray(rng.integers(0, 256, (constants.ANNOTATED_MAX_SIDE, constants.ANNOTATED_MAX_SIDE, 3), dtype=np.uint8))
    rows = []
    for answer_format, (pillow_format, _, options) in constants.ANNOTATED_FORMATS.items():
        max_pixels = constants.ANNOTATED_PNG_MAX_PIXELS if pillow_format == "PNG" else None
        size = capped_size(noise.size, constants.ANNOTATED_MAX_SIDE, max_pixels)
        image = noise.resize(size) if size != noise.size else noise
        buffer, started = io.BytesIO(), time.perf_counter()
        image.save(buffer, pillow_format, **options)
        rows.append({"answer": f"photo, format={answer_format}", "size": f"{size[0]}x{size[1]}", "bytes": buffer.tell(),
                     "seconds": round(time.perf_counter() - started, 2)})
    return rows


def clip_answers(rng, kinds: list[str]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="maskdetect-answer-sizes-") as folder:
        for kind in kinds:
            for width, height in ((1280, 720), (640, 360)):
                frames = constants.MAX_VIDEO_ANNOTATED_PIXELS // (width * height)
                fps = frames / constants.MAX_VIDEO_SECONDS
                path, started = Path(folder) / f"detected.{kind}", time.perf_counter()
                with video_writer(path, fps, (width, height)) as write:
                    for _ in range(frames):
                        write(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)))
                rows.append({"answer": f"clip, format={kind}", "size": f"{frames} of {width}x{height} at {fps:g} fps",
                             "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - started, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-webm", action="store_true", help="leave out the WebM clips (VP8 takes about 25 s each on noise)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(25)
    for row in photo_answers(rng) + clip_answers(rng, ["mp4"] + ([] if args.skip_webm else ["webm"])):
        print(json.dumps(row), flush=True)
    print(json.dumps({"limit": "MAX_IMAGE_BYTES (a body, and a clip on a worker's disk)", "bytes": constants.MAX_IMAGE_BYTES,
                      "megabytes": round(constants.MAX_IMAGE_BYTES / 1e6, 2), "ceil_mib": math.ceil(constants.MAX_IMAGE_BYTES / 2**20)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
