"""deployment/gunicorn.conf.py with pyinstrument in every worker (benchmarks/profile_service.py).

Each worker profiles what it does for each connection (gunicorn's SyncWorker.handle: reading
and parsing the request, Flask, the answer) and, when it exits, writes the combined profile
to $PROFILE_DIR/worker-PID.txt. The time between connections is not recorded.
"""

import os
from pathlib import Path

_production = Path(os.environ.get("GUNICORN_BASE_CONFIG") or Path(__file__).resolve().parent.parent / "deployment" / "gunicorn.conf.py")
exec(compile(_production.read_text(), str(_production), "exec"))  # the production settings, unchanged


def post_worker_init(worker):
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    handle = worker.handle

    def profiled(*args, **kwargs):
        profiler.start()
        try:
            return handle(*args, **kwargs)
        finally:
            profiler.stop()

    worker.handle = profiled
    worker.maskdetect_profiler = profiler


def worker_exit(server, worker):
    profiler = getattr(worker, "maskdetect_profiler", None)
    if profiler is None or profiler.last_session is None:
        return
    folder = Path(os.environ["PROFILE_DIR"])
    text = profiler.output_text(unicode=False, color=False, show_all=os.environ.get("PROFILE_SHOW_ALL") == "1")
    (folder / f"worker-{os.getpid()}.txt").write_text(text)
