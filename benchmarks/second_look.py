"""What /predict's second look costs and finds: ``Predictor.predict`` with and without ``second_look``.

    python benchmarks/second_look.py [--model deployment/maskdetect.tflite] [--width 2400] [--max-face 48]

The photos are scenes-dev's, enlarged to ``--width`` px (a phone photo's size) and saved as JPEG:
in such a photo a street face is a few pixels in the first look's 320 px reduction. The photos
whose largest labelled face is under ``--max-face`` px (in the original scene) are the small-face
set. Each photo goes to one of two rows by what the first look (``constants.SUBJECT_DETECTOR``)
finds; per row: how many photos the second look (``constants.SECOND_LOOK``) gives a face, how many
of those boxes are a labelled face (IoU >= 0.3), and the median milliseconds of ``Predictor.predict``
per photo without and with the second look (each photo timed ``--repeats`` times each way, in turn).
A photo whose face the first look finds never runs the second: its two timings are the same call.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskdetect.core import constants  # noqa: E402
from maskdetect.core.images import decode_reduced  # noqa: E402
from maskdetect.core.inference import Predictor  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402
from maskdetect.training.scenes import box_iou  # noqa: E402


def enlarged(path: Path, width: int) -> tuple[bytes, float]:
    """The scene resized to ``width`` px wide as a JPEG, and the factor it grew by."""
    image = Image.open(path).convert("RGB")
    factor = width / image.width
    buffer = io.BytesIO()
    image.resize((width, round(image.height * factor)), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue(), factor


def median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=settings.served_model, help="the model (default: the served one)")
    parser.add_argument("--scenes", type=Path, default=settings.shared_data / "scenes-dev", help="images/ and labels.csv")
    parser.add_argument("--width", type=int, default=2400, help="enlarge each scene to this width (default 2400 px)")
    parser.add_argument("--max-face", type=int, default=48, help="the small-face set: largest labelled face under this (px)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per photo, each way (default 3)")
    parser.add_argument("--limit", type=int, help="only the first N scenes (by name)")
    args = parser.parse_args(argv)

    boxes = defaultdict(list)
    with open(args.scenes / "labels.csv", newline="") as labels:
        for row in csv.DictReader(labels):
            boxes[row["image"]].append(tuple(int(row[key]) for key in ("xmin", "ymin", "xmax", "ymax")))
    names = sorted(boxes)[: args.limit]
    predictor = Predictor.load(args.model)
    first_only = Predictor(predictor.backend, predictor.name, predictor.subject_detector, second_look=None)
    predictor.predict((args.scenes / "images" / names[0]).read_bytes())  # warm up

    rows: dict[str, dict] = {}
    for name in names:
        data, factor = enlarged(args.scenes / "images" / name, args.width)
        photo, _ = decode_reduced(data, constants.SUBJECT_DECODE_SIDE)
        found_first = bool(predictor.subject_detector.detect(photo))
        small = max(max(b[2] - b[0], b[3] - b[1]) for b in boxes[name]) < args.max_face
        key = "first look finds a face" if found_first else "first look finds none"
        row = rows.setdefault(key, {"photos": 0, "small": 0, "second": 0, "labelled": 0, "without": [], "with": []})
        row["photos"] += 1
        row["small"] += small
        without = median_ms(lambda: first_only.predict(data), args.repeats)
        with_second = median_ms(lambda: predictor.predict(data), args.repeats)
        row["without"].append(without)
        row["with"].append(with_second)
        if not found_first:
            face = predictor.predict(data).face
            if face is not None:
                row["second"] += 1
                truth = [tuple(round(v * factor) for v in b) for b in boxes[name]]
                row["labelled"] += any(box_iou(tuple(face), t) >= 0.3 for t in truth)

    print(f"{len(names)} scenes-dev photos at {args.width} px wide, model {predictor.name}, {args.repeats} timings each way")
    print(f"| photos | n | largest face < {args.max_face} px | second look finds a face (a labelled one) "
          "| ms without second look | ms with | extra ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, row in rows.items():
        without, with_second = statistics.median(row["without"]), statistics.median(row["with"])
        found = "-" if key.startswith("first look finds a face") else f"{row['second']} ({row['labelled']})"
        print(f"| {key} | {row['photos']} | {row['small']} | {found} | {without:.1f} | {with_second:.1f} | {with_second - without:+.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
