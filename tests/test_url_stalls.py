"""URL fetches cannot starve a pod: `maskdetect serve` sends JSON bodies to its fetch stage, limits
them per client in nginx, and caps the fetches at once, so uploads and /health keep their workers.

Every address is on loopback (tests/stalls.py); the latency of the same scenario is in
benchmarks/url_stalls.py, not asserted here.
"""

from __future__ import annotations

import re
import signal
import threading
import time

import psutil
import pytest

from maskdetect.core import constants
from tests.servers import serve
from tests.stalls import StallingSite, base64_payload, post_image, post_json, stall_scenario

TFLITE = constants.PROJECT_ROOT / "deployment" / "maskdetect.tflite"
RETRYABLE = (429, 503)


@pytest.fixture(scope="module")
def jpeg(observations) -> bytes:
    return (observations / "with_mask" / "0-with-mask.jpg").read_bytes()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The deployed defaults: 2 compute workers, the fetch stage, nginx's per-client limits."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve(log, MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_ALLOW_PRIVATE_URLS=1) as (base_url, process):
        yield base_url, log, process


@pytest.fixture(scope="module")
def tight_stack(tmp_path_factory):
    """Limits small enough to reach: one open JSON request per client, 1 a second after a burst of 1, 2 fetches at once."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    settings = dict(MASKDETECT_URL_CLIENT_CONNECTIONS=1, MASKDETECT_URL_CLIENT_RATE=1, MASKDETECT_URL_CLIENT_BURST=1, MASKDETECT_URL_FETCHES=2)
    with serve(log, MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_ALLOW_PRIVATE_URLS=1, **settings) as (base_url, _):
        yield base_url


CONTENT_TYPES = ["application/json", "Application/JSON", "application/json; charset=utf-8", "application/json ;x=1",
                 "application/json;", "application/jsonx", "application/json-patch+json", "text/json", "application/x-www-form-urlencoded",
                 "image/jpeg", "multipart/form-data; boundary=x", ""]


def test_nginx_sends_to_the_fetch_stage_exactly_the_posts_the_request_contract_reads_as_json(tmp_path):
    from maskdetect.core.requests import mimetype_of
    from maskdetect.serve import render_nginx_config
    from maskdetect.settings import Settings

    text = render_nginx_config(tmp_path, tmp_path / "g.sock", "127.0.0.1", 9, 3.0, tmp_path / "f.sock", Settings(url_client_rate=7))
    assert f"server unix:{tmp_path / 'f.sock'};" in text and "rate=7r/s" in text and "limit_conn json_connections 4;" in text
    pattern = re.search(r'map "\$request_method \$content_type" \$json_post \{\s*"~\*(.+?)" 1;', text).group(1)
    for method in ("POST", "GET"):
        for content_type in CONTENT_TYPES:
            routed = re.search(pattern, f"{method} {content_type}", re.IGNORECASE) is not None
            assert routed == (method == "POST" and mimetype_of(content_type) == "application/json"), (method, content_type)


def test_the_fetch_stage_needs_the_compute_socket_and_answers_502_with_retry_after_when_it_is_gone(tmp_path, jpeg):
    from maskdetect.service.fetcher import create_fetch_app
    from maskdetect.settings import Settings

    with pytest.raises(ValueError, match="MASKDETECT_COMPUTE_SOCKET is not set.*maskdetect serve"):
        create_fetch_app(settings=Settings())
    client = create_fetch_app(settings=Settings(compute_socket=tmp_path / "gone.sock")).test_client()
    reply = client.post("/predict", json=base64_payload(jpeg))
    assert reply.status_code == 502 and reply.headers["Retry-After"] == "1"
    assert reply.get_json() == {"error": "the service could not answer this request (a worker stopped or is starting); retry after 1 s"}
    refused = client.post("/detect", json={"url": "http://127.0.0.1:9/x.jpg"})  # the address rule, before any forwarding
    assert refused.status_code == 400 and refused.get_json()["error"].startswith("refused URL")


def _fetch_stage(process) -> psutil.Process:
    (master,) = [child for child in psutil.Process(process.pid).children() if "gunicorn-fetch.conf.py" in " ".join(child.cmdline())]
    return master


@pytest.mark.slow
def test_a_reload_replaces_the_fetch_stage_worker_and_urls_are_still_fetched(stack, jpeg, http_server):
    base_url, _, process = stack
    http_server["/face.jpg"] = (200, jpeg, len(jpeg), {"Content-Type": "image/jpeg"})
    master = _fetch_stage(process)
    (before,) = master.children()
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [child.pid for child in master.children()] in ([], [before.pid]):
        time.sleep(0.05)
    # Asked at once, while the compute workers may still be loading: the new fetch worker forwards it.
    answer = post_json(base_url, "/predict", {"url": f"{http_server.base_url}/face.jpg"}, source="127.0.0.21")
    assert before.pid not in [child.pid for child in master.children()]
    assert answer.status == 200 or _retryable(answer), (answer.status, answer.body)
    wait_for_compute = time.monotonic() + 30
    while answer.status != 200 and time.monotonic() < wait_for_compute:
        time.sleep(0.5)
        answer = post_json(base_url, "/predict", {"url": f"{http_server.base_url}/face.jpg"}, source="127.0.0.21")
    assert answer.status == 200 and answer.body["label"] == "with_mask"
    # Any 503 was a compute worker's (shed while the new workers load), relayed, never the fetch stage's own.
    lines = stack[1].read_text().splitlines()
    shed = sum(line.startswith('127.0.0.21 "POST /predict HTTP/1.1" 503') for line in lines)
    relayed = sum(line.startswith('fetch-stage 127.0.0.21 "POST /predict') and " 503 " in line for line in lines)
    assert relayed == shed


@pytest.mark.slow
def test_serve_stops_everything_and_exits_1_when_the_fetch_stage_stops(tmp_path):
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=1) as (_, process):
        _fetch_stage(process).send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == 1
    assert "maskdetect serve: the fetch stage stopped with status" in (tmp_path / "serve.log").read_text()


def _retryable(answer) -> bool:
    return answer.status in RETRYABLE and answer.headers.get("Retry-After") == "1" and "retry after 1 s" in answer.body["error"]


@pytest.mark.slow
def test_uploads_and_health_are_answered_while_eight_clients_wait_on_stalled_urls(stack, jpeg):
    base_url, _, _ = stack
    with StallingSite(jpeg) as site:
        run = stall_scenario(base_url, jpeg, site, clients=8, rounds=2)
    during = run.during_stall(run.uploads)
    print(f"{len(run.uploads)} uploads, {len(during)} while all 8 fetches stalled; stalled answers {sorted(a.status for a in run.stalled)}")
    # Every upload answered (200, or a retryable refusal), /health 200 throughout.
    assert all(answer.status == 200 or _retryable(answer) for answer in run.uploads), [(a.status, a.body) for a in run.uploads if a.status != 200]
    assert run.health and all(answer.status == 200 for answer in run.health)
    # ...and answered while the 8 stalled fetches were all still open, not after them.
    assert sum(answer.status == 200 for answer in during) >= 5
    assert len(run.during_stall(run.health)) >= 5
    # The stalled requests themselves: each answered, the photo (200) or the fetch deadline's 504.
    assert len(run.stalled) == 16
    for answer in run.stalled:
        assert answer.status in (200, 504), (answer.status, answer.body)
        if answer.status == 504:
            assert "10 s" in answer.body["error"]  # the fetch deadline, as a worker answered it


@pytest.mark.slow
def test_json_bodies_go_through_the_fetch_stage_and_answer_as_before(stack, jpeg, http_server):
    base_url, log, _ = stack
    http_server["/face.jpg"] = (200, jpeg, len(jpeg), {"Content-Type": "image/jpeg"})
    by_url = post_json(base_url, "/predict", {"url": f"{http_server.base_url}/face.jpg"}, source="127.0.0.20")
    by_base64 = post_json(base_url, "/predict", base64_payload(jpeg), source="127.0.0.20")
    uploaded = post_image(base_url, "/predict", jpeg, source="127.0.0.20")
    assert by_url.status == by_base64.status == uploaded.status == 200
    assert by_url.body == by_base64.body == uploaded.body and uploaded.body["label"] == "with_mask"
    drawn = post_json(base_url, "/detect?format=png", base64_payload(jpeg), source="127.0.0.20")
    assert drawn.status == 200 and drawn.headers["Content-Type"] == "image/png" and drawn.headers["X-Content-Type-Options"] == "nosniff"
    missing = post_json(base_url, "/detect", {"url": f"{http_server.base_url}/gone.jpg"}, source="127.0.0.20")
    assert missing.status == 502 and "404" in missing.body["error"]  # the fetch error, as a worker answered it
    not_json = post_json(base_url, "/predict", {"neither": 1}, source="127.0.0.20")
    assert not_json.status == 400 and 'no "url" or "image" string' in not_json.body["error"]
    # The fetch stage logs the JSON ones and the compute stage the forwarded image, with the client's address
    # (gunicorn writes an access line after sending the answer: the last one may come a moment later).
    def logged() -> bool:
        lines = log.read_text().splitlines()
        return (any(line.startswith('fetch-stage 127.0.0.20 "POST /detect?format=png ') and " 200 " in line for line in lines)
                and any(line.startswith('fetch-stage 127.0.0.20 "POST /predict ') and " 400 " in line for line in lines)
                and sum(line.startswith('127.0.0.20 "POST /predict ') and " 200 " in line for line in lines) >= 3)

    deadline = time.monotonic() + 30  # a hang guard, not a timing claim
    while not logged():
        assert time.monotonic() < deadline, f"the access lines never appeared in {log}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_client_over_its_open_json_requests_gets_a_json_429_with_retry_after(tight_stack, jpeg):
    base_url = tight_stack
    with StallingSite(jpeg) as site:
        pending = threading.Thread(target=post_json, args=(base_url, "/predict", {"url": site.url}), kwargs={"source": "127.0.0.2"})
        pending.start()
        site.wait_for_open(1)
        refused = post_json(base_url, "/predict", base64_payload(jpeg), source="127.0.0.2")
        other_client = post_json(base_url, "/predict", base64_payload(jpeg), source="127.0.0.3")
        upload = post_image(base_url, "/predict", jpeg, source="127.0.0.2")  # uploads are not counted
    pending.join()
    assert refused.status == 429 and refused.headers["Retry-After"] == "1" and refused.headers["Content-Type"] == "application/json"
    assert refused.body["error"].startswith("too many JSON requests from your address: at most 1 open at once")
    assert other_client.status == 200 and upload.status == 200


@pytest.mark.slow
def test_a_client_over_its_json_request_rate_gets_a_json_429_with_retry_after(tight_stack, jpeg):
    answers = [post_json(tight_stack, "/predict", base64_payload(jpeg), source="127.0.0.4") for _ in range(5)]
    statuses = [answer.status for answer in answers]
    assert statuses[0] == 200 and 429 in statuses, statuses
    for answer in answers:
        if answer.status == 429:
            assert _retryable(answer) and "1 a second (after a burst of 1)" in answer.body["error"]
    uploads = [post_image(tight_stack, "/predict", jpeg, source="127.0.0.4") for _ in range(5)]
    assert [answer.status for answer in uploads] == [200] * 5


@pytest.mark.slow
def test_past_the_fetches_at_once_a_url_gets_503_with_retry_after_at_once_and_base64_still_works(tight_stack, jpeg):
    base_url = tight_stack
    with StallingSite(jpeg) as site:
        pending = [threading.Thread(target=post_json, args=(base_url, "/predict", {"url": site.url}), kwargs={"source": source})
                   for source in ("127.0.0.5", "127.0.0.6")]
        for thread in pending:
            thread.start()
        site.wait_for_open(2)
        refused = post_json(base_url, "/detect", {"url": site.url}, source="127.0.0.7")
        by_base64 = post_json(base_url, "/predict", base64_payload(jpeg), source="127.0.0.8")
        still_stalled = len(site.opened) == 2 and all(thread.is_alive() for thread in pending)
    for thread in pending:
        thread.join()
    assert still_stalled  # the refusal came while both fetches were open, and the third URL was never fetched
    assert refused.status == 503 and _retryable(refused) and refused.headers["Content-Type"] == "application/json"
    assert refused.body["error"].startswith("the service is fetching 2 image URLs already")
    assert by_base64.status == 200 and by_base64.body["label"] == "with_mask"


@pytest.mark.slow
def test_a_forwarded_request_past_the_queue_budget_is_shed_by_the_compute_stage(tmp_path, jpeg):
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_QUEUE_BUDGET_S=0.05) as (base_url, _):
        answers: list = []

        def client(source: str):
            for _ in range(4):
                answers.append(post_json(base_url, "/predict", base64_payload(jpeg), source=source))

        threads = [threading.Thread(target=client, args=(f"127.0.1.{i}",)) for i in range(1, 17)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    statuses = {answer.status for answer in answers}
    assert statuses == {200, 503}, sorted(answer.status for answer in answers)
    for answer in answers:
        if answer.status == 503:
            assert _retryable(answer) and "waited" in answer.body["error"] and "0.05 s budget" in answer.body["error"]
    # Some were shed by a compute worker (its log line has no fetch-stage prefix), after the fetch stage forwarded them.
    lines = (tmp_path / "serve.log").read_text().splitlines()
    assert any(line.startswith("127.0.1.") and '"POST /predict HTTP/1.1" 503' in line for line in lines)
