"""The Lambda handler's cold start and warm latency, in this fresh process (no AWS needed).

    python benchmarks/lambda_handler.py --model deployment/maskdetect.tflite [--image photo.jpg] [--requests 50]

Prints one JSON object: the seconds to import deployment/aws/lambda_function.py (Lambda's init
phase, the model not loaded), to answer the first event (model and face detector load + answer),
the face box answered for (null: no face found, the whole photo), the warm p50/p95 of direct
invocations {"image": <base64>} (answered for the largest face, as the image does), the peak RSS,
and whether TensorFlow was imported (it must not be for a .tflite). Lambda runs on fewer CPU
(1024 MB: ~0.58 vCPU) than this machine, so its times are longer; the memory is comparable.
Pass a portrait as --image: the generated default holds no face.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model file (.tflite for the Lambda image)")
    parser.add_argument("--image", help="a photo to send (default: a generated 240x320 JPEG)")
    parser.add_argument("--requests", type=int, default=50, help="warm requests to time (default 50)")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    model = Path(args.model).resolve()
    if not model.is_file():
        parser.error(f"no model at {model}")
    os.environ["MODEL_PATH"] = str(model)
    os.environ.pop("MASKDETECT_FACE_CENTRED", None)  # the image sets none: it answers for the largest face
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT"):
        os.environ.pop(name, None)  # outside Lambda: the model loads on the first event, timed apart

    # The handler logs a line per request to stdout (CloudWatch in AWS): kept, but not in the report.
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT / "deployment" / "aws"))
    import lambda_function

    imported = time.perf_counter() - started
    if args.image:
        image = Path(args.image).read_bytes()
    else:
        from PIL import Image

        buffer = io.BytesIO()
        Image.effect_mandelbrot((240, 320), (-2, -1.5, 1, 1.5), 60).convert("RGB").save(buffer, "JPEG", quality=90)
        image = buffer.getvalue()
    event = {"image": base64.b64encode(image).decode("ascii")}

    started = time.perf_counter()
    answer = lambda_function.lambda_handler(event, None)
    first = time.perf_counter() - started
    if "error" in answer:
        sys.stdout = stdout
        print(f"ERROR: the handler answered {answer}", file=sys.stderr)
        return 1
    times = []
    for _ in range(args.requests):
        started = time.perf_counter()
        lambda_function.lambda_handler(event, None)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    sys.stdout = stdout
    report = {
        "model": answer["model"],
        "model_bytes": model.stat().st_size,
        "image_bytes": len(image),
        "import_s": round(imported, 3),
        "first_event_s": round(first, 3),
        "requests": args.requests,
        "face": answer["face"],  # the box answered for; null when no face was found (the whole photo)
        "p50_ms": round(times[len(times) // 2], 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
