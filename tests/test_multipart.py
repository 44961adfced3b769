"""The multipart cutter (maskdetect.core.requests.file_from_form) against the multipart package, and what it copies."""

from __future__ import annotations

import tracemalloc

import multipart
import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskdetect.core.errors import ApiError
from maskdetect.core.requests import file_from_form


def reference(content_type: str, body: bytes) -> bytes | None:
    """The first file in field "image", by the multipart package's parser (an RFC 7578 implementation of its own)."""
    _, options = multipart.parse_options_header(content_type)
    found, current, chunks = None, None, []
    with multipart.PushMultipartParser(options["boundary"]) as parser:
        for event in parser.parse(body):
            if isinstance(event, multipart.MultipartSegment):
                current, chunks = event, []
            elif event is None:
                if found is None and current.name == "image" and current.filename is not None:
                    found = b"".join(chunks)
            else:
                chunks.append(event)
    return found


CONTENT = st.binary(max_size=200) | st.lists(st.sampled_from([b"\r\n", b"--", b"\r\n--", b"\r\n\r\n", b"x", b"\xff\xd8"]),
                                             max_size=30).map(b"".join)
PART = st.tuples(
    st.sampled_from(["image", "Image", "file", "note", "images"]),
    st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters='"\\'), max_size=12),
    CONTENT,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(PART, max_size=4), boundary=st.sampled_from([None, "b", "----WebKitFormBoundary7MA4YWxkTrZu0gW"]))
def test_the_cutter_finds_what_the_multipart_package_finds(parts, boundary):
    fields = [(name, content) if filename is None else (name, (filename, content, "image/jpeg"))
              for name, filename, content in parts]
    body, content_type = urllib3.encode_multipart_formdata(fields, boundary=boundary)
    expected = reference(content_type, body)
    if expected is None:
        with pytest.raises(ApiError) as refused:
            file_from_form(content_type, body)
        assert refused.value.status == 400 and '"image"' in refused.value.message
    else:
        assert file_from_form(content_type, body) == expected


def test_a_10_mb_upload_is_copied_once():
    """The split-and-partition parser it replaced held three copies of the body at once (benchmarks/multipart_parsers.py)."""
    data = (b"\xff\xd8\r\n--\r\n\r\n" + bytes(range(256)) * 40_000)[:10_000_000]
    body, content_type = urllib3.encode_multipart_formdata([("note", "hello"), ("image", ("p.jpg", data, "image/jpeg"))])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        found = file_from_form(content_type, body)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert found == data
    assert len(data) <= peak < 1.1 * len(data)
