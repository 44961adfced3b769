"""How the tracker's re-identification distance was chosen: on training photos, never on the street clips.

    python benchmarks/reid_distance.py [--seed 0]

For every maskwear-train training photo with room for clothes below its face (data/maskwear-faces.csv
after `make data faces`), the appearance (maskdetect.core.tracking.appearance: colour histograms of
the face and the clothes below) of the photo as it is is compared with that of a copy damaged as a
later video frame would be (shrunk, blurred, lit differently, noisy, the box shifted): the same
person. Random pairs of different photos give other people. Prints, per threshold, the share of each
joined; FaceTracker's ``reid_distance`` is the threshold that joins 95 % or more of the same person
and under 1 % of others.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskdetect.core.images import decode_image  # noqa: E402
from maskdetect.core.tracking import appearance, appearance_distance  # noqa: E402

THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45)


def later_frame(pixels: np.ndarray, box: list[int], rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    scale = rng.uniform(0.4, 0.8)
    small = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), rng.uniform(0.3, 1.2)).astype(np.float32)
    small = np.clip(small * rng.uniform(0.75, 1.25) + rng.normal(0, 3, small.shape), 0, 255).astype(np.uint8)
    dx, dy = rng.uniform(-0.15, 0.15, 2) * (box[2] - box[0])
    return small, [int((box[0] + dx) * scale), int((box[1] + dy) * scale), int((box[2] + dx) * scale), int((box[3] + dy) * scale)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    looks, later = [], []
    with open(ROOT / "data" / "maskwear-faces.csv", newline="") as rows:
        for row in csv.DictReader(rows):
            path = ROOT / "data" / "maskwear" / "train" / row["path"]
            if not row["xmin"] or not path.exists():
                continue
            box = [int(row[key]) for key in ("xmin", "ymin", "xmax", "ymax")]
            pixels = np.asarray(decode_image(path).convert("RGB"))
            if box[3] - box[1] < 16 or box[3] + 1.5 * (box[3] - box[1]) > pixels.shape[0]:
                continue  # no clothes in the photo
            looks.append(appearance(cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV), box))
            damaged, moved = later_frame(pixels, box, rng)
            later.append(appearance(cv2.cvtColor(damaged, cv2.COLOR_RGB2HSV), moved))
    same = np.array([appearance_distance(a, b) for a, b in zip(looks, later)])
    pairs = rng.integers(0, len(looks), (5000, 2))
    others = np.array([appearance_distance(looks[a], later[b]) for a, b in pairs if a != b])
    print(json.dumps({"photos": len(looks), "other_pairs": len(others), "joined": [
        {"threshold": t, "same_person": round(float(np.mean(same < t)), 3), "other_people": round(float(np.mean(others < t)), 3)}
        for t in THRESHOLDS]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
