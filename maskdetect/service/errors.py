"""Every failure answers JSON ``{"error": "<what was wrong and what to do>"}``, never a trace.

Bad input is the caller's to fix (4xx); a remote URL that fails is a bad gateway (502) or
a gateway timeout (504); only a fault of the service itself is a 500, logged here.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..fetch import BodyTooLarge, FetchError, FetchTimeout, URLRefused
from ..images import ImageDecodeError, ImageTooLarge

ROUTES = "POST /predict, POST /detect, GET /health, GET /openapi.json, and the web page at GET /"


class ApiError(Exception):
    """A request the service refuses, with the status and the message to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    return response


def _status_and_message(error: Exception) -> tuple[int, str]:
    """The one table from exceptions to answers."""
    if isinstance(error, ApiError):
        return error.status, error.message
    if isinstance(error, URLRefused):
        return 400, f"refused URL: {error}"
    if isinstance(error, BodyTooLarge):
        return 422, f"{error}; send a smaller image"
    if isinstance(error, FetchTimeout):
        return 504, str(error)
    if isinstance(error, FetchError):
        return 502, str(error)
    if isinstance(error, ImageTooLarge):
        return 422, str(error)
    if isinstance(error, ImageDecodeError):
        return 422, "the content is not an image this service can read (JPEG, PNG, GIF, WebP, BMP, TIFF...); send a photo"
    raise TypeError(error)


def _http_message(error: HTTPException) -> str:
    if error.code == 404:
        return f"no such path: {request.path}; this service has {ROUTES}"
    if error.code == 405:
        allowed = ", ".join(sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"}))
        return f"{request.method} is not allowed on {request.path}; use {allowed}"
    if error.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"the request body is over the {limit / 1024 / 1024:g} MB limit; send a smaller image"
    return f"{error.name}: {error.description}"


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    @app.errorhandler(FetchError)
    @app.errorhandler(ImageDecodeError)
    def known(error):
        return error_response(*_status_and_message(error))

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
        return error_response(500, "the service failed on this request; the details are in its log")
