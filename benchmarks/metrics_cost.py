"""What the Prometheus metrics cost a request: the service in one process, with and without its metric hooks.

    python benchmarks/metrics_cost.py [--model deployment/maskdetect.tflite] [--rounds 20] [--requests 50] [--multiprocess]

``create_app`` through Flask's test client (no HTTP, no nginx: only the app's own work), two apps
from the same settings, one with :func:`maskdetect.service.metrics.register`'s three hooks taken
out. Each round times ``--requests`` calls of each app in turn, alternating which goes first, on
``GET /health`` (about the cheapest answer, so the hooks' share shows) and ``POST /predict`` of a
~100 KB JPEG (the upload ``make bench`` times), every request stamped with ``X-Request-Start``
as nginx does. Prints the median over rounds of the microseconds per request with and without, and
their difference, then the hooks alone called in a loop (steadier on a busy machine). With
``--multiprocess`` (or ``PROMETHEUS_MULTIPROC_DIR`` set) each value goes to a memory-mapped file in
a fresh folder, as in the workers behind ``maskdetect serve``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.payloads import synthetic_jpeg  # noqa: E402
from maskdetect.service import create_app, metrics  # noqa: E402
from maskdetect.settings import Settings  # noqa: E402

HOOKS = ("request_started", "request_answered", "request_ended")


def without_metric_hooks(app):
    """The app as it was before the metrics: the three hooks out (GET /metrics itself stays, unused)."""
    for table in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        table[None] = [hook for hook in table[None] if hook.__name__ not in HOOKS]
    return app


def hooks_alone_us(app, calls: int = 20_000, repeats: int = 5) -> float:
    """The three hooks called directly in a stamped request's context: the least of ``repeats`` runs, us per request."""
    tables = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    hooks = {hook.__name__: hook for table in tables for hook in table[None]}
    started, answered, ended = (hooks[name] for name in HOOKS)
    response = app.response_class("{}", status=200)
    with app.test_request_context("/health", headers={"X-Request-Start": f"t={time.time():.3f}"}):
        hooks["shed_late_requests"]()  # the stamp read, as .shedding does before the hooks record it
        best = float("inf")
        for _ in range(repeats):
            begin = time.perf_counter()
            for _ in range(calls):
                started()
                answered(response)
                ended(None)
            best = min(best, (time.perf_counter() - begin) / calls * 1e6)
    return best


def per_request_us(client, call, requests: int) -> float:
    begin = time.perf_counter()
    for _ in range(requests):
        call(client)
    return (time.perf_counter() - begin) / requests * 1e6


def main() -> None:
    if "--multiprocess" in sys.argv and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # prometheus-client picks its mode at import, which has happened: start again with the folder set
        folder = tempfile.mkdtemp(prefix="maskdetect-metrics-")
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "deployment" / "maskdetect.tflite")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50, help="requests per app per round (GET /health: 20 times as many)")
    parser.add_argument("--multiprocess", action="store_true", help="prometheus-client's multiprocess mode, as behind maskdetect serve")
    args = parser.parse_args()

    settings = Settings.from_env()
    config = {"MODEL_PATH": str(args.model)}
    with_hooks = create_app(config, settings).test_client()
    without = without_metric_hooks(create_app(config, settings)).test_client()
    jpeg = synthetic_jpeg(100_000)

    def stamp() -> dict:
        return {"X-Request-Start": f"t={time.time():.3f}"}

    calls = {
        "GET /health": (lambda client: client.get("/health", headers=stamp()), args.requests * 20),
        "POST /predict (100 KB)": (lambda client: client.post("/predict", data=jpeg, content_type="image/jpeg", headers=stamp()), args.requests),
    }
    mode = f"multiprocess ({os.environ['PROMETHEUS_MULTIPROC_DIR']})" if settings.metrics_dir else "one process (default registry)"
    print(f"metrics: {mode}; {args.rounds} rounds; model {args.model.name}")
    for name, (call, requests) in calls.items():
        for client in (with_hooks, without):
            per_request_us(client, call, max(1, requests // 10))  # warm-up
        timings = {"with": [], "without": []}
        for round_ in range(args.rounds):
            order = [("with", with_hooks), ("without", without)]
            for label, client in order if round_ % 2 == 0 else order[::-1]:
                timings[label].append(per_request_us(client, call, requests))
        on, off = statistics.median(timings["with"]), statistics.median(timings["without"])
        differences = [a - b for a, b in zip(timings["with"], timings["without"])]
        print(f"{name}: {on:.1f} us with the metrics, {off:.1f} us without: {statistics.median(differences):+.1f} us a request "
              f"(median of the rounds' differences; rounds from {min(differences):+.1f} to {max(differences):+.1f})")
    print(f"the three hooks alone, called in a request's context: {hooks_alone_us(with_hooks.application):.1f} us a request (fastest of 5 runs)")
    answered = metrics.ANSWERED.labels("/health", "200")._value.get()
    assert answered > 0, "the hooks did not count: the comparison would be void"


if __name__ == "__main__":
    main()
