"""Where a worker spends a request: pyinstrument inside gunicorn, under the benchmark's load.

    .venv/bin/python benchmarks/profile_service.py --model deployment/maskdetect.tflite --kind upload --size 100KB
    .venv/bin/python benchmarks/profile_service.py --model deployment/maskdetect.h5 --kind detect --requests 30

Starts gunicorn with benchmarks/gunicorn_profile.conf.py (the production config, plus a
pyinstrument profiler around each connection a worker handles), sends the requests of one
scenario of benchmarks/bench.py from the driver process, stops gunicorn and prints each
worker's profile: gunicorn's request parsing, Flask, decoding, finding the face, the model,
the answer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
import payloads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=bench.ROOT / "deployment" / "maskdetect.tflite")
    parser.add_argument("--kind", choices=("health", "upload", "url", "detect"), default="upload")
    parser.add_argument("--size", choices=[payloads.tag(size) for size in payloads.SIZES], help="only this upload size (default: all in turn)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--all-frames", action="store_true", help="show library frames too (pyinstrument's show_all)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"no model at {args.model}")

    shared = bench.Settings.from_env().shared_data
    with tempfile.TemporaryDirectory(prefix="maskdetect-profile-") as scratch, contextlib.ExitStack() as cleanup:
        work = Path(scratch)
        sizes = tuple(size for size in payloads.SIZES if args.size in (None, payloads.tag(size)))
        uploads = payloads.write_jpegs(work / "site", sizes, shared=shared) if args.kind in ("upload", "url") else []
        scenes = payloads.scenes(shared / "scenes-dev" / "images", 20) if args.kind == "detect" else []
        (work / "profiles").mkdir()
        site = cleanup.enter_context(bench.serve_folder(work / "site")) if args.kind == "url" else None
        target = bench.Target(args.model.suffix.lstrip("."), bench.ROOT, args.model.resolve())
        try:
            bench.start(
                target, args.workers, work, config=HERE / "gunicorn_profile.conf.py",
                PROFILE_DIR=str(work / "profiles"), PROFILE_SHOW_ALL="1" if args.all_frames else "0",
                GUNICORN_BASE_CONFIG=str(bench.ROOT / "deployment" / "gunicorn.conf.py"),
            )
            items = bench.items_for(args.kind, uploads, scenes, site)
            answer = bench.drive(target, items, args.concurrency, args.requests, 600, warmup=2)
            summary = bench.summarize(answer["results"], answer["wall_s"])
        finally:
            bench.stop(target)
        print(
            f"{args.kind} {args.size or ''} on {args.model.name}: {summary['requests']} requests, p50 {bench.fmt(summary['p50_ms'])} ms, "
            f"{summary['errors']} errors; load average {os.getloadavg()[0]:.2f}\n"
        )
        profiles = sorted((work / "profiles").glob("worker-*.txt"))
        if not profiles:
            print(f"no profile was written; gunicorn's log:\n{bench.tail(target.log)}", file=sys.stderr)
            return 1
        for profile in profiles:
            print(f"== {profile.stem}\n{profile.read_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
