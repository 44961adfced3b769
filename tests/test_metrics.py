"""GET /metrics: the counters move with the requests, and behind `maskdetect serve` they add up over every worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from PIL import Image
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.samples import encode
from tests.servers import gunicorn_master, serve
from maskdetect.core import constants
from maskdetect.service import metrics

WHITE = encode(Image.new("RGB", (64, 48), "white"))
TFLITE = constants.PROJECT_ROOT / "deployment" / constants.SERVED_FILE
NAMES = ("maskdetect_queue_wait_seconds", "maskdetect_requests_in_flight", "maskdetect_worker_busy_seconds",
         "maskdetect_requests", "maskdetect_requests_shed", "maskdetect_url_fetches_in_flight")


def sample(name: str, **labels) -> float:
    """A sample of this process's default registry (Flask's test client), 0 before the first."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def answered(endpoint: str, status: int) -> float:
    return sample("maskdetect_requests_total", endpoint=endpoint, status=str(status))


def stamp(seconds_ago: float) -> dict:
    return {"X-Request-Start": f"t={time.time() - seconds_ago:.3f}"}


def scraped(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from Prometheus' text format."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# ---------------------------------------------------------------------------- one process, Flask's test client


def test_a_request_counts_under_its_route_and_status(client):
    ok, refused, unknown = answered("/predict", 200), answered("/predict", 415), answered("unmatched", 404)
    assert client.post("/predict", data=WHITE, content_type="image/jpeg").status_code == 200
    assert client.post("/predict", data=b"hello", content_type="text/plain").status_code == 415
    assert client.get("/no-such-path").status_code == 404
    assert (answered("/predict", 200), answered("/predict", 415), answered("unmatched", 404)) == (ok + 1, refused + 1, unknown + 1)


def test_a_stamped_request_observes_its_wait_for_a_worker_and_an_unstamped_one_does_not(client):
    count, total = sample("maskdetect_queue_wait_seconds_count"), sample("maskdetect_queue_wait_seconds_sum")
    below = sample("maskdetect_queue_wait_seconds_bucket", le="0.25")
    assert client.post("/predict", data=WHITE, content_type="image/jpeg", headers=stamp(0.3)).status_code == 200
    assert sample("maskdetect_queue_wait_seconds_count") == count + 1
    assert 0.3 <= sample("maskdetect_queue_wait_seconds_sum") - total < 0.3 + 10  # plus this machine's delay before the hook
    assert sample("maskdetect_queue_wait_seconds_bucket", le="0.25") == below
    assert client.get("/health", headers=stamp(0.3)).status_code == 200  # a GET's wait counts too
    assert sample("maskdetect_queue_wait_seconds_count") == count + 2
    assert client.post("/predict", data=WHITE, content_type="image/jpeg").status_code == 200  # no nginx, no stamp
    assert sample("maskdetect_queue_wait_seconds_count") == count + 2


def test_a_shed_request_counts_as_shed_with_its_wait_and_its_503(client):
    shed, unavailable = sample("maskdetect_requests_shed_total"), answered("/predict", 503)
    short, long = sample("maskdetect_queue_wait_seconds_bucket", le="2.5"), sample("maskdetect_queue_wait_seconds_bucket", le="10.0")
    assert client.post("/predict", data=WHITE, content_type="image/jpeg", headers=stamp(5)).status_code == 503
    assert sample("maskdetect_requests_shed_total") == shed + 1
    assert answered("/predict", 503) == unavailable + 1
    assert sample("maskdetect_queue_wait_seconds_bucket", le="2.5") == short  # observed past the budget
    assert sample("maskdetect_queue_wait_seconds_bucket", le="10.0") == long + 1
    assert client.post("/predict", data=WHITE, content_type="image/jpeg", headers=stamp(0.1)).status_code == 200
    assert sample("maskdetect_requests_shed_total") == shed + 1  # an answered request is not shed


def test_a_request_is_in_flight_while_it_runs_and_not_after_even_when_it_fails(app, client, monkeypatch):
    predictor = app.extensions["maskdetect.predictor"]
    predict, seen = predictor.predict, []

    def watched(*args, **kwargs):
        seen.append(sample("maskdetect_requests_in_flight"))
        return predict(*args, **kwargs)

    monkeypatch.setattr(predictor, "predict", watched)
    assert sample("maskdetect_requests_in_flight") == 0
    assert client.post("/predict", data=WHITE, content_type="image/jpeg").status_code == 200
    assert seen == [1] and sample("maskdetect_requests_in_flight") == 0

    def broken(*args, **kwargs):
        seen.append(sample("maskdetect_requests_in_flight"))
        raise RuntimeError("a fault of the service")

    monkeypatch.setattr(predictor, "predict", broken)
    assert client.post("/predict", data=WHITE, content_type="image/jpeg").status_code == 500
    assert seen == [1, 1] and sample("maskdetect_requests_in_flight") == 0


def test_a_requests_time_in_a_worker_adds_to_the_busy_seconds_and_a_scrape_adds_nothing(app, client, monkeypatch):
    import time as clock

    predictor = app.extensions["maskdetect.predictor"]
    predict = predictor.predict
    monkeypatch.setattr(predictor, "predict", lambda *args, **kwargs: clock.sleep(0.3) or predict(*args, **kwargs))
    busy = sample("maskdetect_worker_busy_seconds_total")
    begin = clock.perf_counter()
    assert client.post("/predict", data=WHITE, content_type="image/jpeg").status_code == 200
    took = clock.perf_counter() - begin
    assert 0.3 <= sample("maskdetect_worker_busy_seconds_total") - busy <= took  # inside the client's time
    busy = sample("maskdetect_worker_busy_seconds_total")
    assert client.get("/metrics").status_code == 200
    assert sample("maskdetect_worker_busy_seconds_total") == busy


def test_metrics_answers_prometheus_text_with_every_metric_explained_and_is_never_shed(client):
    response = client.get("/metrics", headers=stamp(60))  # far past the queue budget: a scrape is not shed
    assert response.status_code == 200 and response.mimetype == "text/plain"
    families = {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}
    for name in NAMES:
        assert name in families and len(families[name].documentation) > 40, name
    assert families["maskdetect_queue_wait_seconds"].type == "histogram"
    assert families["maskdetect_requests_in_flight"].samples[0].value == 0  # the scrape does not count itself
    assert not [name for name in families if name.endswith("_created")]


def test_a_url_a_worker_fetches_itself_is_in_flight_while_it_is_fetched(client, monkeypatch):
    from maskdetect.service import api

    seen = []

    def fetched(url, **_):
        seen.append(sample("maskdetect_url_fetches_in_flight"))
        return WHITE

    monkeypatch.setattr(api, "fetch_bytes", fetched)
    before = sample("maskdetect_url_fetches_in_flight")
    for path in ("/predict", "/detect"):
        assert client.post(path, json={"url": "https://example.com/white.jpg"}).status_code == 200
    assert seen == [before + 1] * 2 and sample("maskdetect_url_fetches_in_flight") == before


def test_a_url_fetch_is_in_flight_inside_the_block_and_not_after_even_when_it_fails():
    before = sample("maskdetect_url_fetches_in_flight")
    with metrics.url_fetch_in_flight():
        with metrics.url_fetch_in_flight():
            assert sample("maskdetect_url_fetches_in_flight") == before + 2
    with pytest.raises(TimeoutError), metrics.url_fetch_in_flight():
        raise TimeoutError("the host did not answer")
    assert sample("maskdetect_url_fetches_in_flight") == before


# ---------------------------------------------------------------------------- maskdetect serve: two workers, one sum


def _worker_totals(folder: Path, key_part: str) -> dict[int, float]:
    """Worker pid -> the sum of its counter samples whose key names ``key_part``, read from its own file."""
    totals = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        totals[pid] = sum(value for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)) if key_part in key)
    return totals


@pytest.mark.slow
def test_metrics_behind_serve_add_up_every_process_and_forget_a_dead_workers_in_flight(tmp_path, observations, http_server):
    jpeg = (observations / "with_mask" / "0-with-mask.jpg").read_bytes()
    released = threading.Event()
    http_server["/held.jpg"] = (200, lambda write: released.wait(60) and write(jpeg), len(jpeg), {"Content-Type": "image/jpeg"})
    held_url = f"http://127.0.0.1:{http_server.port}/held.jpg"
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=2, MASKDETECT_ALLOW_PRIVATE_URLS=1) as (base_url, process):
        master = gunicorn_master(process.pid)
        folder = Path(master.environ()["PROMETHEUS_MULTIPROC_DIR"])
        assert folder.is_dir() and folder.parent.name.startswith("maskdetect-serve-")

        def fetches_in_flight() -> float:
            return scraped(requests.get(f"{base_url}/metrics", timeout=60).text)[("maskdetect_url_fetches_in_flight", ())]

        # A URL held by its host: the fetch stage's process counts it, a compute worker's /metrics shows it.
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(requests.post, f"{base_url}/predict", json={"url": held_url}, timeout=60)
            deadline = time.monotonic() + 30
            while fetches_in_flight() != 1:
                assert time.monotonic() < deadline and not held.done(), "the held URL never showed in flight"
                time.sleep(0.1)
            released.set()
            assert held.result().status_code == 200
        assert fetches_in_flight() == 0
        forwarded = scraped(requests.get(f"{base_url}/metrics", timeout=60).text)[
            ("maskdetect_requests_total", (("endpoint", "/predict"), ("status", "200")))]
        assert forwarded == 1  # the stage forwarded the held URL's bytes to a worker, which counted its answer

        def predict(_):
            return requests.post(f"{base_url}/predict", data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=60).status_code

        with ThreadPoolExecutor(4) as pool:  # 4 at once for 2 workers: both are kept busy
            statuses = list(pool.map(predict, range(20)))
        assert statuses == [200] * 20

        text = requests.get(f"{base_url}/metrics", timeout=60).text
        values = scraped(text)
        assert values[("maskdetect_requests_total", (("endpoint", "/predict"), ("status", "200")))] == 20 + forwarded
        per_worker = _worker_totals(folder, '{"endpoint": "/predict", "status": "200"}')
        workers = {worker.pid for worker in master.children()}
        answering = {pid for pid, total in per_worker.items() if total}
        assert answering == workers and len(workers) == 2, per_worker  # each answered some: the 20 are a sum
        assert values[("maskdetect_queue_wait_seconds_count", ())] >= 20  # every request came stamped by nginx
        assert values[("maskdetect_requests_in_flight", ())] == 0
        assert values[("maskdetect_worker_busy_seconds_total", ())] > 0

        # A worker that dies takes its live gauge with it (gunicorn's child_exit); its counts stay in the sum.
        dead = min(workers)
        assert (folder / f"gauge_livesum_{dead}.db").exists()
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (folder / f"gauge_livesum_{dead}.db").exists() or len(master.children()) < 2:
            assert time.monotonic() < deadline, "the dead worker's gauge file stayed, or no worker replaced it"
            time.sleep(0.1)
        assert psutil.pid_exists(master.pid)
        values = scraped(requests.get(f"{base_url}/metrics", timeout=60).text)
        assert values[("maskdetect_requests_total", (("endpoint", "/predict"), ("status", "200")))] == 20 + forwarded
        assert values[("maskdetect_requests_in_flight", ())] == 0
