"""schemathesis against the service's own ``/openapi.json``: every operation, every check.

schemathesis reads the document the app serves, generates requests for each operation (the
schema's examples, boundary and invalid values, then random ones) and checks each answer:
no 5xx, a documented status and content type, a body that matches the documented schema,
invalid input rejected and valid input accepted. In process through WSGI; the same fixed
profile as tests/test_fuzz.py (derandomized, so a failure reproduces).

What schemathesis cannot know is provided here: a schema-valid ``{"url": ...}`` is fetched by
the real fetcher from a simulated network where every host name is public and every URL
answers a photo (``photo_network``: nothing leaves the machine), a body declared as an
image (``image/*``, the multipart field ``image``) is generated as a real image, and one declared
as a clip (``video/*``) as a real short clip. So "valid input accepted" means: any http(s) URL,
any image and any clip get a 200. What the document cannot say is which ``format`` goes with which
body (``png`` with a photo, ``mp4`` and ``webm`` with a clip): those pairings are checked to be
the 400 the document describes, not an acceptance. Nor can it say which ``zone`` strings are polygons
that fit the clip's frame (or that zones go with a clip only): a request with zones is checked to be
answered 200, or the zone 400 the document describes.

Found and fixed with it: 405 answers lacked the ``Allow`` header; the document said any URI where
the service takes http(s) URLs without a user name only; it now says so (a pattern), and that
the multipart field ``image`` is an image (its encoding).
"""

from __future__ import annotations

import base64
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from PIL import Image

from tests.samples import encode

pytestmark = pytest.mark.slow  # hundreds of generated requests


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture
def photo_network(offline_network, http_server, request):
    """A network where every host name is public and every URL answers the same photo."""
    photo = encode(Image.new("RGB", (64, 48), "white"))
    http_server["*"] = (200, photo, len(photo), {"Content-Type": "image/jpeg"})
    offline_network.names_resolve_to = "1.2.3.4"  # public, so the fetcher goes on; nothing leaves the machine
    offline_network.every_host_is = http_server.port
    # schemathesis 4.32's from_fixture reads (and writes, for its report) the test item's
    # `_nodeid`, which pytest 9 no longer has: give it one.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    return offline_network


@st.composite
def images(draw) -> bytes:
    """Any image the service should answer: a format it reads, any size from 1x1, any common mode."""
    format = draw(st.sampled_from(["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"]))
    modes = {"JPEG": ["RGB", "L", "CMYK"], "BMP": ["RGB", "L", "1"], "GIF": ["P", "L"]}.get(format, ["RGB", "RGBA", "L", "P"])
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, (height, width, 3), np.uint8)
    return encode(Image.fromarray(pixels).convert(draw(st.sampled_from(modes))), format)


def clip(seed: int, frames: int, size: tuple[int, int]) -> bytes:
    """A short MPEG-4 clip of random frames (the service reads a video/* body of no known subtype as .mp4)."""
    import cv2

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
        writer.release()
        return path.read_bytes()


CLIPS = [clip(seed, frames, size) for seed, frames, size in ((0, 1, (32, 24)), (1, 4, (64, 48)), (2, 12, (96, 64)))]


def with_zones(case) -> bool:
    """A /detect request with zone= or ignore_zone=: a 200 only for polygons within the clip's frame, else a 400."""
    return case.operation.path == "/detect" and bool({"zone", "ignore_zone"} & set(case.query or {}))


def mismatched_format(case) -> bool:
    """A /detect request whose format does not go with its body: jpeg, webp or png with a clip, mp4 or webm with a photo."""
    answer_format = (case.query or {}).get("format", "json")
    video = (case.media_type or "").startswith("video/")
    return case.operation.path == "/detect" and (
        (video and answer_format in ("png", "jpeg", "webp")) or (not video and answer_format in ("mp4", "webm")))


# Bodies the document declares as images (image/*, the multipart field "image", whose encoding
# says image/*, and the base64 JSON field "image") are generated as real images: schemathesis then checks that valid
# images are accepted, not that random bytes are refused (tests/test_fuzz.py does that).
schemathesis.openapi.media_type("image/*", images())
schemathesis.openapi.format("byte", images().map(lambda data: base64.b64encode(data).decode()))  # {"image": base64}
schemathesis.openapi.media_type("video/*", st.sampled_from(CLIPS))
schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_keeps_its_openapi_document(case, photo_network):
    if not mismatched_format(case) and not with_zones(case):
        case.call_and_validate()
        return
    response = case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])
    if mismatched_format(case):
        assert response.status_code == 400 and "is not offered" in response.json()["error"], response.text
    elif case.method.upper() == "POST" and case.meta.generation.mode == GenerationMode.POSITIVE:  # not a 405, nor an invalid format
        assert response.status_code == 200 or (response.status_code == 400 and "zone" in response.json()["error"]), response.text


def test_regression_a_405_says_which_methods_are_allowed(client):
    """RFC 9110: a 405 carries Allow; the JSON error handler dropped the header werkzeug set."""
    response = client.put("/predict")
    assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert set(client.delete("/health").headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert response.get_json() == {"error": "PUT is not allowed on /predict; use POST"}


def test_the_documented_url_pattern_is_what_the_fetcher_takes():
    """The pattern in /openapi.json and maskdetect.core.fetch.parse_url agree on the URL's form."""
    import re

    from maskdetect.core.fetch import URLRefused, parse_url
    from maskdetect.service.openapi import URL_PATTERN

    for url in ("https://example.com/a.jpg", "HTTP://example.com", "http://1.2.3.4:8080/x?y=1#z", "http://[2001:db8::1]/"):
        assert re.search(URL_PATTERN, url) and parse_url(url)
    for url in ("ftp://example.com/a.jpg", "http://user:pw@example.com/", "https:///a.jpg", "example.com/a.jpg", "http://a b/"):
        assert not re.search(URL_PATTERN, url)
        with pytest.raises(URLRefused):
            parse_url(url)
