"""Latency of ``POST /predict`` for an uploaded ~100 KB JPEG, and the memory of each gunicorn worker.

Starts gunicorn with deployment/gunicorn.conf.py on 127.0.0.1 and a free port, sends
--requests sequential uploads (multipart, a new connection each, as gunicorn's sync workers
close it) after a warm-up, prints p50 / p95 / p99 / max and each worker's RSS, and stops
gunicorn. Traffic stays on this machine.

    .venv/bin/python benchmarks/predict_latency.py                 # deployment/maskdetect.h5
    .venv/bin/python benchmarks/predict_latency.py --requests 1000 --workers 1 --image photo.jpg

Without deployment/maskdetect.h5 (or --model), it serves an untrained cnn2, the deployment
architecture: the same cost per request.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskdetect import config  # noqa: E402


def synthetic_jpeg(target_bytes: int = 100_000) -> bytes:
    """An 800x600 'photo' (smooth shapes and grain), at the JPEG quality closest to ``target_bytes``."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:600, 0:800]
    image = np.stack([(x * 0.3 + y * 0.2) % 255, (x * 0.1 + y * 0.4) % 255, (x * 0.25) % 255], -1)
    for _ in range(25):
        cx, cy, r = rng.integers(0, 800), rng.integers(0, 600), rng.integers(20, 120)
        image[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    image = Image.fromarray(np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8))
    encoded = []
    for quality in range(60, 96, 2):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        encoded.append(buffer.getvalue())
    return min(encoded, key=lambda data: abs(len(data) - target_bytes))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def untrained_cnn2(folder: Path) -> Path:
    from maskdetect.models import cnn2

    path = folder / "cnn2-untrained.h5"
    cnn2().save(path, include_optimizer=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model file (default deployment/maskdetect.h5, else an untrained cnn2)")
    parser.add_argument("--image", type=Path, help="the JPEG to upload (default: a synthetic ~100 KB one)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="maskdetect-bench-") as work:
        model = args.model or config.deployment_dir() / config.MODEL_FILE
        if args.model is None and not model.is_file():
            model = untrained_cnn2(Path(work))
        image = args.image.read_bytes() if args.image else synthetic_jpeg()
        port = free_port()
        env = dict(os.environ, MODEL_PATH=str(model), HOST="127.0.0.1", PORT=str(port), WORKERS=str(args.workers))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        log = open(Path(work) / "gunicorn.log", "wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deployment" / "gunicorn.conf.py"), "--access-logfile", "/dev/null"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            while True:
                if server.poll() is not None or time.monotonic() - started > 120:
                    print((Path(work) / "gunicorn.log").read_text()[-2000:], file=sys.stderr)
                    return 1
                try:
                    health = requests.get(f"{base}/health", timeout=5).json()
                    break
                except (requests.ConnectionError, requests.Timeout):
                    time.sleep(0.2)
            # Every worker answers the warm-up: the sync workers take turns on the socket.
            for _ in range(args.warmup):
                requests.post(f"{base}/predict", files={"image": ("photo.jpg", image, "image/jpeg")}, timeout=30).raise_for_status()
            latencies = []
            for _ in range(args.requests):
                begin = time.perf_counter()
                response = requests.post(f"{base}/predict", files={"image": ("photo.jpg", image, "image/jpeg")}, timeout=30)
                latencies.append((time.perf_counter() - begin) * 1000)
                response.raise_for_status()
            workers = psutil.Process(server.pid).children()
            memory = [worker.memory_full_info() for worker in workers]
        finally:
            server.terminate()
            server.wait(timeout=30)

    q = statistics.quantiles(latencies, n=100)
    report = {
        "model": health["model"],
        "image_bytes": len(image),
        "requests": len(latencies),
        "workers": len(workers),
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(max(latencies), 2),
        "rss_mb_per_worker": [round(m.rss / 2**20) for m in memory],
        "uss_mb_per_worker": [round(m.uss / 2**20) for m in memory],
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
