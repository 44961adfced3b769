"""`make bench`: the prediction service's latency, throughput, memory and cold start, .tflite and .h5.

    .venv/bin/python benchmarks/bench.py            # the full run (~10 min), writes benchmarks/RESULTS.md
    .venv/bin/python benchmarks/bench.py --quick    # small counts (~1 min), the same tables

For each model (deployment/maskdetect.tflite on LiteRT, what `make serve`, the image and the pods
serve by default and what the targets are checked against; deployment/maskdetect.h5 on Keras beside
it) it starts the service as deployed, `maskdetect serve` (nginx in front of gunicorn with
deployment/gunicorn.conf.py: WORKERS sync workers), on 127.0.0.1 and a free port, as it runs by default (/predict answers for the largest
face the YuNet detector finds), and times process start to the first 200 on /health (cold start).
A second process, benchmarks/driver.py, then sends the scenarios below to each service in turn
(scenario by scenario, so both models see the same machine load), bounded in count and time,
after each worker has answered one /detect and then, for the memory target, 20 alternating
/predict and /detect calls per worker (one at a time):

- GET /health (the cost of HTTP, gunicorn and Flask alone);
- POST /predict with uploaded JPEGs of 20 KB to 1 MB (benchmarks/payloads.py), one at a time
  and 4 at once;
- POST /predict with {"url": ...} of the same JPEGs, served by an HTTP server on 127.0.0.1 in this
  process (the service runs with MASKDETECT_ALLOW_PRIVATE_URLS=1 for that, and with nginx's per-client
  JSON limits lifted: every scenario comes from one address);
- POST /detect with ~400 px crowd scenes from scenes-dev (MASKDETECT_SHARED_DATA), last.

The seed-style baseline (benchmarks/seed_app.py: the .h5, model.predict on the whole photo) is served
by gunicorn alone, as the original was, and sent /health and the uploads only, for issue 15's ratio (--no-seed skips it).

Each worker's memory (psutil RSS / USS) is read after start, after the alternating calls, after
the /predict scenarios and after /detect. benchmarks/inprocess.py times the parts without HTTP in one fresh process: the
bare model call per backend, decode + preprocess per JPEG size, Predictor.predict, the face detector.
The report (benchmarks/RESULTS.md unless --out) is rewritten atomically; everything below the
line "<!-- kept -->" in an existing report (the hand-written notes) is kept.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # payloads beside it; the test helpers and the package of this checkout

import payloads  # noqa: E402
from maskdetect.core.constants import MODEL_FILE, SERVED_FILE  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402
from tests.servers import free_port, serve_folder, wait_for_health  # noqa: E402

KEEP_MARKER = "<!-- kept -->"
TARGETS_HEADING = "## Targets (the model served by default)"
PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "opencv-python-headless", "flask", "werkzeug", "gunicorn", "pillow", "numpy", "psutil")

# Targets on 2 cores for the runtime served by default (deployment/maskdetect.tflite on LiteRT),
# face-centred (issue 15; cold start: issue 7; video: issue 18).
TARGETS = {
    "upload_100kb_p50_ms": 12.0,
    "upload_vs_seed": 0.15,  # the default's upload p50 / the seed app's, the 100 KB JPEG, in the same run
    "upload_rps": 80.0,  # the 20 KB-1 MB uploads, 4 at once
    "rss_mb": 150.0,  # each worker, after 20 alternating /predict and /detect calls (ALTERNATING_CALLS)
    "detect_p50_ms": 40.0,  # a 400 px scene, 1 at a time
    "cold_start_s": 3.0,
    "video_fps": 15.0,  # maskdetect watch on 640x360, every frame
}
ALTERNATING_CALLS = 20  # per worker, one at a time: /predict (the upload mix in turn) and /detect (the scenes) in turn
SEED_LABEL = "seed (h5, whole photo)"
SEED_APP = "seed_app:app"  # benchmarks/seed_app.py, for gunicorn
TYPICAL_UPLOAD = payloads.tag(100_000)  # the JPEG the upload latency target is stated for


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: str  # health | upload | url | detect
    concurrency: int
    requests: int
    seconds: float


def scenarios(quick: bool) -> list[Scenario]:
    """(count, seconds) bound every scenario; --quick shrinks the counts, not the kinds."""
    n = (lambda full, small: small) if quick else (lambda full, small: full)
    cap = 15.0 if quick else None
    return [
        Scenario("health", "GET /health", "health", 1, n(300, 20), cap or 20),
        Scenario("upload-c1", "POST /predict upload, 1 at a time", "upload", 1, n(600, 12), cap or 45),
        Scenario("upload-c4", "POST /predict upload, 4 at once", "upload", 4, n(3000, 24), cap or 30),
        Scenario("url-c1", "POST /predict URL, 1 at a time", "url", 1, n(300, 6), cap or 30),
        Scenario("url-c4", "POST /predict URL, 4 at once", "url", 4, n(1500, 12), cap or 25),
        Scenario("detect-c1", "POST /detect 400 px scene, 1 at a time", "detect", 1, n(100, 2), cap or 45),
        Scenario("detect-c2", "POST /detect 400 px scene, 2 at once", "detect", 2, n(100, 2), cap or 40),
    ]


@dataclass
class Target:
    """One service under test: a model served from a checkout."""

    label: str
    root: Path
    model: Path
    port: int = 0
    process: subprocess.Popen | None = None
    log: Path | None = None
    cold_start_s: float | None = None
    pool_ready_s: float | None = None
    health: dict = field(default_factory=dict)
    worker_pids: set = field(default_factory=set)
    memory: dict = field(default_factory=dict)  # phase -> [(rss_mb, uss_mb)] per worker
    runs: dict = field(default_factory=dict)  # scenario key -> summary
    first_detect: list = field(default_factory=list)  # (status, seconds) of the /detect warm-up
    alternated: dict = field(default_factory=dict)  # the summary of the alternating calls (alternate())
    inprocess: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # more environment variables for its gunicorn
    app: str | None = None  # gunicorn's APP_MODULE from benchmarks/ (None: the config's wsgi_app)
    kinds: tuple = ("health", "upload", "url", "detect")  # the scenario kinds it is sent
    default: bool = False  # the runtime served by default (deployment/maskdetect.tflite): the targets are its


# ---------------------------------------------------------------------------- helpers


def percentile(values, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def summarize(results: list, wall_s: float) -> dict:
    """Latency percentiles (ms) of the 2xx answers, requests/s, and every failure by kind."""
    ok = [latency * 1e3 for _, status, latency in results if 200 <= status < 300]
    failures = {"4xx": 0, "5xx": 0, "connection": 0, "timeout": 0}
    for _, status, _ in results:
        if status == -1:
            failures["timeout"] += 1
        elif status == 0:
            failures["connection"] += 1
        elif 400 <= status < 500:
            failures["4xx"] += 1
        elif status >= 500 or status < 200 or 300 <= status < 400:
            failures["5xx"] += 1
    by_tag: dict[str, list] = {}
    for tag, status, latency in results:
        if 200 <= status < 300:
            by_tag.setdefault(tag, []).append(latency * 1e3)
    return {
        "requests": len(results),
        "ok": len(ok),
        "wall_s": wall_s,
        "rps": len(ok) / wall_s if wall_s > 0 else None,
        "p50_ms": percentile(ok, 50),
        "p95_ms": percentile(ok, 95),
        "p99_ms": percentile(ok, 99),
        "max_ms": max(ok) if ok else None,
        "errors": sum(failures.values()),
        "failures": failures,
        "by_tag": {tag: {"n": len(v), "p50_ms": percentile(v, 50), "p95_ms": percentile(v, 95)} for tag, v in by_tag.items()},
    }


def drive(target: Target, items: list[dict], concurrency: int, requests: int, seconds: float, warmup: int) -> dict:
    """Run benchmarks/driver.py against ``target`` (a separate process); its raw answer."""
    spec = {
        "host": "127.0.0.1", "port": target.port, "timeout": 90, "items": items,
        "concurrency": concurrency, "requests": requests, "seconds": seconds, "warmup": warmup,
    }
    done = subprocess.run(
        [sys.executable, str(HERE / "driver.py")], input=json.dumps(spec), capture_output=True, text=True,
        timeout=seconds + 90 * (warmup + 2) + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the driver failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _children(target: Target) -> list[psutil.Process]:
    try:
        return psutil.Process(target.process.pid).children()
    except psutil.NoSuchProcess:
        return []


def _command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def workers(target: Target) -> list[psutil.Process]:
    """The gunicorn workers: the children of gunicorn, or of the compute gunicorn under `maskdetect serve` (not the URL fetch stage's)."""
    children = _children(target)
    if "maskdetect.serve" in " ".join(target.process.args):  # maskdetect serve -> gunicorn -> workers
        try:
            children = [worker for master in children if "gunicorn.conf.py" in _command_line(master) for worker in master.children()]
        except psutil.NoSuchProcess:
            return []
    target.worker_pids.update(child.pid for child in children)
    return children


def nginx_processes(target: Target) -> list[psutil.Process]:
    """nginx's master and worker under `maskdetect serve` (none when gunicorn is served alone)."""
    found = []
    for child in _children(target):
        if "nginx" in _command_line(child):
            try:
                found += [child, *child.children()]
            except psutil.NoSuchProcess:
                pass
    return found


def cpu_seconds(target: Target) -> dict[int, float]:
    """CPU time (user + system) used so far by each worker and nginx process, by pid."""
    seconds = {}
    for worker in workers(target) + nginx_processes(target):
        try:
            times = worker.cpu_times()
        except psutil.Error:
            continue
        seconds[worker.pid] = times.user + times.system
    return seconds


def read_memory(target: Target, phase: str) -> None:
    """RSS and USS (the worker's own pages) of every worker, in MB."""
    readings = []
    for worker in workers(target):
        try:
            info = worker.memory_full_info()
        except psutil.Error:
            continue
        readings.append((info.rss / 2**20, info.uss / 2**20))
    target.memory[phase] = readings


def start(target: Target, workers_count: int, work: Path, config: Path | None = None, **settings: str) -> None:
    """`maskdetect serve` (gunicorn alone for the seed app or another ``config``); cold start = Popen to the first 200 on /health.

    ``config`` replaces deployment/gunicorn.conf.py (benchmarks/gunicorn_profile.conf.py wraps it);
    ``settings`` are more environment variables for the service.
    """
    target.port = free_port()
    env = dict(os.environ)
    env.update(
        HOST="127.0.0.1", PORT=str(target.port), WORKERS=str(workers_count), MODEL_PATH=str(target.model),
        MASKDETECT_ALLOW_PRIVATE_URLS="1", PYTHONPATH=str(target.root),
        # One client address drives every scenario: nginx's per-client JSON limits, meant for many callers, are lifted.
        MASKDETECT_URL_CLIENT_CONNECTIONS="64", MASKDETECT_URL_CLIENT_RATE="100000", MASKDETECT_URL_CLIENT_BURST="100000",
        **settings,
    )
    target.log = work / f"gunicorn-{target.label.replace(' ', '_')}.log"
    log = open(target.log, "wb")
    begin = time.perf_counter()
    command = [sys.executable, "-m", "gunicorn", "-c", str(config or target.root / "deployment" / "gunicorn.conf.py")]
    if target.app:  # the positional APP_MODULE overrides the config's wsgi_app; every other setting stays
        command += ["--pythonpath", str(HERE), target.app]
    elif config is None and (target.root / "maskdetect" / "serve.py").is_file():
        command = [sys.executable, "-m", "maskdetect.serve"]  # as deployed: nginx in front of gunicorn
    target.process = subprocess.Popen(
        command,
        cwd=target.root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = begin + 300
    try:
        target.health = wait_for_health(f"http://127.0.0.1:{target.port}", target.process, seconds=300, interval=0.02)
    except AssertionError as error:
        raise RuntimeError(f"{target.label}: {error}:\n{tail(target.log)}") from None
    target.cold_start_s = time.perf_counter() - begin
    # The first 200 comes from the first worker up; the others may still be loading. All are up
    # when every worker has used (almost) no CPU for half a second.
    while time.perf_counter() < deadline:
        procs = workers(target)
        if len(procs) == workers_count:
            try:
                before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
                time.sleep(0.5)
                after = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
            except psutil.NoSuchProcess:
                continue
            if after - before < 0.02:
                break
        else:
            time.sleep(0.1)
    target.pool_ready_s = time.perf_counter() - begin - 0.5
    read_memory(target, "started")


def stop(target: Target) -> None:
    if target.process is None or target.process.poll() is not None:
        return
    target.process.terminate()
    try:
        target.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        target.process.kill()
        target.process.wait()


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def file_digest(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()[:12]


def git_describe(root: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": psutil.virtual_memory().total / 2**30,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "load_start": os.getloadavg(),
    }


# ---------------------------------------------------------------------------- the run


def items_for(kind: str, uploads: list, scenes: list, site_url: str | None) -> list[dict]:
    if kind == "health":
        return [{"tag": "health", "method": "GET", "path": "/health"}]
    if kind == "upload":
        return [{"tag": p.tag, "method": "POST", "path": "/predict", "upload": str(p.path)} for p in uploads]
    if kind == "url":
        return [{"tag": p.tag, "method": "POST", "path": "/predict", "json": {"url": f"{site_url}/{p.path.name}"}} for p in uploads]
    return [{"tag": s.tag, "method": "POST", "path": "/detect", "upload": str(s.path)} for s in scenes]


def warm_detect(target: Target, items: list[dict], workers_count: int) -> None:
    """Every worker answers /detect once before it is timed, so that the timed runs meet warm workers.

    Rounds of one request per worker at once, so that each worker takes one while the others are
    busy; repeated (at most 3 rounds) until a whole round answers 200.
    """
    for _ in range(3):
        answer = drive(target, items, workers_count, workers_count, 600, warmup=0)
        statuses = [(status, latency) for _, status, latency in answer["results"]]
        target.first_detect.extend(statuses)
        if all(200 <= status < 300 for status, _ in statuses):
            return


def alternate(target: Target, uploads: list, scenes: list, workers_count: int) -> None:
    """The memory target's workload: ALTERNATING_CALLS per worker, one at a time, /predict and /detect in
    turn (the uploads of 20 KB-1 MB and the scenes in turn); then each worker's memory ("alternated")."""
    items = []
    for index in range(ALTERNATING_CALLS // 2):
        upload, scene = uploads[index % len(uploads)], scenes[index % len(scenes)]
        items += [
            {"tag": upload.tag, "method": "POST", "path": "/predict", "upload": str(upload.path)},
            {"tag": scene.tag, "method": "POST", "path": "/detect", "upload": str(scene.path)},
        ]
    count = ALTERNATING_CALLS * workers_count
    answer = drive(target, items, 1, count, 600, warmup=0)
    target.alternated = summarize(answer["results"], answer["wall_s"])
    read_memory(target, "alternated")


class InProcess:
    """benchmarks/inprocess.py in a fresh process; the .tflite first (its load then has no TensorFlow)."""

    def __init__(self, models: list[Path], root: Path, uploads: list, scene: Path, repeats: int, work: Path):
        ordered = sorted(models, key=lambda path: path.suffix != ".tflite")
        command = [sys.executable, str(HERE / "inprocess.py"), "--root", str(root), "--scene", str(scene), "--repeats", str(repeats)]
        for model in ordered:
            command += ["--model", str(model)]
        for upload in uploads:
            command += ["--jpeg", str(upload.path)]
        self.out, self.err = tempfile.TemporaryFile(dir=work), tempfile.TemporaryFile(dir=work)
        env = dict(os.environ, PYTHONPATH=str(root))
        self.process = subprocess.Popen(command, stdout=self.out, stderr=self.err, cwd=root, env=env)

    def result(self) -> dict:
        try:
            code = self.process.wait(timeout=1800)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError("benchmarks/inprocess.py did not finish within 30 min") from None
        self.out.seek(0)
        self.err.seek(0)
        if code != 0:
            raise RuntimeError(f"benchmarks/inprocess.py failed ({code}): {self.err.read().decode(errors='replace')[-3000:]}")
        return json.loads(self.out.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (about a minute): checks that everything runs, numbers are rough")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="the report (default benchmarks/RESULTS.md)")
    parser.add_argument("--models", nargs="+", type=Path, help=f"model files (default deployment/{SERVED_FILE}, the one served by default, and {MODEL_FILE})")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS") or 2), help="gunicorn workers (default $WORKERS or 2, as deployed)")
    parser.add_argument("--scenes", type=Path, help="folder of crowd scenes (default $MASKDETECT_SHARED_DATA/scenes-dev/images)")
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. a git worktree of the previous commit) to serve the same models from, side by side")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed-style baseline app (benchmarks/seed_app.py)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    models = [model.resolve() for model in (args.models or [ROOT / "deployment" / SERVED_FILE, ROOT / "deployment" / MODEL_FILE])]
    for model in models:
        if not model.is_file():
            parser.error(f"no model at {model} (make train / make export)")
    shared = Settings.from_env().shared_data
    scenes_dir = args.scenes or shared / "scenes-dev" / "images"
    baseline = args.baseline.resolve() if args.baseline else None
    if baseline is not None and not (baseline / "deployment" / "gunicorn.conf.py").is_file():
        parser.error(f"{baseline} is not a checkout of this project (no deployment/gunicorn.conf.py)")

    plan = scenarios(args.quick)
    started_at = datetime.datetime.now(datetime.timezone.utc)
    info = machine()
    info["command"] = shlex.join([Path(sys.executable).name, os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])])
    info["via_make"] = bool(os.environ.get("MAKELEVEL"))
    info["commit"] = git_describe(ROOT)
    if os.environ.get("GUNICORN_CMD_ARGS"):
        info["gunicorn_cmd_args"] = os.environ["GUNICORN_CMD_ARGS"]
    print(f"bench: load average {info['load_start'][0]:.2f} on {info['usable_cores']} cores; {'quick' if args.quick else 'full'} run", flush=True)

    # Each model as the service and the Lambda run it by default: /predict answers for the largest face.
    targets = []
    for root, suffix in [(ROOT, "")] + ([(baseline, " (baseline)")] if baseline else []):
        for model in models:
            served = root / "deployment" / model.name if root != ROOT and (root / "deployment" / model.name).is_file() else model
            targets.append(Target(f"{model.suffix.lstrip('.')}{suffix}", root, served))
    # The targets are checked against the model served by default (else, with --models, the first given).
    ours = [target for target in targets if target.root == ROOT]
    next((t for t in ours if t.model == ROOT / "deployment" / SERVED_FILE), ours[0]).default = True
    if not args.no_seed:  # issue 15's baseline: the seed's Flask app on the committed .h5, uploads only
        seed_model = next((model for model in models if model.suffix == ".h5"), ROOT / "deployment" / MODEL_FILE)
        targets.append(Target(SEED_LABEL, ROOT, seed_model, app=SEED_APP, kinds=("health", "upload")))

    with tempfile.TemporaryDirectory(prefix="maskdetect-bench-") as scratch:
        work = Path(scratch)
        uploads = payloads.write_jpegs(work / "site", shared=shared)
        scenes = payloads.scenes(scenes_dir, 3 if args.quick else 20)
        pending: dict = {}
        with serve_folder(work / "site") as site:
            try:
                # The parts without HTTP, timed alone on the machine; --quick runs them while the services
                # start (its numbers are rough anyway) to stay near a minute.
                # This checkout's parts only: inprocess.py calls this package's API, which a baseline may predate.
                print("bench: timing the parts in one process (benchmarks/inprocess.py)", flush=True)
                models = [t.model for t in targets if t.root == ROOT and t.app is None]
                pending[ROOT] = InProcess(models, ROOT, uploads, scenes[0].path, 10 if args.quick else 200, work)
                if not args.quick:
                    pending[ROOT] = pending[ROOT].result()
                for target in targets:
                    print(f"bench: starting {target.label} ({target.model.name})", flush=True)
                    start(target, args.workers, work, **target.settings)
                    print(f"bench:   first 200 on /health after {target.cold_start_s:.2f} s, all workers up after {target.pool_ready_s:.2f} s", flush=True)
                for target in targets:  # first each worker's first /detect, then the memory target's workload
                    if "detect" in target.kinds:
                        warm_detect(target, items_for("detect", uploads, scenes, site), args.workers)
                        alternate(target, uploads, scenes, args.workers)
                        print(f"bench: {target.label}: {ALTERNATING_CALLS} alternating /predict and /detect per worker, then RSS "
                              f"{memory_cell(target.memory['alternated'])} MB (RSS / USS)", flush=True)
                for root, parts in pending.items():
                    parts = parts.result() if isinstance(parts, InProcess) else parts
                    for target in targets:
                        if target.root == root and target.app is None:
                            target.inprocess = {key: parts[key] for key in ("preprocess", "find_face", "detect")} | parts["models"][target.model.name]
                for scenario in plan:
                    for target in targets:
                        if scenario.kind not in target.kinds:
                            continue
                        items = items_for(scenario.kind, uploads, scenes, site)
                        if scenario.kind == "detect":
                            if "predicted" not in target.memory:
                                read_memory(target, "predicted")
                            warmup = 1
                        else:
                            warmup = 2
                        cpu_before = cpu_seconds(target)
                        answer = drive(target, items, scenario.concurrency, scenario.requests, scenario.seconds, warmup)
                        cpu_after = cpu_seconds(target)
                        summary = summarize(answer["results"], answer["wall_s"])
                        # The workers' CPU per request (warm-up included): steadier than latency on a busy machine.
                        served = len(answer["results"]) + len(answer["warmup"])
                        used = sum(after - cpu_before.get(pid, 0.0) for pid, after in cpu_after.items())
                        summary["server_cpu_ms"] = used / served * 1e3 if served else None
                        summary["driver_cpu_ms"] = answer["cpu_s"] / len(answer["results"]) * 1e3 if answer["results"] else None
                        summary["warmup_errors"] = sum(not 200 <= status < 300 for status, _ in answer["warmup"])
                        target.runs[scenario.key] = summary
                        print(
                            f"bench: {scenario.key:<10} {target.label:<22} n={summary['requests']:<5} p50={fmt(summary['p50_ms'])} ms "
                            f"p95={fmt(summary['p95_ms'])} ms {fmt(summary['rps'], 1)} req/s errors={summary['errors']} "
                            f"server CPU {fmt(summary['server_cpu_ms'], 2)} ms/req",
                            flush=True,
                        )
                for target in targets:
                    read_memory(target, "detected" if "detect" in target.kinds else "predicted")
                    workers(target)
            finally:
                for target in targets:
                    stop(target)
                for parts in pending.values():
                    if isinstance(parts, InProcess) and parts.process.poll() is None:
                        parts.process.kill()
                        parts.process.wait()
        default_model = next(t.model for t in targets if t.default)
        if default_model.suffix == ".tflite":  # alone on the machine, after the services stopped
            print("bench: video throughput (benchmarks/video.py)", flush=True)
            video = subprocess.run(
                [sys.executable, str(HERE / "video.py"), "--model", str(default_model), "--clips", "1" if args.quick else "3"],
                capture_output=True, text=True, timeout=1800,
            )
            if video.returncode != 0:
                raise RuntimeError(f"benchmarks/video.py failed ({video.returncode}): {video.stderr[-3000:]}")
            info["video"] = json.loads(video.stdout.strip().splitlines()[-1])
        info["load_end"] = os.getloadavg()
        info["duration_s"] = (datetime.datetime.now(datetime.timezone.utc) - started_at).total_seconds()
        report = render(info, started_at, plan, targets, uploads, scenes, args)
    write_report(args.out, report)
    print(f"bench: wrote {args.out}", flush=True)
    return 0


# ---------------------------------------------------------------------------- the report


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def memory_cell(readings: list) -> str:
    if not readings:
        return "-"
    return ", ".join(f"{rss:.0f} / {uss:.0f}" for rss, uss in readings)


def render(info: dict, started_at, plan: list[Scenario], targets: list[Target], uploads, scenes, args) -> str:
    default = next((t for t in targets if t.default), None)
    seed = next((t for t in targets if t.label == SEED_LABEL), None)
    out = ["# Benchmark results", ""]
    out.append(
        f"Written by `{'make bench' if info['via_make'] else info['command']}` on {started_at:%Y-%m-%d %H:%M} UTC "
        f"({'quick run: small counts, rough numbers' if args.quick else 'full run'}; {info['duration_s'] / 60:.1f} min). "
        "How to run it and read it: [README.md](README.md). Numbers from a shared or busy machine are inflated: "
        "compare rows of one run, and look at the load average below."
    )
    out += ["", "## Machine", ""]
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    out.append(table(["", ""], [
        ["CPU", f"{info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)"],
        ["RAM", f"{info['ram_gb']:.1f} GB"],
        ["load average (1, 5, 15 min) at start", ", ".join(f"{v:.2f}" for v in info["load_start"])],
        ["load average at end", ", ".join(f"{v:.2f}" for v in info["load_end"])],
        ["OS", info["os"]],
        ["Python", info["python"]],
        ["packages", packages],
        ["commit", info["commit"]],
        ["command", f"`{info['command']}`" + (" (via `make bench`)" if info["via_make"] else "")],
        ["service", f"`maskdetect serve`: nginx (deployment/nginx.conf) in front of gunicorn (deployment/gunicorn.conf.py, WORKERS={args.workers})" + (f", GUNICORN_CMD_ARGS={info['gunicorn_cmd_args']}" if "gunicorn_cmd_args" in info else "")],
        ["models", "; ".join(f"{t.label}: {t.model.name} ({t.model.stat().st_size:,} B, sha256 {file_digest(t.model)}, {t.health.get('model', '?')})" for t in targets)],
    ]))

    if default is not None:
        throughput, detect = default.runs.get("upload-c4", {}), default.runs.get("detect-c1", {})
        upload = default.runs.get("upload-c1", {}).get("by_tag", {}).get(TYPICAL_UPLOAD, {})
        seed_upload = seed.runs.get("upload-c1", {}).get("by_tag", {}).get(TYPICAL_UPLOAD, {}).get("p50_ms") if seed else None
        ratio = upload["p50_ms"] / seed_upload if upload.get("p50_ms") and seed_upload else None
        rss = max((rss for rss, _ in default.memory.get("alternated", [])), default=None)
        rows = [
            [f"/predict upload p50, the {TYPICAL_UPLOAD} JPEG (1 at a time)", f"<= {TARGETS['upload_100kb_p50_ms']:.0f} ms", f"{fmt(upload.get('p50_ms'))} ms", met(upload.get("p50_ms"), TARGETS["upload_100kb_p50_ms"])],
            [f"its upload p50 / the seed app's, the {TYPICAL_UPLOAD} JPEG (1 at a time, same run)", f"<= {TARGETS['upload_vs_seed']:.2f}", f"{fmt(ratio, 3)} ({fmt(upload.get('p50_ms'))} / {fmt(seed_upload)} ms)", met(ratio, TARGETS["upload_vs_seed"])],
            ["/predict upload throughput (20 KB-1 MB, 4 at once)", f">= {TARGETS['upload_rps']:.0f} req/s", f"{fmt(throughput.get('rps'))} req/s", met(TARGETS["upload_rps"], throughput.get("rps"))],
            [f"RSS per worker after {ALTERNATING_CALLS} alternating /predict and /detect calls (the largest of {len(default.memory.get('alternated', []))})", f"<= {TARGETS['rss_mb']:.0f} MB", f"{fmt(rss, 0)} MB", met(rss, TARGETS["rss_mb"])],
            ["/detect p50, 400 px scene (1 at a time)", f"<= {TARGETS['detect_p50_ms']:.0f} ms", f"{fmt(detect.get('p50_ms'), 0)} ms", met(detect.get("p50_ms"), TARGETS["detect_p50_ms"])],
            ["cold start (process start to first 200 on /health)", f"<= {TARGETS['cold_start_s']:.0f} s", f"{fmt(default.cold_start_s, 2)} s", met(default.cold_start_s, TARGETS["cold_start_s"])],
        ]
        video = info.get("video") or {}
        if video:
            rows.append([
                f"`maskdetect watch`, 640x360, detection on every frame ({video['faces_per_frame']:.1f} faces a frame, `benchmarks/video.py`)",
                f">= {TARGETS['video_fps']:.0f} frames/s", f"{fmt(video['fps'])} frames/s ({fmt(video['cpu_ms_per_frame'])} ms CPU a frame)",
                met(TARGETS["video_fps"], video["fps"]),
            ])
        out += ["", TARGETS_HEADING, "", (
            f"Measured on `{default.model.relative_to(default.root) if default.model.is_relative_to(default.root) else default.model}` "
            f"(`{default.label}` below), what `make serve`, the image and the pods serve by default, on {info['usable_cores']} cores. "
            f"The memory row: {ALTERNATING_CALLS * args.workers} calls one at a time to the {args.workers} worker{'s' if args.workers > 1 else ''} "
            f"({ALTERNATING_CALLS} per worker), /predict (the uploads in turn) and /detect (the scenes in turn) alternating, "
            "after each worker's first /detect; RSS of each worker then."
        ), "", table(["", "target", "measured", ""], rows)]
        cpu = (throughput.get("server_cpu_ms") or 0) + (throughput.get("driver_cpu_ms") or 0)
        if cpu:
            out += ["", (
                f"CPU per upload in the 4-at-once run: {fmt(throughput.get('server_cpu_ms'), 2)} ms in the workers and "
                f"{fmt(throughput.get('driver_cpu_ms'), 2)} ms in the driver, so {info['usable_cores']} idle cores could serve at "
                f"most about {info['usable_cores'] * 1000 / cpu:,.0f} req/s of this mix from a driver on the same machine "
                f"(measured here: {fmt(throughput.get('rps'))} req/s at load average {info['load_start'][0]:.1f})."
            )]

    out += ["", "## The service over HTTP", ""]
    out.append(
        "Latency from opening the connection to the last byte of the answer, as the driver process saw it "
        "(a new connection per request, as with gunicorn's sync workers); percentiles over the 2xx answers; "
        "req/s = 2xx answers per second of the run; errors = every non-2xx answer, refused or reset "
        "connection and timeout. Server CPU = the CPU time (user + system) per request of the gunicorn workers and, "
        "for the two models (served as deployed, `maskdetect serve`), of nginx in front of them "
        "(warm-up included), driver CPU = the driver process's per timed request: other jobs on the machine "
        "inflate them much less than the latencies, and on idle cores, cores x 1000 / (server + driver CPU) "
        "is about the most requests/s one machine can both send and answer. Both models run as the service "
        "does by default: /predict answers for the largest face the YuNet detector finds (the whole photo "
        f"when it finds none). {SEED_LABEL}: the seed-style baseline (`benchmarks/seed_app.py`: Flask, the .h5's "
        "`model.predict` on the whole photo per request, gunicorn alone), sent /health and the uploads only."
    )
    rows = []
    for scenario in plan:
        for target in targets:
            run = target.runs.get(scenario.key)
            if run is None:
                continue
            failures = ", ".join(f"{n} {kind}" for kind, n in run["failures"].items() if n)
            if run.get("warmup_errors"):
                failures += (", " if failures else "") + f"and {run['warmup_errors']} in the warm-up"
            rows.append([
                scenario.title, target.label, run["requests"], scenario.concurrency,
                fmt(run["p50_ms"]), fmt(run["p95_ms"]), fmt(run["p99_ms"]), fmt(run["max_ms"]), fmt(run["rps"]),
                f"{run['errors']}" + (f" ({failures})" if failures else ""), fmt(run.get("server_cpu_ms"), 2),
                fmt(run.get("driver_cpu_ms"), 2),
            ])
    out.append("")
    out.append(table(["scenario", "model", "requests", "at once", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "errors", "server CPU ms/req", "driver CPU ms/req"], rows))

    out += ["", "## By upload size", ""]
    out.append(
        "p50 (ms) per JPEG over HTTP, 1 at a time (uploaded, and fetched from a URL on 127.0.0.1), "
        "next to decode + preprocess alone in one process (`maskdetect.core.images.preprocess`, median)."
    )
    header = ["JPEG", "bytes", "pixels"]
    columns = [(target, key) for target in targets for kind, key in (("upload", "upload-c1"), ("url", "url-c1")) if kind in target.kinds]
    header += [f"{'upload' if key == 'upload-c1' else 'URL'} {target.label}" for target, key in columns]
    header.append("decode + preprocess")
    rows = []
    first = targets[0].inprocess.get("preprocess", {})
    for payload in uploads:
        row = [payload.tag, f"{payload.bytes:,}", f"{payload.width}x{payload.height}"]
        for target, key in columns:
            row.append(fmt(target.runs.get(key, {}).get("by_tag", {}).get(payload.tag, {}).get("p50_ms")))
        row.append(fmt(first.get(payload.path.name, {}).get("median_ms"), 2))
        rows.append(row)
    out.append("")
    out.append(table(header, rows))

    out += ["", "## Where the time goes", ""]
    out.append(
        "Medians (ms) in one fresh process, without HTTP (`benchmarks/inprocess.py`), next to the same work "
        f"over HTTP (p50, 1 at a time). JPEG: the {uploads[2].tag} one ({uploads[2].width}x{uploads[2].height}); "
        f"scene: {scenes[0].path.name}. CPU = CPU time per call over all threads."
    )
    rows = []
    for target in targets:
        parts = target.inprocess
        if not parts:
            continue
        typical = parts["preprocess"].get(uploads[2].path.name, {})
        http_upload = target.runs.get("upload-c1", {}).get("by_tag", {}).get(uploads[2].tag, {}).get("p50_ms")
        rows += [
            [target.label, "model call alone (one preprocessed image)", fmt(parts["model"]["median_ms"], 2), fmt(parts["model"]["cpu_ms"], 2)],
            [target.label, "decode + preprocess alone", fmt(typical.get("median_ms"), 2), fmt(typical.get("cpu_ms"), 2)],
            [target.label, "finding the face alone (/predict's detector, the decoded JPEG)", fmt(parts["find_face"]["median_ms"], 2), fmt(parts["find_face"]["cpu_ms"], 2)],
            [target.label, "`Predictor.predict(jpeg bytes)` (decode, face, crop, model)", fmt(parts["predict"]["median_ms"], 2), fmt(parts["predict"]["cpu_ms"], 2)],
            [target.label, "GET /health over HTTP", fmt(target.runs.get("health", {}).get("p50_ms"), 2), ""],
            [target.label, "POST /predict upload over HTTP", fmt(http_upload, 2), ""],
            [target.label, "face detection alone (/detect's detector, the scene)", fmt(parts["detect"]["median_ms"], 1), fmt(parts["detect"]["cpu_ms"], 1)],
            [target.label, f"`CrowdAnalyzer.analyze` ({parts.get('faces', '?')} faces)", fmt(parts["analyze"]["median_ms"], 1), fmt(parts["analyze"]["cpu_ms"], 1)],
            [target.label, "POST /detect over HTTP", fmt(target.runs.get("detect-c1", {}).get("p50_ms"), 1), ""],
            [target.label, "`Predictor.load` (its runtime's import and the face detector included)", fmt(parts["load_s"] * 1e3, 0), ""],
        ]
    out.append("")
    out.append(table(["model", "part", "median ms", "CPU ms"], rows))

    out += ["", "## Memory and start", ""]
    out.append(
        "RSS / USS (MB) of each gunicorn worker (USS: the pages only that worker holds); cold start = "
        "process start to the first 200 on /health; all workers up = until every worker has loaded and gone idle. "
        "In order: each worker's first /detect, the alternating calls of the memory target, the /predict "
        "scenarios, the /detect scenarios."
    )
    rows = []
    for target in targets:
        restarts = len(target.worker_pids) - args.workers
        first = ", ".join(f"{latency:.1f} s" + ("" if 200 <= status < 300 else f" ({'timeout' if status == -1 else status or 'connection error'})") for status, latency in target.first_detect)
        rows.append([
            target.label, fmt(target.cold_start_s, 2), fmt(target.pool_ready_s, 2),
            memory_cell(target.memory.get("started", [])), memory_cell(target.memory.get("alternated", [])),
            memory_cell(target.memory.get("predicted", [])), memory_cell(target.memory.get("detected", [])),
            first or "-", max(restarts, 0),
        ])
    out.append("")
    out.append(table(["model", "cold start s", "all workers up s", "RSS / USS after start", f"after {ALTERNATING_CALLS} alternating calls per worker",
                      "after the /predict scenarios", "after the /detect scenarios", "first /detect per worker", "worker restarts"], rows))
    out += ["", KEEP_MARKER, ""]
    return "\n".join(out)


def met(value, limit) -> str:
    if value is None or limit is None:
        return "not measured"
    return "met" if value <= limit else "**not met**"


def write_report(path: Path, report: str) -> None:
    """Write atomically (a temporary file, then a rename), keeping what follows KEEP_MARKER."""
    kept = ""
    if path.exists():
        old = path.read_text()
        if KEEP_MARKER in old:
            kept = old.split(KEEP_MARKER, 1)[1].lstrip("\n")
    text = report.rstrip("\n") + "\n" + ("\n" + kept if kept else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(main())
