"""The Docker image's inputs, checked without building it (`make docker-check` builds and runs it).

Fast: no container engine, no network.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from tests.samples import dockerfile_instructions
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


def test_image_requirements_leave_out_the_notebook_and_training_stack():
    names = {line.split("==")[0] for line in (DOCKER / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")}
    assert {"tensorflow", "keras", "h5py", "pillow", "flask", "gunicorn", "opencv-python-headless"} <= names  # opencv runs YuNet
    assert not names & {"jupyter", "papermill", "matplotlib", "pandas", "scikit-learn", "pytest"}


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
