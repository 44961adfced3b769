"""The clip reader alone: frames per second of video read at a stride, skipped frames grabbed or converted.

    python benchmarks/video_reader.py [CLIP] [--stride 3] [--rounds 5]

Reads CLIP (default: the 480x848 street clip walker-passing-car of the shared data) through
``open_video`` two ways, alternating, and prints one JSON object with the median over the rounds:
``all``, every frame converted to an RGB image and every stride-th kept (what ``analyze_video``
did before ``VideoSource.frames``), and ``stride``, ``frames(stride)``: the frames between grabbed,
never converted. Frames per second count every frame of the video, read or skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskdetect.core.video import open_video  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path,
                        default=Settings.from_env().shared_data / "street-video" / "walker-passing-car" / "walker-passing-car.mp4")
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    video = open_video(args.clip)
    frames = sum(1 for _ in video)

    def every_frame() -> int:
        return sum(1 for index, _ in open_video(args.clip) if index % args.stride == 0)

    def strided() -> int:
        return sum(1 for _ in open_video(args.clip).frames(args.stride))

    times = {"all": [], "stride": []}
    kept = {}
    for _ in range(args.rounds):
        for name, read in (("all", every_frame), ("stride", strided)):
            started = time.perf_counter()
            kept[name] = read()
            times[name].append(time.perf_counter() - started)
    assert kept["all"] == kept["stride"], kept
    rates = {name: round(frames / statistics.median(values), 1) for name, values in times.items()}
    print(json.dumps({
        "clip": args.clip.name, "size": list(video.size), "frames": frames, "stride": args.stride, "kept": kept["stride"],
        "frames_per_s_all_converted": rates["all"], "frames_per_s_strided": rates["stride"],
        "speedup": round(rates["stride"] / rates["all"], 2), "rounds": args.rounds,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
