"""gunicorn settings for the prediction service: ``gunicorn -c deployment/gunicorn.conf.py``.

Read from the environment:
  HOST        address to bind (default 127.0.0.1; the container sets 0.0.0.0)
  PORT        port (default 9696)
  WORKERS     worker processes (default 2, one per core here); each holds its own model
  MODEL_PATH  the model file (default deployment/maskdetect.tflite; a Keras .h5 needs TensorFlow), read by the app
  MASKDETECT_ALLOW_PRIVATE_URLS=1  let URL inputs reach private addresses (tests only)
  MASKDETECT_GUNICORN_BIND  where to listen instead of HOST:PORT (`maskdetect serve` sets a unix socket)
  PROMETHEUS_MULTIPROC_DIR  the workers' metrics files, summed by GET /metrics (`maskdetect serve` sets a fresh folder)
gunicorn's own GUNICORN_CMD_ARGS still apply on top of these.
"""

import ctypes
import ctypes.util
import importlib.util
import os
import sys
import time

from prometheus_client import multiprocess

# (gunicorn reads every top-level name that matches a setting: `config` is one, so no such name here)
from maskdetect.settings import Settings

_settings = Settings.from_env()

wsgi_app = "maskdetect.service:create_app()"
# `maskdetect serve` puts nginx on HOST:PORT and gunicorn on a unix socket behind it.
bind = os.environ.get("MASKDETECT_GUNICORN_BIND") or f"{_settings.host}:{_settings.port}"
workers = int(os.environ.get("WORKERS") or 2)
# One request at a time per worker: inference is CPU-bound. gthread (2 workers x 2 threads, or
# 1 x 4) answered no more requests/s on 2 cores (benchmarks/RESULTS.md, "What changed what").
worker_class = "sync"
# No preload: every worker loads the model and the face detector itself, once, when gunicorn
# boots it (TensorFlow, which a Keras model runs on, is not fork-safe).
preload_app = False
timeout = 30  # a URL fetch is bounded at 10 s, inference takes milliseconds
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
# No control socket: tests, `make serve` and a container may run side by side, and they
# would all claim the same default socket path; the service needs no runtime control.
control_socket_disable = True
# Each worker's heartbeat file: in /dev/shm (a tmpfs in every container, writable under a
# read-only root filesystem) rather than /tmp, which may be disk-backed or absent; gunicorn
# blocks on disk-backed heartbeats. Where there is no /dev/shm (macOS), the temporary folder.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
# Behind nginx (a unix socket) the client's address is in X-Forwarded-For.
_client = "%({x-forwarded-for}i)s" if bind.startswith("unix:") else "%(h)s"
access_log_format = _client + ' "%(r)s" %(s)s %(b)s %(M)sms'


def on_starting(server):
    """Fail at once, saying what to do, rather than as every worker fails to boot."""
    path = _settings.served_model
    if not path.is_file():
        server.log.error("no model at %s: train one with `make train` and `make export`, or set MODEL_PATH to a model file", path)
        sys.exit(1)
    if path.suffix.lower() in (".h5", ".keras") and importlib.util.find_spec("keras") is None:
        server.log.error(
            "%s is a Keras model and Keras (TensorFlow) is not installed: serve its export "
            "(deployment/maskdetect.tflite, `maskdetect export`), or build the image with "
            "`--build-arg KERAS=1` (documentation/deployment.md, \"The image\")", path,
        )
        sys.exit(1)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def post_fork(server, worker):
    """Per worker: OpenCV on one thread, and a heap that gives memory back after a large request.

    One worker per core: OpenCV's own threads would only take a core from the other worker. By
    default glibc raises its thresholds as large buffers (decoded photos, the detector's 2x pass)
    come and go and keeps their memory, so a worker would hold its largest request's memory for
    good. Fixed thresholds: buffers of 16 MiB and more are mapped and unmapped, and more than
    4 MiB free at the heap's top goes back to the system (lower ones cost page faults).
    """
    import cv2

    cv2.setNumThreads(1)
    name = ctypes.util.find_library("c")
    if name and "musl" not in name:
        try:
            libc = ctypes.CDLL(name)
            libc.mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024)
            libc.mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024)
            worker.malloc_trim = libc.malloc_trim
        except (OSError, AttributeError):
            server.log.warning("could not set malloc's thresholds; memory is kept after large requests")


HEAP_SLACK_MB = 56  # a worker's resident memory may grow this much over its size once loaded before it trims
TRIM_INTERVAL_S = 1.0  # and it trims at most this often: under a steady load, one request a second pays for it


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def post_worker_init(worker):
    """The worker's resident size with its model and detector loaded: what post_request compares with."""
    if getattr(worker, "malloc_trim", None) is not None:
        worker.loaded_mb = _resident_mb()
        worker.trimmed_at = float("-inf")


def post_request(worker, req, environ, resp):
    """After an answer has been sent: when the worker has grown HEAP_SLACK_MB over its loaded size,
    give the heap's free pages back, wherever they lie (at most every TRIM_INTERVAL_S).

    Large requests leave holes in the heap that the trim threshold (the top of the heap only)
    misses. The next requests fault the pages they reuse back in, so trimming after every
    request costs CPU (benchmarks/RESULTS.md): hence the slack and the interval.
    """
    loaded = getattr(worker, "loaded_mb", None)
    if loaded is None or time.monotonic() - worker.trimmed_at < TRIM_INTERVAL_S:
        return
    if _resident_mb() > loaded + HEAP_SLACK_MB:
        worker.malloc_trim(0)
        worker.trimmed_at = time.monotonic()


def child_exit(server, worker):
    """A dead worker's live gauges (requests in flight) leave GET /metrics; its counters stay in the totals."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # set by maskdetect serve; gunicorn alone keeps each worker's own
        multiprocess.mark_process_dead(worker.pid)
