"""Prometheus metrics at ``GET /metrics``: what the service does and how long requests wait for a worker.

gunicorn's workers are separate processes, and Prometheus reaches one of them per scrape. So
``maskdetect serve`` gives them prometheus-client's multiprocess mode: an empty folder in its run
folder, named by ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's own variable, read by it at
import and by :class:`maskdetect.settings.Settings`) before gunicorn starts. Each process writes
its values to files there, ``/metrics`` adds them up over every worker, and gunicorn's
``child_exit`` hook (``deployment/gunicorn.conf.py``) drops a dead worker's live gauges. Without
the variable (Flask's test client, gunicorn alone) the process's own default registry is answered.

The autoscaler's signals (``deployment/kubernetes/hpa.yaml``) are the rate of
``maskdetect_worker_busy_seconds_total`` (the average number of busy workers, exact whenever
Prometheus scrapes) and ``maskdetect_url_fetches_in_flight``: waiting uses no CPU but counts there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    disable_created_metrics,
    multiprocess,
)

disable_created_metrics()  # no *_created series: a restart shows as a counter reset, which rate() handles

# Around the 1 s queue budget (MASKDETECT_QUEUE_BUDGET_S): fine below it, where requests are
# answered, and coarse above, where POSTs are shed; "le=1.0" is the share within the budget.
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)

QUEUE_WAIT = Histogram(
    "maskdetect_queue_wait_seconds",
    "Seconds a request waited between nginx handing it on (its X-Request-Start stamp) and a worker taking it; "
    "shed requests included. Only requests that came through nginx (maskdetect serve) are observed.",
    buckets=QUEUE_WAIT_BUCKETS,
)
IN_FLIGHT = Gauge(
    "maskdetect_requests_in_flight",
    "Requests the compute workers hold now, computing or waiting (on a URL a worker fetches itself, on anything), "
    "summed over the live workers: at most WORKERS. GET /metrics itself is not counted.",
    multiprocess_mode="livesum",
)
BUSY = Counter(
    "maskdetect_worker_busy_seconds",
    "Seconds the compute workers spent handling requests (GET /metrics excluded), added as each request ends; "
    "its rate is the average number of busy workers, at most WORKERS. Unlike maskdetect_requests_in_flight it "
    "does not depend on when it is read: a scrape takes a worker, so that gauge never shows every worker busy.",
)
ANSWERED = Counter(
    "maskdetect_requests",
    "Requests answered, by route (the app's URL rule, \"unmatched\" for an unknown path or method) and HTTP status.",
    ["endpoint", "status"],
)
SHED = Counter(
    "maskdetect_requests_shed",
    "POST requests answered 503 at once because they waited for a worker longer than the queue budget "
    "(MASKDETECT_QUEUE_BUDGET_S).",
)
URL_FETCHES = Gauge(
    "maskdetect_url_fetches_in_flight",
    "Image URLs being fetched now, summed over the live processes that fetch them.",
    multiprocess_mode="livesum",
)

bp = Blueprint("metrics", __name__)
SELF = f"{bp.name}.metrics"  # the scrape's endpoint: not counted in flight, or every scrape would see itself


@contextlib.contextmanager
def url_fetch_in_flight() -> Iterator[None]:
    """``with url_fetch_in_flight(): fetch(...)``: the fetch counts in maskdetect_url_fetches_in_flight while it runs."""
    URL_FETCHES.inc()
    try:
        yield
    finally:
        URL_FETCHES.dec()


@bp.get("/metrics")
def metrics():
    directory = current_app.config["METRICS_DIR"]
    if directory is None:
        registry = REGISTRY
    else:  # every worker's files, read at each scrape
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(directory))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def register(app: Flask) -> None:
    """Count every request of the compute app: call before :func:`.shedding.register`, whose verdict it records."""

    @app.before_request
    def request_started():
        if request.endpoint != SELF:
            IN_FLIGHT.inc()
            g.metrics_started = time.perf_counter()

    @app.after_request
    def request_answered(response):
        waited = g.get("queue_wait_s")  # what .shedding read from the stamp: None without one
        if waited is not None:
            QUEUE_WAIT.observe(waited)
        if g.get("shed"):
            SHED.inc()
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        ANSWERED.labels(endpoint, str(response.status_code)).inc()
        return response

    @app.teardown_request
    def request_ended(_error):
        started = g.pop("metrics_started", None)
        if started is not None:
            IN_FLIGHT.dec()
            BUSY.inc(time.perf_counter() - started)

    app.register_blueprint(bp)
