"""Every failure answers JSON ``{"error": "<what was wrong and what to do>"}``, never a trace.

The statuses and messages come from :mod:`maskdetect.core.errors`, shared with the Lambda handler;
only a fault of the service itself is a 500, logged here.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..core.errors import INTERNAL_ERROR, KNOWN_ERRORS, ApiError, Overloaded, body_too_large_message, status_and_message
from ..core.fetch import HostRefused

__all__ = ["ApiError", "ROUTES", "error_response", "register"]

ROUTES = "POST /predict, POST /detect, GET /health, GET /openapi.json, GET /metrics, and the web page at GET /"


def error_response(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    return response


def _http_message(error: HTTPException) -> str:
    if error.code == 404:
        return f"no such path: {request.path}; this service has {ROUTES}"
    if error.code == 405:
        allowed = ", ".join(sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"}))
        return f"{request.method} is not allowed on {request.path}; use {allowed}"
    if error.code == 413:
        return body_too_large_message(current_app.config.get("MAX_CONTENT_LENGTH"))
    return f"{error.name}: {error.description}"


def register(app: Flask) -> None:
    def known(error: Exception):
        if isinstance(error, HostRefused):  # the answer names no address; the log does
            app.logger.warning("refused URL host: %s", error.detail)
        response = error_response(*status_and_message(error))
        if isinstance(error, Overloaded):
            response.headers["Retry-After"] = str(error.retry_after_s)
        return response

    for known_error in KNOWN_ERRORS:
        app.register_error_handler(known_error, known)

    @app.errorhandler(HTTPException)
    def http(error: HTTPException):
        response = error_response(error.code or 500, _http_message(error))
        for name, value in error.get_headers():  # e.g. the Allow header a 405 must carry (RFC 9110)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):  # Flask picks the most specific handler: only faults get here
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, INTERNAL_ERROR)
