"""gunicorn settings for the URL fetch stage (maskdetect/service/fetcher.py), started by `maskdetect serve`.

nginx sends it the JSON POSTs to /predict and /detect; it fetches the URL (or decodes the base64)
and forwards the bytes to the compute gunicorn (deployment/gunicorn.conf.py). Waiting on a remote
host costs a thread here, no CPU and no model, so one process with threads: MASKDETECT_URL_FETCHES
fetches at once, and SPARE_THREADS more that answer base64 bodies, forwards, and a 503 past the cap
at once. `maskdetect serve` sets MASKDETECT_GUNICORN_BIND (this stage's unix socket) and
MASKDETECT_COMPUTE_SOCKET (the compute gunicorn's).
"""

import os

from prometheus_client import multiprocess

# (gunicorn reads every top-level name that matches a setting: `config` is one, so no such name here)
from maskdetect.settings import Settings

_settings = Settings.from_env()

SPARE_THREADS = 2

wsgi_app = "maskdetect.service.fetcher:create_fetch_app()"
bind = os.environ["MASKDETECT_GUNICORN_BIND"]
workers = 1
worker_class = "gthread"
# The app is loaded once, in the master (no model, nothing fork-unsafe): a worker forked on HUP or
# after a crash accepts at once, where importing the app takes seconds on a busy machine and URL
# requests would wait (and be shed) meanwhile. A code change needs a restart, not a HUP.
preload_app = True
threads = _settings.url_fetches + SPARE_THREADS
# No more connections than threads: the rest wait in the socket's backlog (and are shed by the
# queue budget once they get a thread), rather than queue inside the worker unseen.
worker_connections = threads
# gthread's main loop keeps the heartbeat while threads wait: this bounds a stuck process, not a request.
timeout = 30
graceful_timeout = 15  # a fetch (10 s deadline) and its answer from the compute stage finish on TERM and HUP
accesslog = "-"
errorlog = "-"
control_socket_disable = True  # as gunicorn.conf.py: several stacks may run side by side
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
access_log_format = 'fetch-stage %({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms'


def child_exit(server, worker):
    """A dead worker's URL fetches in flight leave GET /metrics (as in gunicorn.conf.py)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(worker.pid)
