"""Soak check: the tracker's state and speed over a long stream, made by looping a real clip.

    python benchmarks/soak.py [--clip street-video/walker-passing-car/walker-passing-car.mp4] [--minutes 30]

The clip's frames are analysed once (YuNet and the classifier; their answers do not depend on what
came before), then fed again and again, with a timestamp that keeps growing, through the tracker
(camera motion, re-identification, pictures, encounters) as `maskdetect watch` runs it. Prints one
JSON line per minute of stream: the tracker's frames/s, the process's resident memory, and the size
of what the tracker keeps (tracks, close pairs, intervals); then a last line with the first and last
minute side by side.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskdetect.core.constants import DETECTOR  # noqa: E402
from maskdetect.core.crowd import CrowdAnalyzer  # noqa: E402
from maskdetect.core.faces import YuNetDetector  # noqa: E402
from maskdetect.core.inference import Predictor  # noqa: E402
from maskdetect.core.tracking import FaceTracker  # noqa: E402
from maskdetect.core.video import open_video  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402


class Recorded:
    """The analyzer's answers for the clip's frames, given again in a loop."""

    def __init__(self, analyzer: CrowdAnalyzer, analyses: list):
        self.camera, self.predictor, self.analyses, self.calls = analyzer.camera, analyzer.predictor, analyses, 0

    def analyze(self, image):
        self.calls += 1
        return self.analyses[(self.calls - 1) % len(self.analyses)]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="default: $MASKDETECT_SHARED_DATA/street-video/walker-passing-car/walker-passing-car.mp4")
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of stream (default 30)")
    parser.add_argument("--model", type=Path, default=ROOT / "deployment" / "maskdetect.tflite")
    args = parser.parse_args(argv)
    clip = args.clip or Settings.from_env().shared_data / "street-video" / "walker-passing-car" / "walker-passing-car.mp4"
    analyzer = CrowdAnalyzer(YuNetDetector(**DETECTOR).load(), Predictor.load(args.model, face_centred=False))
    video = open_video(clip)
    frames = [frame for _, frame in video]
    recorded = Recorded(analyzer, [analyzer.analyze(frame) for frame in frames])
    tracker = FaceTracker(recorded, video.fps)
    per_minute = round(60 * video.fps)
    rows, started = [], time.perf_counter()
    for index in range(round(args.minutes * per_minute)):
        tracker.update(index, frames[index % len(frames)])
        if (index + 1) % per_minute == 0:
            now = time.perf_counter()
            rows.append({"minute": len(rows) + 1, "fps": round(per_minute / (now - started), 1), "rss_mb": round(rss_mb(), 1),
                         "tracks": len(tracker.tracks), "live_tracks": len(tracker._live), "close_pairs": len(tracker._close),
                         "intervals": len(tracker._in_view), "people": len(tracker.people())})
            print(json.dumps(rows[-1]), flush=True)
            started = now
    print(json.dumps({"clip": clip.name, "minutes": args.minutes, "first": rows[0], "last": rows[-1]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
