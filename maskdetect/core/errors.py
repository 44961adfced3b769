"""The one table from failures to answers, for every front end of the prediction API.

The Flask service (:mod:`maskdetect.service.errors`) and the AWS Lambda handler
(:mod:`maskdetect.aws.handler`) both answer a failure as JSON ``{"error": "<what was wrong and
what to do>"}`` with the status given here, so a caller sees the same answer wherever the
request came in. Bad input is the caller's to fix (4xx); a remote URL that fails is a bad
gateway (502) or a gateway timeout (504); only a fault of the service itself is a 500.

Free of Flask on purpose: the Lambda image does not install it.
"""

from __future__ import annotations

from .fetch import BodyTooLarge, FetchError, FetchTimeout, HostRefused, URLRefused
from .images import ImageDecodeError, ImageTooLarge
from .video import VideoError
from .zones import ZoneError

# What a 500 answers; the details go to the log, never to the caller.
INTERNAL_ERROR = "the service failed on this request; the details are in its log"


class ApiError(Exception):
    """A request the service refuses, with the status and the message to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Overloaded(ApiError):
    """A request shed because it waited for a worker longer than the queue budget: 503, Retry-After."""

    def __init__(self, waited_s: float, budget_s: float, retry_after_s: int):
        super().__init__(
            503,
            f"the service is busy: this request waited {waited_s:.1f} s for a worker, over the {budget_s:g} s budget; "
            f"retry after {retry_after_s} s",
        )
        self.retry_after_s = retry_after_s


# The exceptions status_and_message() knows; anything else is a fault of the service (500).
KNOWN_ERRORS = (ApiError, FetchError, ImageDecodeError, VideoError, ZoneError)


def status_and_message(error: Exception) -> tuple[int, str]:
    """The status and message for a known failure (see KNOWN_ERRORS); TypeError for any other."""
    if isinstance(error, ApiError):
        return error.status, error.message
    if isinstance(error, HostRefused):  # one answer for a non-public host and an unknown one: 400 like every URL refusal
        return 400, f"refused URL: {error}, or send the image itself as an upload"
    if isinstance(error, URLRefused):
        return 400, f"refused URL: {error}"
    if isinstance(error, BodyTooLarge):
        return 422, f"{error}; send a smaller image"
    if isinstance(error, FetchTimeout):
        return 504, str(error)
    if isinstance(error, FetchError):
        return 502, str(error)
    if isinstance(error, VideoError):
        return 422, str(error)
    if isinstance(error, ZoneError):  # a zone= or ignore_zone= query parameter (its name leads the message)
        return 400, str(error)
    if isinstance(error, ImageTooLarge):
        return 422, str(error)
    if isinstance(error, ImageDecodeError):
        return 422, "the content is not an image this service can read (JPEG, PNG, GIF, WebP, BMP or TIFF); send a photo"
    raise TypeError(error)


def body_too_large_message(limit: int) -> str:
    """The 413 message for a request body over ``limit`` bytes."""
    return f"the request body is over the {limit / 1024 / 1024:g} MB limit; send a smaller file"


def no_file_in_form(files: list[str], fields: list[str]) -> str:
    """The message for a form upload without a file in field "image" (the service and the Lambda)."""
    if "image" in fields:
        return ('the form\'s "image" part is not a file (no filename in its Content-Disposition): '
                "send the image as a file upload, e.g. curl -F image=@photo.jpg")
    return f'the form has no file in field "image" (files: {sorted(files) or "none"})'
