"""Multipart upload parsers: time and peak memory of taking the file out of a 10 KB, 1 MB and 10 MB form.

Three parsers of the same bodies (a text field, then the file in field ``image``, as browsers and
curl -F send them), each checked to return the file byte for byte:

- ``split (before)``: maskdetect.core.requests.file_from_form as it was (kept below): it splits the
  whole body at its boundaries and partitions each part, 3 copies of the body at once;
- ``multipart 2.0.1``: the ``multipart`` package's PushMultipartParser fed the whole body (it is
  in the Pipfile and the Lambda's requirements), the file's chunks joined;
- ``find (now)``: maskdetect.core.requests.file_from_form, which searches the body in place and
  copies the file once.

Time: the median of ``--repeats`` calls (after one warm-up). Peak: tracemalloc's peak over one call
beyond what was allocated before it, so the body itself is not counted. Run from the repository root:

    python benchmarks/multipart_parsers.py [--repeats 20]

(Not benchmarks/multipart.py: run as a script, that name would shadow the multipart package.)
Why ``find`` and not the package, which is as lean and faster on small forms (it skips the email
header parser): documentation/service.md, "POST /predict".
"""

from __future__ import annotations

import argparse
import email.message
import email.parser
import email.policy
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from maskdetect.core.requests import file_from_form  # noqa: E402
from tests.test_multipart import reference  # noqa: E402  the multipart package's parser, as the test checks against it

SIZES = {"10 KB": 10_000, "1 MB": 1_000_000, "10 MB": 10_000_000}
BOUNDARY = "----maskdetect-benchmark-7MA4YWxkTrZu0gW"


def split_before(content_type: str, body: bytes) -> bytes:
    """maskdetect.core.requests.file_from_form before it searched in place (errors left out)."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    files = {}
    delimiter = b"\r\n--" + boundary.encode("latin-1", "replace")
    for part in (b"\r\n" + body).split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, separator, content = (part + b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            continue
        content = content[:-2]
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head.lstrip(b" \t").removeprefix(b"\r\n") + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if name and headers.get_param("filename", header="content-disposition") is not None:
            files.setdefault(name, content)
    return files["image"]


PARSERS = {"split (before)": split_before, "multipart 2.0.1": reference, "find (now)": file_from_form}


def form(size: int) -> tuple[str, bytes, bytes]:
    """(Content-Type, body, file) of a form with a text field and a ``size``-byte file holding CRLFs and dashes, as a JPEG may."""
    data = (b"\xff\xd8\r\n--\r\n" + bytes(range(256)) * (size // 256 + 1))[:size]
    body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return f"multipart/form-data; boundary={BOUNDARY}", body, data


def peak_bytes(parse, content_type: str, body: bytes) -> int:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    result = parse(content_type, body)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    del result
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per parser and size (default 20)")
    args = parser.parse_args(argv)
    print(f"| parser | {' | '.join(f'{name} ms' for name in SIZES)} | {' | '.join(f'{name} peak MB' for name in SIZES)} |")
    print("|---|" + "---:|" * (2 * len(SIZES)))
    bodies = {name: form(size) for name, size in SIZES.items()}
    for label, parse in PARSERS.items():
        times, peaks = [], []
        for content_type, body, data in bodies.values():
            assert parse(content_type, body) == data, label  # and the warm-up
            runs = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                parse(content_type, body)
                runs.append(time.perf_counter() - started)
            times.append(statistics.median(runs) * 1000)
            peaks.append(peak_bytes(parse, content_type, body) / 1e6)
        print(f"| {label} | {' | '.join(f'{t:.3f}' for t in times)} | {' | '.join(f'{p:.2f}' for p in peaks)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
