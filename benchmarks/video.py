"""Video throughput: `maskdetect watch`'s work on 640x360 clips, detection and tracking on every frame.

    python benchmarks/video.py --model deployment/maskdetect.tflite [--clips 3] [--seconds 6]

The clips are made from scenes-dev photos (maskdetect.training.clips: a virtual camera panning and
zooming over a labelled crowd photo whose people move against its background), so they hold real
faces. Prints one JSON object: frames, wall seconds, frames per second, CPU ms per frame (all
threads), faces per frame. One process, as `maskdetect watch` runs: decoding, detection (1x and 2x
passes), classification, tracking.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskdetect.core.constants import DETECTOR  # noqa: E402
from maskdetect.core.crowd import CrowdAnalyzer  # noqa: E402
from maskdetect.core.faces import YuNetDetector  # noqa: E402
from maskdetect.core.inference import Predictor  # noqa: E402
from maskdetect.core.tracking import analyze_video  # noqa: E402
from maskdetect.core.video import open_video  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402
from maskdetect.training.clips import make_clips  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "deployment" / "maskdetect.tflite")
    parser.add_argument("--clips", type=int, default=3, help="clips to make and watch (default 3)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each clip at 25 fps (default 6)")
    parser.add_argument("--scenes", type=Path, help="scenes-dev (default $MASKDETECT_SHARED_DATA/scenes-dev)")
    args = parser.parse_args(argv)
    scenes = args.scenes or Settings.from_env().shared_data / "scenes-dev"
    analyzer = CrowdAnalyzer(YuNetDetector(**DETECTOR).load(), Predictor.load(args.model, face_centred=False))
    with tempfile.TemporaryDirectory(prefix="maskdetect-video-bench-") as scratch:
        clips = make_clips(scenes / "images", scenes / "labels.csv", Path(scratch), count=args.clips, seconds=args.seconds)
        analyze_video(open_video(clips[0][0]), analyzer)  # warm-up: buffers and the tracker's imports
        frames = faces = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for clip, _ in clips:
            counted = []
            tracker = analyze_video(open_video(clip), analyzer, on_frame=counted.append)
            frames += tracker.frames
            faces += sum(len(result.faces) for result in counted)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({
        "clips": len(clips), "size": [640, 360], "frames": frames, "seconds": round(wall, 2),
        "fps": round(frames / wall, 1), "cpu_ms_per_frame": round(cpu / frames * 1000, 1),
        "faces_per_frame": round(faces / frames, 2), "model": args.model.name,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
