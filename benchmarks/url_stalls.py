"""The latency behind tests/test_url_stalls.py, which asserts only statuses and the order of events.

    .venv/bin/python benchmarks/url_stalls.py            # ~40 s; prints one line per figure

`maskdetect serve` (nginx, the URL fetch stage, 2 sync workers, the committed .tflite) on 127.0.0.1;
a loopback site whose image URL stalls 10 s (the fetch deadline). 8 clients (127.0.0.2-9) each POST
/predict {"url": it} twice in a row while 127.0.0.10 uploads a photo to /predict and asks /health in
turn. Printed: the slowest and median upload and /health answer while all 8 fetches were open (the
issue's target: within 2 s), every status seen, and the memory (RSS, PSS) of the fetch stage's two
processes and of each compute worker before and after. `--no-fetch-stage` runs the same against
gunicorn's workers fetching themselves (`maskdetect serve --no-proxy`), the situation before.
The client shares the machine's cores: a busy machine shows larger numbers, not a failure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]  # this checkout's package and test helpers

from maskdetect.core import constants  # noqa: E402
from tests.servers import gunicorn, serve  # noqa: E402
from tests.stalls import StallingSite, stall_scenario  # noqa: E402

TFLITE = ROOT / "deployment" / "maskdetect.tflite"
JPEG = constants.PROJECT_ROOT.parent / "shared" / "data" / "observations" / "with_mask" / "0-with-mask.jpg"
MB = 2**20


def memory(root_pid: int) -> dict[str, list[tuple[float, float]]]:
    """(RSS, PSS) in MB of the fetch stage's processes and of the compute workers under ``root_pid``."""
    found: dict[str, list[tuple[float, float]]] = {"fetch stage (master, worker)": [], "compute workers": []}
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            command, info = " ".join(child.cmdline()), child.memory_full_info()
            parent = " ".join(child.parent().cmdline())
        except psutil.Error:
            continue
        if "gunicorn-fetch.conf.py" in command:
            found["fetch stage (master, worker)"].append((info.rss / MB, info.pss / MB))
        elif "gunicorn.conf.py" in command and "gunicorn.conf.py" in parent:
            found["compute workers"].append((info.rss / MB, info.pss / MB))
    return found


def _show(label: str, seconds: list[float]) -> None:
    if seconds:
        print(f"{label}: {len(seconds)} answers, slowest {max(seconds):.3f} s, median {statistics.median(seconds):.3f} s")
    else:
        print(f"{label}: no answers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jpeg", type=Path, default=JPEG, help="the photo uploaded and served by the stalling site")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-fetch-stage", dest="fetch_stage", action="store_false",
                        help="gunicorn alone, its workers fetching the URLs (as before the fetch stage)")
    args = parser.parse_args(argv)
    jpeg = args.jpeg.read_bytes()
    start = serve if args.fetch_stage else gunicorn
    with tempfile.TemporaryDirectory() as work:
        with start(Path(work) / "serve.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_ALLOW_PRIVATE_URLS=1) as (base_url, process):
            before = memory(process.pid)
            with StallingSite(jpeg) as site:
                run = stall_scenario(base_url, jpeg, site, clients=args.clients, rounds=2, at_once=None if args.fetch_stage else 2)
                after = memory(process.pid)
    print(f"{'maskdetect serve (fetch stage)' if args.fetch_stage else 'gunicorn alone (workers fetch)'}, "
          f"{args.clients} clients on a URL stalling {site.stall_s:g} s, 2 rounds each")
    _show("uploads while every stalled fetch was open", [a.seconds for a in run.during_stall(run.uploads)])
    _show("/health while every stalled fetch was open", [a.seconds for a in run.during_stall(run.health)])
    _show("uploads, the whole run", [a.seconds for a in run.uploads])
    _show("/health, the whole run", [a.seconds for a in run.health])
    for label, answers in (("uploads", run.uploads), ("/health", run.health), ("stalled URLs", run.stalled)):
        print(f"statuses, {label}: {dict(sorted(Counter(a.status for a in answers).items()))}")
    for label, reading in (("at rest", before), ("after the stalls", after)):
        for role, values in reading.items():
            shown = ", ".join(f"{rss:.0f}/{pss:.0f}" for rss, pss in values) or "none"
            print(f"memory {label}, {role}: RSS/PSS MB {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
