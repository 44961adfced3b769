"""The Docker image's inputs, checked without building it (`make docker-check` builds and runs it).

Fast: no container engine, no network.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from tests.samples import dockerfile_instructions
from maskdetect.core.constants import LABELS, MODEL_FILE, SERVED_FILE
from maskdetect.core.weights import DETECTOR_FILE

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "deployment" / "docker"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(ROOT / "Dockerfile")


def _copy_sources() -> list[str]:
    sources = []
    for keyword, rest in _dockerfile_instructions():
        if keyword in ("COPY", "ADD"):
            words = [word for word in rest.split() if not word.startswith("--")]
            sources += words[:-1]
    return sources


def test_dockerfile_copies_only_what_serving_needs():
    sources = _copy_sources()
    assert sources, "the Dockerfile copies nothing?"
    for source in sources:
        top = source.rstrip("/").split("/")[0]
        assert top in ("maskdetect", "deployment"), f"COPY {source}: only the package and deployment/ belong in the image"
        assert source not in (".", "./", "deployment", "deployment/"), f"COPY {source} copies too much"
    assert not any(keyword == "ADD" for keyword, _ in _dockerfile_instructions()), "use COPY, not ADD"


def test_dockerfile_copies_the_face_detectors_weights_where_the_service_looks():
    copies = [(rest.split()[:-1], rest.split()[-1]) for keyword, rest in _dockerfile_instructions() if keyword == "COPY"]
    assert ([f"deployment/weights/{DETECTOR_FILE}"], "deployment/weights/") in copies  # weights_dir() under WORKDIR /app
    assert ("WORKDIR", "/app") in _dockerfile_instructions()


def test_dockerfile_runs_nginx_in_front_of_gunicorn_as_a_non_root_user_on_9696():
    instructions = _dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    assert ("EXPOSE", "9696") in instructions
    assert "HEALTHCHECK" in keywords
    cmd = dict(instructions)["CMD"]
    assert cmd == '["python", "-m", "maskdetect.serve"]'  # nginx on HOST:PORT, gunicorn behind it
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "apt-get install -y --no-install-recommends nginx" in runs and "rm -rf /var/lib/apt/lists/*" in runs
    copied = _copy_sources()
    assert "deployment/gunicorn.conf.py" in copied and "deployment/nginx.conf" in copied
    assert "deployment/gunicorn-fetch.conf.py" in copied  # maskdetect serve starts the URL fetch stage with it
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "HOST=0.0.0.0" in env and "PORT=9696" in env


def test_dockerfile_from_is_the_name_base_image_sh_builds():
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm")
    assert ("FROM", "${PYTHON_IMAGE}") in instructions


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_dockerignore_lets_in_only_what_the_dockerfile_copies():
    patterns = _dockerignore_patterns()
    assert patterns[0] == "*", ".dockerignore should exclude everything, then allow what the image needs"
    allowed = [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]
    for pattern in allowed:
        assert not pattern.startswith(("data", "notebooks", "tests", ".venv", ".tools")), pattern
    for source in _copy_sources():
        assert source.rstrip("/") in allowed, f"COPY {source} is not let in by .dockerignore"
    assert "**/__pycache__" in patterns


def _requirements_module():
    spec = importlib.util.spec_from_file_location("docker_requirements", DOCKER / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_requirements_match_pipfile_lock():
    module = _requirements_module()
    assert (DOCKER / "requirements.txt").read_text() == module.render(), (
        "deployment/docker/requirements.txt is out of date with Pipfile.lock or requirements.in: "
        "run `make docker-requirements`"
    )
    keras = module.TARGETS["docker-keras"]
    assert keras.output == DOCKER / "requirements-keras.txt"
    assert keras.output.read_text() == module.render(top_level=keras.top_level, environment=keras.environment), (
        "deployment/docker/requirements-keras.txt is out of date: run `make docker-requirements`"
    )


def _requirement_names(path: Path) -> set[str]:
    return {line.split("==")[0] for line in path.read_text().splitlines() if line and not line.startswith("#")}


def test_image_requirements_serve_the_tflite_without_tensorflow():
    names = _requirement_names(DOCKER / "requirements.txt")
    assert {"ai-edge-litert", "numpy", "pillow", "flask", "gunicorn", "opencv-python-headless", "norfair-enough"} <= names  # opencv runs YuNet
    assert not names & {"tensorflow", "keras", "h5py", "jax", "torch"}, "the default image serves the .tflite on LiteRT"
    assert not names & {"jupyter", "papermill", "matplotlib", "pandas", "scikit-learn", "pytest"}
    # KERAS=1's adds only what a Keras model needs, at the same versions.
    keras = _requirement_names(DOCKER / "requirements-keras.txt")
    assert names < keras and {"tensorflow", "keras", "h5py"} <= keras
    assert not keras & {"jupyter", "papermill", "matplotlib", "pandas", "scikit-learn", "pytest"}
    pinned = lambda path: {line.split(" ")[0] for line in path.read_text().splitlines() if line and not line.startswith("#")}  # noqa: E731
    assert pinned(DOCKER / "requirements.txt") <= pinned(DOCKER / "requirements-keras.txt")


def test_the_image_serves_the_tflite_by_default_and_the_h5_when_built_with_keras():
    instructions = _dockerfile_instructions()
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert f"MODEL_PATH=/app/deployment/{SERVED_FILE}" in env
    copied = _copy_sources()
    assert f"deployment/{SERVED_FILE}" in copied and f"deployment/{MODEL_FILE}" in copied and "deployment/metrics.json" in copied
    assert ("ARG", "KERAS=0") in instructions
    (install,) = [rest for keyword, rest in instructions if keyword == "RUN" and "pip install" in rest]
    assert "/tmp/requirements.txt" in install and '"$KERAS" = 1' in install and "requirements=/tmp/requirements-keras.txt" in install
    assert "--require-hashes" in install and "--no-deps" in install and "pip check" in install


def test_gunicorn_refuses_a_keras_model_where_keras_is_missing(monkeypatch, tmp_path):
    """The default image has no TensorFlow: MODEL_PATH=...h5 there stops at start, saying what to do."""
    import importlib.util
    import runpy

    model = tmp_path / MODEL_FILE
    model.write_bytes(b"not read")
    monkeypatch.setenv("MODEL_PATH", str(model))
    conf = runpy.run_path(str(ROOT / "deployment" / "gunicorn.conf.py"))
    errors = []

    class Server:
        class log:
            error = staticmethod(lambda message, *args: errors.append(message % args))

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "keras" else real(name, *a))
    with pytest.raises(SystemExit):
        conf["on_starting"](Server)
    assert "KERAS=1" in errors[0] and "maskdetect.tflite" in errors[0]
    monkeypatch.setattr(importlib.util, "find_spec", real)
    conf["on_starting"](Server)  # with Keras installed (this environment), the .h5 may be served
    assert len(errors) == 1


def test_the_smoke_check_knows_the_models_labels():
    spec = importlib.util.spec_from_file_location("smoke", DOCKER / "smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    assert smoke.LABELS == LABELS
    three = {"label": "incorrect", "with_mask": 0.2, "incorrect": 0.5, "without_mask": 0.3, "model": "m", "face": None}
    two = {"label": "with_mask", "with_mask": 0.75, "without_mask": 0.25, "model": "m", "face": None}
    for body in (three, two):
        smoke.check_prediction("test", 200, body)
    for body in ({**three, "label": "with_mask"}, {**three, "incorrect": 0.6}, {**two, "label": "masked"}, {"label": "with_mask", "with_mask": 1.0}):
        with pytest.raises(smoke.SmokeError):
            smoke.check_prediction("test", 200, body)
    face = {"box": [0, 0, 9, 9], "label": "incorrect"}
    smoke.check_detection(200, {"faces": [face], "total": 1, "with_mask": 0, "incorrect": 1, "without_mask": 0})
    smoke.check_detection(200, {"faces": [{**face, "label": "with_mask"}], "total": 1, "with_mask": 1, "without_mask": 0})
    with pytest.raises(smoke.SmokeError):
        smoke.check_detection(200, {"faces": [face], "total": 1, "with_mask": 0, "without_mask": 0})


@pytest.mark.parametrize(
    "files, expected",
    [
        (  # deb822, as on Debian 12 images; the disabled stanza is skipped
            {"sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
                "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
                "Components: main\n\n"
                "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
            )},
            ["http://mirror.example/debian", "http://security.example/debian-security"],
        ),
        (  # one-line format, with options and a commented-out line
            {"sources.list": (
                "# deb http://old.example/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
                "deb-src http://src.example/debian bookworm main\n"
            )},
            ["http://mirror.example/debian", ""],
        ),
        ({"sources.list.d/other.list": "deb http://x.example/ stable main\n"}, ["", ""]),
    ],
)
def test_base_image_reads_the_mirror_from_apt_sources(tmp_path, files, expected):
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["bash", str(DOCKER / "base-image.sh"), "--print-mirror"],
        env={"PATH": "/usr/bin:/bin", "MASKDETECT_APT_ETC": str(tmp_path)},
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.split("\n")[:2] == expected
