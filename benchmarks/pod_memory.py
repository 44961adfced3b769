"""What a pod holds: the memory of the service's processes in a running container, phase by phase.

    deployment/docker/memory.sh            # runs the image as Kubernetes does, then this against it
    python benchmarks/pod_memory.py --pid PID --url http://127.0.0.1:PORT [--workers 2]

PID is the container's first process (`maskdetect serve`), seen from the host; the script finds
nginx, the gunicorn master and its workers under it and reads each one's RSS, PSS and USS
(psutil), and the container's memory cgroup (usage, working set = usage less inactive file
pages, as the kubelet counts it, and the peak). Phases, one after the other:

1. idle: every worker loaded and quiet;
2. the memory target's workload: 20 calls per worker, one at a time, /predict (the benchmark's
   uploads of 20 KB-1 MB in turn) and /detect (400 px scenes of scenes-dev in turn) alternating;
3. a street clip (shared data's street-video) sent to /detect by as many clients at once as there
   are workers (tracking: the video's frames decoded one by one);
4. the worst case the service accepts: 40 MP JPEGs (MAX_IMAGE_PIXELS, under MAX_IMAGE_BYTES),
   one per worker at once to /predict, then to /detect; the workers' peak RSS (VmHWM) and the
   cgroup's peak are read after each.

Prints a Markdown table per phase and, last, one JSON line with every reading.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import driver  # noqa: E402
import payloads  # noqa: E402
from bench import ALTERNATING_CALLS  # noqa: E402
from maskdetect.core.constants import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402

MB = 2**20


def processes(pid: int) -> dict[str, list[psutil.Process]]:
    """The service's processes by role, under the container's first process."""
    root = psutil.Process(pid)
    roles: dict[str, list[psutil.Process]] = {"maskdetect serve": [root], "nginx": [], "URL fetch stage": [], "gunicorn master": [], "workers": []}
    for child in root.children():
        command = " ".join(child.cmdline())
        if "nginx" in command:
            roles["nginx"] += [child, *child.children()]
        elif "gunicorn-fetch.conf.py" in command:  # its master and its one gthread worker: no model
            roles["URL fetch stage"] += [child, *child.children()]
        elif "gunicorn" in command:
            roles["gunicorn master"].append(child)
            roles["workers"] += child.children()
    return roles


def cgroup_memory(pid: int) -> dict[str, float | None]:
    """The memory cgroup of ``pid`` (v1 or v2): usage, working set and peak, MB."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            usage, peak, inactive = "memory.usage_in_bytes", "memory.max_usage_in_bytes", "total_inactive_file"
            break
    else:  # v2: the unified hierarchy's line "0::/path"
        path = next(line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line.startswith("0::"))
        folder = Path("/sys/fs/cgroup") / path.lstrip("/")
        usage, peak, inactive = "memory.current", "memory.peak", "inactive_file"
    try:
        used = int((folder / usage).read_text())
        stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
        top = int((folder / peak).read_text()) if (folder / peak).exists() else None
    except (OSError, ValueError):
        return {"cgroup": str(folder), "usage_mb": None, "working_set_mb": None, "peak_mb": None}
    return {
        "cgroup": str(folder),
        "usage_mb": used / MB,
        "working_set_mb": (used - int(stat.get(inactive, 0))) / MB,
        "peak_mb": top / MB if top is not None else None,
    }


def reading(pid: int) -> dict:
    rows = []
    for role, found in processes(pid).items():
        for process in found:
            try:
                info = process.memory_full_info()
                status = Path(f"/proc/{process.pid}/status").read_text()
            except (psutil.Error, OSError):
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            kb = lambda name: int(fields.get(name, "0 kB").split()[0]) / 1024  # noqa: E731
            rows.append({
                "role": role, "pid": process.pid, "rss_mb": info.rss / MB, "pss_mb": info.pss / MB, "uss_mb": info.uss / MB,
                "rss_anon_mb": kb("RssAnon"), "rss_file_mb": kb("RssFile"), "hwm_mb": kb("VmHWM"),
            })
    return {"processes": rows, "pss_total_mb": sum(row["pss_mb"] for row in rows), **cgroup_memory(pid)}


def wait_idle(pid: int, workers: int, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = processes(pid)["workers"]
        if len(found) == workers:
            try:
                before = sum(sum(p.cpu_times()[:2]) for p in found)
                time.sleep(0.5)
                if sum(sum(p.cpu_times()[:2]) for p in found) - before < 0.02:
                    return
            except psutil.NoSuchProcess:
                pass
        else:
            time.sleep(0.2)
    raise SystemExit(f"the {workers} workers were not up and idle within {seconds:.0f} s")


def send(url: str, items: list[dict], concurrency: int, requests: int) -> list[int]:
    host_port = url.split("://", 1)[1].rstrip("/")
    host, port = host_port.rsplit(":", 1)
    spec = {"host": host, "port": int(port), "timeout": 120, "items": items, "concurrency": concurrency,
            "requests": requests, "seconds": 900, "warmup": 0}
    return [status for _, status, _ in asyncio.run(driver.run(spec))["results"]]


def post_clip(url: str, clip: Path) -> int:
    request = urllib.request.Request(f"{url.rstrip('/')}/detect", data=clip.read_bytes(), headers={"Content-Type": "video/mp4"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def largest_jpeg(folder: Path) -> Path:
    """A camera-like JPEG of just under MAX_IMAGE_PIXELS and within MAX_IMAGE_BYTES."""
    width = int((MAX_IMAGE_PIXELS * 3 / 4) ** 0.5) - 8
    height = MAX_IMAGE_PIXELS // width - 8
    image = Image.fromarray(payloads._photo(width, height, seed=1, grain=2.0))
    for quality in (85, 75, 60, 45, 30):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        if buffer.tell() <= 0.95 * MAX_IMAGE_BYTES:
            path = folder / "largest.jpg"
            path.write_bytes(buffer.getvalue())
            return path
    raise RuntimeError("could not encode the largest JPEG within MAX_IMAGE_BYTES")


def table(phase: str, result: dict) -> str:
    lines = [f"### {phase}", "", "| process | pid | RSS MB | PSS MB | USS MB | RssAnon MB | RssFile MB | peak RSS (VmHWM) MB |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["processes"]:
        lines.append(f"| {row['role']} | {row['pid']} | {row['rss_mb']:.0f} | {row['pss_mb']:.0f} | {row['uss_mb']:.0f} | "
                     f"{row['rss_anon_mb']:.0f} | {row['rss_file_mb']:.0f} | {row['hwm_mb']:.0f} |")
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    lines += ["", f"PSS of every process: {result['pss_total_mb']:.0f} MB; cgroup ({result['cgroup']}): usage {fmt(result['usage_mb'])} MB, "
              f"working set {fmt(result['working_set_mb'])} MB, peak {fmt(result['peak_mb'])} MB", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the container's first process, as the host sees it")
    parser.add_argument("--url", required=True, help="where the container answers, e.g. http://127.0.0.1:9696")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenes", type=Path, help="400 px crowd scenes (default $MASKDETECT_SHARED_DATA/scenes-dev/images)")
    parser.add_argument("--clip", type=Path, help="a clip for /detect (default the shared street-video's pair-parking-lot.mp4, when there)")
    parser.add_argument("--no-largest", action="store_true", help="skip the 40 MP JPEGs")
    args = parser.parse_args(argv)
    shared = Settings.from_env().shared_data
    scenes = payloads.scenes(args.scenes or shared / "scenes-dev" / "images", 10)
    clip = args.clip or shared / "street-video" / "pair-parking-lot" / "pair-parking-lot.mp4"
    results = {}
    with tempfile.TemporaryDirectory(prefix="maskdetect-pod-memory-") as scratch:
        uploads = payloads.write_jpegs(Path(scratch), shared=shared)
        wait_idle(args.pid, args.workers)
        results["idle"] = reading(args.pid)
        print(table("idle, every worker loaded", results["idle"]), flush=True)

        items = []
        for index in range(ALTERNATING_CALLS // 2):
            upload, scene = uploads[index % len(uploads)], scenes[index % len(scenes)]
            items += [{"path": "/predict", "method": "POST", "upload": str(upload.path)},
                      {"path": "/detect", "method": "POST", "upload": str(scene.path)}]
        statuses = send(args.url, items, 1, ALTERNATING_CALLS * args.workers)
        if any(status != 200 for status in statuses):
            raise SystemExit(f"the alternating calls were not all answered 200: {sorted(set(statuses))}")
        results["alternated"] = reading(args.pid)
        print(table(f"after {ALTERNATING_CALLS * args.workers} calls one at a time, /predict and /detect alternating "
                    f"({ALTERNATING_CALLS} per worker)", results["alternated"]), flush=True)

        if clip.is_file():
            begin = time.monotonic()
            with ThreadPoolExecutor(args.workers) as pool:
                statuses = list(pool.map(lambda _: post_clip(args.url, clip), range(args.workers)))
            seconds = time.monotonic() - begin
            if any(status != 200 for status in statuses):  # e.g. a worker past gunicorn's timeout on a busy machine
                print(f"(/detect of the clip {clip.name} answered {statuses} after {seconds:.1f} s: not measured)", flush=True)
                wait_idle(args.pid, args.workers)  # gunicorn replaces a worker past its timeout
            else:
                results["clips"] = reading(args.pid)
                print(table(f"after {args.workers} at once to /detect of a {clip.stat().st_size / 1e6:.1f} MB clip ({clip.name}, "
                            f"{seconds:.1f} s)", results["clips"]), flush=True)
        else:
            print(f"(no clip at {clip}: the clip phase is skipped)", flush=True)

        if not args.no_largest:
            path = largest_jpeg(Path(scratch))
            with Image.open(path) as image:
                size = f"{image.width}x{image.height} px, {path.stat().st_size / 1e6:.1f} MB"
            for endpoint in ("/predict", "/detect"):
                statuses = send(args.url, [{"path": endpoint, "method": "POST", "upload": str(path)}], args.workers, args.workers)
                if any(status != 200 for status in statuses):
                    raise SystemExit(f"{endpoint} of the largest JPEG: {statuses}")
                results[f"largest {endpoint}"] = reading(args.pid)
                print(table(f"after {args.workers} at once to {endpoint} of a {size} JPEG (the peaks include them)",
                            results[f"largest {endpoint}"]), flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
