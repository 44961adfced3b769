"""The service as people run it: gunicorn with deployment/gunicorn.conf.py, the test_local
notebook, predict-test.py, and the web page in a real headless Chromium.

One gunicorn per module (it imports TensorFlow: seconds), on 127.0.0.1 and a free port,
with images for URL inputs served by a local HTTP server.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from types import SimpleNamespace

import psutil
import pytest
import requests

from tests.servers import free_port, gunicorn, service_env
from maskdetect.core import constants

ROOT = constants.PROJECT_ROOT
DEPLOYMENT = ROOT / "deployment"


@pytest.fixture(scope="module")
def service(model_file, tmp_path_factory):
    """gunicorn with the project's config file, two workers, URLs to 127.0.0.1 allowed."""
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with gunicorn(log, MODEL_PATH=model_file, WORKERS=2, MASKDETECT_ALLOW_PRIVATE_URLS=1) as (base_url, process):
        yield base_url, process, log


# ---------------------------------------------------------------------------- gunicorn


@pytest.mark.slow
def test_gunicorn_serves_the_app_with_the_configured_workers(service, images, image_site):
    import psutil

    base_url, process, log = service
    assert requests.get(f"{base_url}/health", timeout=5).json() == {"status": "ok", "model": "maskdetect.h5"}
    with open(images / "white.png", "rb") as image:
        upload = requests.post(f"{base_url}/predict", files={"image": image}, timeout=10).json()
    by_url = requests.post(f"{base_url}/predict", json={"url": f"{image_site}/white.png"}, timeout=10).json()
    assert upload == by_url and upload["label"] == "with_mask"
    # A chunked body (no Content-Length) is held to the same limit as a declared one.
    chunked = requests.post(f"{base_url}/predict", data=iter([b"\xff" * 2**20] * 11), headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert chunked.status_code == 413 and "10 MB" in chunked.json()["error"]
    small = (images / "white.png").read_bytes()
    chunked = requests.post(f"{base_url}/predict", data=iter([small[:100], small[100:]]), headers={"Content-Type": "image/png"}, timeout=10)
    assert chunked.json() == upload
    missing = requests.get(f"{base_url}/nope", timeout=5)
    assert missing.status_code == 404 and "error" in missing.json()
    workers = psutil.Process(process.pid).children()
    assert len(workers) == 2
    assert "POST /predict" in log.read_text()  # the access log goes to stdout


def test_a_worker_trims_its_heap_only_past_the_slack_over_its_loaded_size_and_at_most_every_interval(monkeypatch):
    settings = runpy.run_path(str(DEPLOYMENT / "gunicorn.conf.py"))
    assert abs(settings["_resident_mb"]() - psutil.Process().memory_info().rss / 2**20) < 4  # this process, read from /proc
    hooks = settings["post_request"].__globals__
    slack, interval = settings["HEAP_SLACK_MB"], settings["TRIM_INTERVAL_S"]
    trims, now = [], [1000.0]
    worker = SimpleNamespace(malloc_trim=trims.append)
    sizes = iter([100.0, 100.0 + slack, 101.0 + slack, 150.0 + slack, 150.0 + slack])
    hooks["_resident_mb"] = lambda: next(sizes)
    hooks["time"] = SimpleNamespace(monotonic=lambda: now[0])
    settings["post_worker_init"](worker)  # loaded at 100 MB
    assert worker.loaded_mb == 100.0
    settings["post_request"](worker, None, {}, None)  # at the slack: kept
    assert trims == []
    settings["post_request"](worker, None, {}, None)  # past it: every free page given back
    assert trims == [0]
    now[0] += interval / 2
    settings["post_request"](worker, None, {}, None)  # far past it, but trimmed a moment ago
    assert trims == [0]
    now[0] += interval
    settings["post_request"](worker, None, {}, None)
    assert trims == [0, 0]

    plain = SimpleNamespace()  # no glibc (musl, macOS): nothing measured, nothing trimmed
    settings["post_worker_init"](plain)
    settings["post_request"](plain, None, {}, None)
    assert not hasattr(plain, "loaded_mb")


@pytest.mark.slow
def test_gunicorn_without_a_model_stops_and_says_what_to_do(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(DEPLOYMENT / "gunicorn.conf.py")],
        cwd=ROOT, env=service_env(MODEL_PATH=tmp_path / "none.h5", PORT=free_port()),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "no model at" in result.stderr + result.stdout and "make train" in result.stderr + result.stdout


@pytest.mark.slow
def test_make_serve_without_a_model_says_what_to_do(tmp_path):
    # -o env: do not set the environment up; the model check comes before gunicorn starts.
    result = subprocess.run(
        ["make", "-o", "env", "serve", f"MODEL_PATH={tmp_path / 'none.h5'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "no model at" in result.stderr and "make train" in result.stderr


# ---------------------------------------------------------------------------- test_local.ipynb and predict-test.py


def test_the_committed_notebook_is_clean_and_parameterised():
    import nbformat

    notebook = nbformat.read(DEPLOYMENT / "test_local.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "base_url" in parameters[0].source
    assert not [o for cell in code for o in cell.get("outputs", []) if o.output_type == "error"]


@pytest.mark.slow
def test_the_notebook_posts_urls_and_files_and_shows_the_answers(service, images, image_site, tmp_path):
    import nbformat
    import papermill

    base_url, _, _ = service
    executed = tmp_path / "test_local.ipynb"
    papermill.execute_notebook(
        str(DEPLOYMENT / "test_local.ipynb"),
        str(executed),
        parameters={
            "base_url": base_url,
            "image_urls": [f"{image_site}/white.png", f"{image_site}/notes.txt"],
            "image_files": [str(images / "black.jpg"), str(images / "photo.jpg")],
        },
        cwd=str(DEPLOYMENT),
        progress_bar=False,
        kernel_name="python3",
    )
    notebook = nbformat.read(executed, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    results = [json.loads(line) for line in text.splitlines() if line.startswith('{"input"')]
    assert [(r["input"].rsplit("/", 1)[-1], r["status"], r.get("label")) for r in results] == [
        ("white.png", 200, "with_mask"),
        ("notes.txt", 422, None),
        ("black.jpg", 200, "without_mask"),
        ("photo.jpg", 200, results[3].get("label")),
    ]
    assert all(set(constants.LABELS) <= set(r) for r in results if r["status"] == 200)  # the three probabilities
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the images with their answers
    assert "400 {'error': 'refused URL" in text  # the error examples


@pytest.mark.slow
def test_predict_test_script(service, images, image_site):
    base_url, _, _ = service
    script = [sys.executable, str(DEPLOYMENT / "predict-test.py"), "--url", base_url]
    good = subprocess.run(
        [*script, str(images / "black.jpg"), f"{image_site}/white.png"], capture_output=True, text=True, timeout=60
    )
    assert good.returncode == 0, good.stderr
    lines = [json.loads(line) for line in good.stdout.splitlines()]
    assert [line["label"] for line in lines] == ["without_mask", "with_mask"]
    assert list(lines[0]) == ["input", "label", "with_mask", "incorrect", "without_mask", "model", "face"]
    bad = subprocess.run([*script, str(images / "notes.txt")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "HTTP 422" in bad.stderr
    down = subprocess.run(
        [*script[:-1], f"http://127.0.0.1:{free_port()}", str(images / "white.png")], capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 2 and "make serve" in down.stderr


# ---------------------------------------------------------------------------- the page in a real browser

@pytest.mark.slow
def test_upload_a_file_and_paste_a_url_in_the_page(browser, service, images, image_site, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base_url, _, _ = service
    browser.get(f"{base_url}/")
    assert "mask" in browser.title
    result = browser.find_element(By.ID, "result")

    def answered(label):
        return WebDriverWait(browser, 30).until(lambda d: result.get_attribute("data-label") == label and result.text)

    browser.find_element(By.ID, "file").send_keys(str(images / "white.png"))
    assert answered("with_mask").startswith("With mask: 100")
    preview = browser.find_element(By.ID, "preview")
    assert preview.get_attribute("src").startswith("blob:") and preview.is_displayed()

    browser.find_element(By.ID, "url").send_keys(f"{image_site}/black.jpg")
    browser.find_element(By.CSS_SELECTOR, "#url-form button").click()
    assert answered("without_mask").startswith("Without mask: 100")
    assert WebDriverWait(browser, 10).until(lambda d: preview.get_attribute("naturalWidth") == "60")

    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.new("RGB", (60, 80), (128, 128, 128)).save(grey)
    browser.find_element(By.ID, "file").send_keys(str(grey))
    assert answered("incorrect").startswith("Mask worn incorrectly: 9")  # p(incorrect) ~ 0.99
    shares = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#probabilities li")]
    assert [line.split(":")[0] for line in shares] == ["With mask", "Mask worn incorrectly", "Without mask"], shares
    browser.save_screenshot(str(os.environ.get("MASKDETECT_SCREENSHOT") or tmp_path / "page.png"))

    browser.find_element(By.ID, "file").send_keys(str(images / "notes.txt"))
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 30).until(lambda d: error.is_displayed())
    assert "not an image" in error.text
    console = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert len(console) == 1 and "/predict" in console[0] and "422" in console[0], console  # the refused upload only
