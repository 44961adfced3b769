"""Load shedding: a POST that waited for a worker longer than the budget is answered 503 at once.

nginx (``maskdetect serve``) stamps each request with the time it handed it on to gunicorn,
``X-Request-Start: t=<seconds since the epoch>``, replacing any such header from the client. A sync
worker takes one request at a time, so the time until the app sees the request is its wait for a
worker. Answering the late ones at once (about a millisecond each, the body unread) drains the
queue instead of letting every answer come later and later. Without the header (gunicorn alone,
Flask's test client) nothing is shed; /health and the page are never shed.
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app, g, request

from ..core import constants
from ..core.errors import Overloaded


def waited_s(header: str | None, now: float) -> float | None:
    """Seconds since the ``X-Request-Start`` stamp (``t=1764489600.123`` or a bare number); None if absent or unreadable."""
    if not header:
        return None
    value = header.strip().removeprefix("t=")
    try:
        start = float(value)
    except ValueError:
        return None
    return max(0.0, now - start) if math.isfinite(start) else None


def register(app: Flask) -> None:
    @app.before_request
    def shed_late_requests():
        waited = waited_s(request.headers.get("X-Request-Start"), time.time())
        g.queue_wait_s = waited  # for maskdetect_queue_wait_seconds (.metrics), GETs and shed requests too
        if request.method != "POST":
            return
        budget = current_app.config["QUEUE_BUDGET_S"]
        if budget is not None and waited is not None and waited > budget:
            g.shed = True
            raise Overloaded(waited, budget, constants.RETRY_AFTER_S)
