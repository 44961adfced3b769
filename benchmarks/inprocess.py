"""Where the time of a request goes, without HTTP: the parts timed in one fresh process.

    python benchmarks/inprocess.py --model deployment/maskdetect.tflite --model deployment/maskdetect.h5 \
        --jpeg upload-20KB.jpg ... --scene scene000.jpg --repeats 200

Prints one JSON object:

- ``preprocess``: ``maskdetect.core.images.preprocess(jpeg bytes)`` (decode + resize + scale) per JPEG;
- per model, in the order given: ``load_s`` (``Predictor.load`` with its face detector, including
  the import of its runtime the first time: put the .tflite first so that its time has no
  TensorFlow in it), ``model`` (the backend's call on one preprocessed image), ``predict``
  (``Predictor.predict`` of the ~100 KB JPEG's bytes as /predict answers: decode, find the largest
  face, crop, preprocess, model call, answer) and ``analyze`` (``CrowdAnalyzer.analyze`` of the
  scene: the crowd detector + the face crops' batch);
- ``find_face``: /predict's face detector (``constants.SUBJECT_DETECTOR``) alone on the decoded ~100 KB JPEG;
- ``detect``: /detect's face detector (``constants.DETECTOR``) alone on the scene (the same for every model).

Each timing: median, p95, fastest and CPU per call (all threads of the process), after warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timing(call, repeats: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        call()
    times = []
    cpu = time.process_time()
    for _ in range(repeats):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    cpu = (time.process_time() - cpu) / repeats
    times.sort()
    return {
        "n": repeats,
        "median_ms": statistics.median(times) * 1e3,
        "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] * 1e3,
        "min_ms": times[0] * 1e3,
        "cpu_ms": cpu * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="a model file (repeat; .tflite first)")
    parser.add_argument("--jpeg", action="append", required=True, help="an upload JPEG (repeat); the one nearest 100 KB is used for predict")
    parser.add_argument("--scene", required=True, help="a crowd scene for detect and analyze")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per measurement (the scene: a tenth)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose maskdetect package to time (default this one)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    sys.path.insert(0, str(args.root.resolve()))
    from maskdetect.core import constants
    from maskdetect.core.crowd import CrowdAnalyzer
    from maskdetect.core.faces import YuNetDetector
    from maskdetect.core.images import decode_image, preprocess
    from maskdetect.core.inference import Predictor

    jpegs = {Path(path).name: Path(path).read_bytes() for path in args.jpeg}
    typical = min(jpegs.values(), key=lambda data: abs(len(data) - 100_000))
    scene = decode_image(Path(args.scene).read_bytes())
    scene_repeats = max(1, args.repeats // 10)
    report: dict = {
        "preprocess": {name: {"bytes": len(data), **timing(lambda: preprocess(data), args.repeats)} for name, data in jpegs.items()},
        "predict_jpeg_bytes": len(typical),
        "scene": Path(args.scene).name,
        "models": {},
    }
    predictors = {}
    for path in args.model:
        begin = time.perf_counter()
        predictor = Predictor.load(path)
        load_s = time.perf_counter() - begin
        batch = preprocess(typical, size=predictor.backend.input_size, channels=predictor.backend.channels)[None]
        report["models"][Path(path).name] = {
            "name": predictor.name,
            "load_s": load_s,
            "tensorflow_loaded": "tensorflow" in sys.modules,
            "model": timing(lambda: predictor.backend.predict(batch), args.repeats),
            "predict": timing(lambda: predictor.predict(typical), args.repeats),
        }
        predictors[Path(path).name] = predictor
    photo = decode_image(typical)
    subject = YuNetDetector(**constants.SUBJECT_DETECTOR).load()
    report["find_face"] = timing(lambda: subject.detect(photo), args.repeats)
    detector = YuNetDetector(**constants.DETECTOR).load()
    report["detect"] = timing(lambda: detector.detect(scene), scene_repeats, warmup=2)
    for name, predictor in predictors.items():
        analyzer = CrowdAnalyzer(detector, predictor)
        report["models"][name]["analyze"] = timing(lambda: analyzer.analyze(scene), scene_repeats, warmup=2)
        report["models"][name]["faces"] = len(analyzer.analyze(scene).faces)
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
