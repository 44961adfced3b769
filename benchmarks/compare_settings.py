"""Serving settings side by side: one model under gunicorn with each setting, interleaved rounds.

    .venv/bin/python benchmarks/compare_settings.py --model deployment/maskdetect.tflite \
        --setting "sync" --setting "gthread 2x2:GUNICORN_CMD_ARGS=--worker-class gthread --threads 2"
    .venv/bin/python benchmarks/compare_settings.py --model deployment/maskdetect.h5 --detect \
        --setting "default" --setting "TF 1 thread:TF_NUM_INTRAOP_THREADS=1,TF_NUM_INTEROP_THREADS=1"

Each --setting is ``LABEL[:NAME=VALUE,...]`` (environment of that service; ``WORKERS=1`` works
too). All services run at once, idle but for the one being driven; each round sends every
scenario to every service in turn (GET /health, the uploads 1 at a time and 4 at once, and with
--detect the scenes 1 and 2 at once), so that a change in the machine's load falls on all settings
alike. --size uploads one JPEG size only (default: the 20 KB-1 MB mix). Prints every run, then the
median over the rounds of p50, requests/s and the workers' CPU per request. On a busy machine only
differences well beyond the spread between rounds mean anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
import payloads  # noqa: E402


def parse_setting(text: str) -> tuple[str, dict[str, str]]:
    label, _, assignments = text.partition(":")
    env = {}
    for assignment in filter(None, assignments.split(",")):
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip():
            raise argparse.ArgumentTypeError(f"{assignment!r} is not NAME=VALUE")
        env[name.strip()] = value
    return label.strip(), env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=bench.ROOT / "deployment" / "maskdetect.tflite")
    parser.add_argument("--setting", type=parse_setting, action="append", required=True, help="LABEL[:NAME=VALUE,...] (repeat)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detect", action="store_true", help="also POST /detect with the crowd scenes")
    parser.add_argument("--size", choices=[payloads.tag(size) for size in payloads.SIZES], help="upload only this JPEG (default: all sizes in turn)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"no model at {args.model}")
    plan = [("health", 1, 300, 5.0), ("upload", 1, 300, 8.0), ("upload", 4, 1500, 10.0)]
    if args.detect:
        plan += [("detect", 1, 30, 30.0), ("detect", 2, 40, 30.0)]

    shared = bench.Settings.from_env().shared_data
    with tempfile.TemporaryDirectory(prefix="maskdetect-settings-") as scratch:
        work = Path(scratch)
        uploads = payloads.write_jpegs(work / "site", tuple(s for s in payloads.SIZES if args.size in (None, payloads.tag(s))), shared=shared)
        scenes = payloads.scenes(shared / "scenes-dev" / "images", 20) if args.detect else []
        targets = []
        try:
            for label, env in args.setting:
                saved = {name: os.environ.get(name) for name in env}
                os.environ.update(env)
                try:
                    target = bench.Target(label, bench.ROOT, args.model.resolve())
                    targets.append(target)
                    bench.start(target, int(env.get("WORKERS", args.workers)), work)
                finally:
                    for name, value in saved.items():
                        if value is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = value
                if args.detect:
                    bench.warm_detect(target, bench.items_for("detect", [], scenes, None), int(env.get("WORKERS", args.workers)))
            results: dict = {}
            for round_ in range(args.rounds):
                for kind, concurrency, requests, seconds in plan:
                    for target in targets:
                        before = bench.cpu_seconds(target)
                        answer = bench.drive(target, bench.items_for(kind, uploads, scenes, None), concurrency, requests, seconds, warmup=1)
                        after = bench.cpu_seconds(target)
                        summary = bench.summarize(answer["results"], answer["wall_s"])
                        served = len(answer["results"]) + len(answer["warmup"])
                        cpu = sum(value - before.get(pid, 0.0) for pid, value in after.items()) / served * 1e3
                        results.setdefault((kind, concurrency, target.label), []).append((summary["p50_ms"], summary["rps"], cpu))
                        print(
                            f"round {round_} {kind} x{concurrency} {target.label:<16} n={summary['requests']} p50={bench.fmt(summary['p50_ms'])} ms "
                            f"{bench.fmt(summary['rps'])} req/s errors={summary['errors']} server CPU {cpu:.2f} ms/req "
                            f"load {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
        finally:
            for target in targets:
                bench.stop(target)
    print(f"\nmedians over {args.rounds} rounds ({args.model.name}):")
    for (kind, concurrency, label), runs in results.items():
        p50, rps, cpu = (statistics.median(run[i] for run in runs if run[i] is not None) for i in range(3))
        print(f"  {kind} x{concurrency} {label:<16} p50 {p50:.1f} ms  {rps:.1f} req/s  server CPU {cpu:.2f} ms/req")
    return 0


if __name__ == "__main__":
    sys.exit(main())
