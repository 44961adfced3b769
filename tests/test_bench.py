"""`make bench` end to end in its quick mode, and the pieces it is made of.

The quick run starts the service for the .tflite (what is served by default, which the targets are
checked against) and the .h5 (one worker each, answering for the face as the service does by default) and for the seed-style baseline (benchmarks/seed_app.py, /health and
uploads only), drives every scenario with a handful of requests from the driver process, and must write the report with every table, keeping the hand-written notes below the
marker. It checks that the benchmark runs and reports, not how fast the service is.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from tests.samples import SHARED, require
from maskdetect.core import constants
from maskdetect.settings import Settings

ROOT = constants.PROJECT_ROOT
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench  # noqa: E402
import driver  # noqa: E402
import payloads  # noqa: E402

pytestmark = pytest.mark.slow  # servers driven by the benchmark

HEADINGS = (
    "## Machine",
    bench.TARGETS_HEADING,
    "## The service over HTTP",
    "## By upload size",
    "## Where the time goes",
    "## Memory and start",
)


def rows_of(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``heading``, as lists of cells."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def number(cell: str) -> float:
    return float(cell.replace(",", "").split()[0])


def header_index(text: str, heading: str, column: str) -> int:
    """The index of ``column`` in the header of the first table under ``heading``."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    header = next(line for line in section.splitlines() if line.startswith("|"))
    return [cell.strip() for cell in header.strip("|").split("|")].index(column)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    require(SHARED / "scenes-dev" / "images")
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    out.write_text("# old numbers\n\n<!-- kept -->\n\n## What changed what\n\nhand-written notes\n")
    # It checks that the benchmark runs, not how fast: on a busy machine a request may wait more than the
    # service's 1 s queue budget for the one worker and be shed (503); here it waits.
    env = dict(os.environ, MASKDETECT_SHARED_DATA=str(SHARED), PYTHONPATH=str(ROOT), MASKDETECT_QUEUE_BUDGET_S="60")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--workers", "1", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_quick_run_writes_every_table(quick_report):
    text = quick_report.read_text()
    for heading in HEADINGS:
        assert heading in text, heading
    assert "# old numbers" not in text  # rewritten...
    assert text.rstrip().endswith("hand-written notes") and text.count("<!-- kept -->") == 1  # ...notes kept
    assert sorted(path.name for path in quick_report.parent.iterdir()) == ["RESULTS.md"]  # no temporary file left

    # Every scenario, for both models, answered every request; the seed baseline's too.
    http = rows_of(text, "## The service over HTTP")
    seen = {(row[0], row[1]) for row in http}
    plan = bench.scenarios(quick=True)
    expected = {(s.title, model) for s in plan for model in ("h5", "tflite")}
    expected |= {(s.title, bench.SEED_LABEL) for s in plan if s.kind in ("health", "upload")}
    assert seen == expected
    for row in http:
        assert number(row[2]) > 0 and row[9] == "0", row  # requests, errors
        assert 0 < number(row[4]) <= number(row[5]) <= number(row[7]), row  # p50 <= p95 <= max
        # the workers' CPU per request; a quick run's few /health calls may add up to less than the clock's tick
        assert number(row[10]) > 0 or (row[0] == "GET /health" and number(row[10]) == 0), row

    # The uploads span 20 KB to 1 MB, and each size has an HTTP and an in-process time.
    sizes = rows_of(text, "## By upload size")
    assert [row[0] for row in sizes] == [payloads.tag(size) for size in payloads.SIZES]
    for row, size in zip(sizes, payloads.SIZES):
        assert abs(number(row[1]) - size) <= payloads.TOLERANCE * size
        assert all(cell != "-" for cell in row), row

    # Cold start, memory (after start, the alternating calls, /predict, /detect) and the first /detect of each worker were measured.
    memory = {row[0]: row for row in rows_of(text, "## Memory and start")}
    assert set(memory) == {"h5", "tflite", bench.SEED_LABEL}
    for model, row in memory.items():
        assert 0 < number(row[1]) <= number(row[2]), row
        measured = [row[3], row[5]] if model == bench.SEED_LABEL else row[3:8]  # the seed gets no /detect
        assert all(cell != "-" for cell in measured), row
        assert row[8] == "0", row  # no worker was restarted
    # The lean worker stays small through /detect too: its face detector runs on OpenCV, not TensorFlow.
    lean_rss, keras_rss = (number(memory[model][4].split("/")[0]) for model in ("tflite", "h5"))
    assert lean_rss < keras_rss / 2, memory

    # The targets are the default's (the .tflite), each measured as the issue states it.
    targets = rows_of(text, bench.TARGETS_HEADING)
    assert "`deployment/maskdetect.tflite` (`tflite` below)" in text
    assert len(targets) == 7 and all(row[3] in ("met", "**not met**") for row in targets)
    assert [row[1] for row in targets] == ["<= 12 ms", "<= 0.15", ">= 80 req/s", "<= 150 MB", "<= 40 ms", "<= 3 s", ">= 15 frames/s"]
    http = {(row[0], row[1]): row for row in rows_of(text, "## The service over HTTP")}
    sizes = {row[0]: row for row in rows_of(text, "## By upload size")}
    assert number(targets[0][2]) == number(sizes[bench.TYPICAL_UPLOAD][header_index(text, "## By upload size", "upload tflite")])
    assert number(targets[2][2]) == number(http[("POST /predict upload, 4 at once", "tflite")][8])  # req/s
    assert "20 alternating /predict and /detect" in targets[3][0]
    assert number(targets[3][2]) == max(number(cell.split("/")[0]) for cell in memory["tflite"][4].split(","))
    assert number(targets[4][2]) == round(number(http[("POST /detect 400 px scene, 1 at a time", "tflite")][4]))
    assert "maskdetect watch" in targets[-1][0] and "frames/s" in targets[-1][2]  # benchmarks/video.py, after the services
    parts = rows_of(text, "## Where the time goes")
    assert {row[0] for row in parts} == {"h5", "tflite"} and all(row[2] != "-" for row in parts)
    assert sum("finding the face" in row[1] for row in parts) == 2  # /predict's detector, timed for each model


def test_the_quick_run_measures_tflite_uploads_against_the_seed_baseline(quick_report):
    text = quick_report.read_text()
    seed_uploads = [row for row in rows_of(text, "## The service over HTTP") if row[1] == bench.SEED_LABEL and "upload" in row[0]]
    assert len(seed_uploads) == 2 and all(number(row[2]) > 0 and row[9] == "0" for row in seed_uploads), seed_uploads
    sizes = rows_of(text, "## By upload size")
    assert all(row[-2] != "-" for row in sizes)  # the seed's upload column, next to decode + preprocess

    ratio = next(row for row in rows_of(text, bench.TARGETS_HEADING) if "the seed app's" in row[0])
    tflite_ms, seed_ms = (number(ms) for ms in re.search(r"\(([\d.,]+) / ([\d.,]+) ms\)", ratio[2]).groups())
    assert ratio[1] == "<= 0.15" and number(ratio[2]) == pytest.approx(tflite_ms / seed_ms, abs=0.01)
    if abs(number(ratio[2]) - 0.15) > 0.0005:  # the verdict is on the unrounded ratio
        assert ratio[3] == ("met" if number(ratio[2]) <= 0.15 else "**not met**")


def test_the_driver_counts_statuses_and_failures():
    """The driver against a server that answers 200, 404, 500, or hangs up."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            if self.path == "/hangup":
                self.connection.close()
                return
            status = {"/ok": 200, "/missing": 404, "/fault": 500}[self.path]
            answer = json.dumps({"got": len(body)}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        items = [
            {"tag": "ok", "method": "POST", "path": "/ok", "json": {"url": "http://x/y.jpg"}},
            {"tag": "missing", "method": "POST", "path": "/missing"},
            {"tag": "fault", "method": "POST", "path": "/fault"},
            {"tag": "hangup", "method": "POST", "path": "/hangup"},
        ]
        spec = {"host": "127.0.0.1", "port": server.server_address[1], "items": items, "concurrency": 2, "requests": 8, "seconds": 30, "warmup": 1}
        answer = asyncio.run(driver.run(spec))
    finally:
        server.shutdown()
        server.server_close()
    assert len(answer["warmup"]) == 2 and len(answer["results"]) == 8
    summary = bench.summarize(answer["results"], answer["wall_s"])
    assert summary["ok"] == 2 and summary["failures"] == {"4xx": 2, "5xx": 2, "connection": 2, "timeout": 0}
    assert summary["errors"] == 6 and set(summary["by_tag"]) == {"ok"}


def test_multipart_upload_is_what_a_browser_sends(tmp_path):
    """The driver's prebuilt multipart request parses, in werkzeug, to the file's exact bytes."""
    import io

    from werkzeug.wrappers import Request

    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (40, 30), "white").save(jpeg)
    raw = driver.build_request({"method": "POST", "path": "/predict", "upload": str(jpeg)}, "127.0.0.1", 8000)
    head, body = raw.split(b"\r\n\r\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert int(headers["Content-Length"]) == len(body) and headers["Connection"] == "close"
    environ = {
        "REQUEST_METHOD": "POST", "CONTENT_TYPE": headers["Content-Type"], "CONTENT_LENGTH": headers["Content-Length"],
        "wsgi.input": io.BytesIO(body), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "PATH_INFO": "/predict",
        "wsgi.url_scheme": "http",
    }
    assert Request(environ).files["image"].read() == jpeg.read_bytes()


def test_payloads_are_deterministic_jpegs_of_the_asked_size():
    first, again = payloads.synthetic_jpeg(50_000), payloads.synthetic_jpeg(50_000)
    assert first == again and abs(len(first) - 50_000) <= payloads.TOLERANCE * 50_000
    assert first[:2] == b"\xff\xd8"


def test_every_upload_shows_a_person_whose_face_the_first_look_finds(tmp_path):
    """The upload figures are those of a photo with a face: /predict's second look never runs on them."""
    from maskdetect.core.faces import YuNetDetector
    from maskdetect.core.images import decode_reduced

    shared = require(SHARED / payloads.FACE).parents[2]
    first_look = YuNetDetector(Settings.from_env().detector_weights, **constants.SUBJECT_DETECTOR)
    uploads = payloads.write_jpegs(tmp_path, (20_000, 1_000_000), shared=shared)
    for upload in uploads:
        photo, _ = decode_reduced(upload.path.read_bytes(), constants.SUBJECT_DECODE_SIDE)
        assert first_look.detect(photo), upload.tag
    assert uploads[0].path.read_bytes() == payloads.synthetic_jpeg(20_000, person=Image.open(shared / payloads.FACE))
    with pytest.raises(FileNotFoundError, match="MASKDETECT_SHARED_DATA"):
        payloads.write_jpegs(tmp_path, (20_000,), shared=tmp_path)


def test_the_report_keeps_the_notes_and_is_replaced_atomically(tmp_path, monkeypatch):
    out = tmp_path / "RESULTS.md"
    bench.write_report(out, "# new\n\n<!-- kept -->\n")
    assert out.read_text() == "# new\n\n<!-- kept -->\n"
    out.write_text("# new\n\n<!-- kept -->\n\nnotes\n")
    bench.write_report(out, "# newer\n\n<!-- kept -->\n")
    assert out.read_text() == "# newer\n\n<!-- kept -->\n\nnotes\n"

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(bench.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        bench.write_report(out, "# half\n")
    assert out.read_text() == "# newer\n\n<!-- kept -->\n\nnotes\n"  # the old report, untouched
    assert sorted(path.name for path in tmp_path.iterdir()) == ["RESULTS.md"]


def test_bad_arguments_are_refused_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--models", str(tmp_path / "missing.tflite")])
    assert "no model at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--workers", "0"])
    assert "--workers must be at least 1" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="MASKDETECT_SHARED_DATA"):
        payloads.scenes(tmp_path / "nowhere", 3)


def test_percentiles_and_failures_are_summarized():
    results = [("a", 200, 0.001 * n) for n in range(1, 101)] + [("a", -1, 90.0), ("b", 0, 0.1), ("b", 302, 0.1)]
    summary = bench.summarize(results, 2.0)
    assert summary["ok"] == 100 and summary["rps"] == 50.0
    assert summary["p50_ms"] == pytest.approx(50.5) and summary["p99_ms"] == pytest.approx(99.01)
    assert summary["failures"] == {"4xx": 0, "5xx": 1, "connection": 1, "timeout": 1}
    assert re.fullmatch(r"\d+\.\d", bench.fmt(12.345)) and bench.fmt(None) == "-"
