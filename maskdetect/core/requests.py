"""The one request contract of the prediction API, for the Flask service and the Lambda alike.

A request carries its image in one of four forms; :func:`image_from_body` turns (Content-Type,
body) into the image's bytes or the URL to fetch, and refuses anything else with an ApiError whose
message says what to send:

- JSON ``{"url": "https://.../photo.jpg"}``;
- JSON ``{"image": "<the file, base64-encoded>"}`` (a ``data:`` URL prefix and line breaks allowed),
  for clients that can only send JSON (browsers' fetch with a canvas, API Gateway test consoles);
- a multipart form with the file in field ``image``;
- the file itself with an ``image/*`` Content-Type.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.parser
import email.policy
import email.utils
import json

from .errors import ApiError, no_file_in_form

HOW_TO_SEND = (
    'send JSON {"url": "https://.../photo.jpg"} or {"image": "<the file, base64-encoded>"} '
    '(Content-Type: application/json), a multipart form with the file in field "image", '
    "or the image itself with an image/* Content-Type"
)
JSON_FORMS = '{"url": "https://.../photo.jpg"} or {"image": "<the file, base64-encoded>"}'


def mimetype_of(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


VIDEO_SUFFIXES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "video/x-matroska": ".mkv",
                  "video/x-msvideo": ".avi"}


def is_video(content_type: str) -> bool:
    """A clip, sent as the body with a video/* Content-Type (POST /detect only)."""
    return mimetype_of(content_type).startswith("video/")


def video_suffix(content_type: str) -> str:
    """The file name suffix FFmpeg expects for the clip's container."""
    return VIDEO_SUFFIXES.get(mimetype_of(content_type), ".mp4")


def image_from_body(content_type: str, body: bytes) -> bytes | str:
    """The image's bytes, or the URL to fetch, from a request's Content-Type and body."""
    mimetype = mimetype_of(content_type)
    if mimetype.startswith("video/"):
        raise ApiError(415, "a video is analysed by POST /detect (as the body, with its video/* Content-Type); /predict takes one image")
    if mimetype == "application/json":
        try:
            payload = json.loads(body)
        except RecursionError:  # [[[[... 100,000 deep
            raise ApiError(400, f"the JSON body is nested too deeply; {HOW_TO_SEND}") from None
        except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
            payload = None
        return image_from_payload(payload)
    if mimetype == "multipart/form-data":
        data = file_from_form(content_type, body)
    elif mimetype.startswith("image/"):
        data = body
    elif not mimetype:
        raise ApiError(415, f"the request has no Content-Type; {HOW_TO_SEND}")
    else:
        raise ApiError(415, f"{mimetype} is not accepted; {HOW_TO_SEND}")
    if not data:
        raise ApiError(400, "the image is empty; send the file's bytes")
    return data


def image_from_payload(payload, *, direct: bool = False) -> bytes | str:
    """The image's bytes, or the URL, from ``{"url": ...}`` or ``{"image": ...}``.

    ``payload`` is a request's JSON body, or the event itself for a direct Lambda invocation.
    """
    if not isinstance(payload, dict):
        if direct:
            raise ApiError(400, f"the event is not a JSON object; invoke the function with {JSON_FORMS}")
        raise ApiError(400, f"the body is not a valid JSON object; {HOW_TO_SEND}")
    url, image = payload.get("url"), payload.get("image")
    if url is not None and image is not None:
        raise ApiError(400, 'the JSON object has both "url" and "image"; send one of them')
    if isinstance(url, str) and url.strip():
        return url
    if isinstance(image, str):
        return decode_base64_image(image)
    raise ApiError(400, f'the JSON object has no "url" or "image" string; send {JSON_FORMS}')


def decode_base64_image(text: str) -> bytes:
    """The bytes of an ``image`` field: standard base64, line breaks and a data: URL prefix allowed."""
    text = text.strip()
    if text.startswith("data:") and ";base64," in text[:100]:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, f'the "image" field is not valid base64 ({error}); send the file\'s bytes base64-encoded') from None
    if not data:
        raise ApiError(400, "the image is empty; send the file's bytes")
    return data


def _param(headers: email.message.Message, key: str) -> str | None:
    """A Content-Disposition parameter, RFC 2231 encoding (``filename*=utf-8''...``) decoded."""
    value = headers.get_param(key, header="content-disposition")
    return None if value is None else email.utils.collapse_rfc2231_value(value)


def file_from_form(content_type: str, body: bytes) -> bytes:
    """The file in field ``image`` of a multipart/form-data body (RFC 7578); the first such file wins.

    The body is cut at its boundary lines by searching it in place (``bytes.find`` with offsets):
    only the image's bytes are copied, once, and only each part's few header lines go through the
    email parser. A 10 MB upload costs one 10 MB copy (benchmarks/multipart_parsers.py).
    """
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    image, files, fields = None, [], []
    if isinstance(boundary, str) and boundary:
        delimiter = b"\r\n--" + boundary.encode("latin-1", "replace")
        if body.startswith(delimiter[2:]):  # the first delimiter may open the body without its CRLF
            start = len(delimiter) - 2
        else:  # what comes before it is the preamble
            start = body.find(delimiter)
            start = -1 if start == -1 else start + len(delimiter)
        while start != -1 and not body.startswith(b"--", start):  # "--" after a delimiter closes the form
            end = body.find(delimiter, start)
            end = len(body) if end == -1 else end
            blank = body.find(b"\r\n\r\n", start, end)
            if blank == -1 and end - start >= 2 and body.startswith(b"\r\n", end - 2):
                blank = end - 2  # an empty part may end at its blank line, the CRLF shared with the delimiter (werkzeug writes it so)
            if blank != -1:
                head = body[start:blank].lstrip(b" \t").removeprefix(b"\r\n") + b"\r\n\r\n"
                headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)  # 7x policy.HTTP's speed
                name, filename = (_param(headers, key) for key in ("name", "filename"))
                if name and filename is not None:
                    files.append(name)
                    if name == "image" and image is None:
                        image = body[min(blank + 4, end):end]  # the one copy
                elif name:
                    fields.append(name)
            start = -1 if end == len(body) else end + len(delimiter)
    if image is None:
        raise ApiError(400, no_file_in_form(list(dict.fromkeys(files)), fields))
    return image
