"""`maskdetect serve` as root: nginx's workers, which parse every request, run as an unprivileged user."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess

import psutil
import pytest
import requests

from maskdetect import serve as stack_module
from maskdetect.core import constants
from tests.servers import serve

TFLITE = constants.PROJECT_ROOT / "deployment" / "maskdetect.tflite"


def test_as_an_ordinary_user_the_configuration_names_no_user(tmp_path):
    text = stack_module.render_nginx_config(tmp_path, tmp_path / "g.sock", "127.0.0.1", 9, 3.0, euid=1000)
    assert "\nuser " not in text and "user root" not in text


def test_as_root_the_workers_run_as_nobody_and_nginx_accepts_it(tmp_path):
    text = stack_module.render_nginx_config(tmp_path, tmp_path / "g.sock", "127.0.0.1", 9, 3.0, euid=0)
    nobody = pwd.getpwnam("nobody")
    assert f"\nuser nobody {stack_module.nginx_worker_user(0)[1]};\n" in text and "user root" not in text
    assert stack_module.nginx_worker_user(0)[2] == nobody.pw_gid
    (tmp_path / "nginx.conf").write_text(text)
    check = subprocess.run([stack_module.find_nginx(), "-t", "-q", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path),
                            "-e", "stderr"], capture_output=True, text=True)
    if os.geteuid() == 0:  # only root may name a user; as anyone else nginx warns and goes on
        assert check.returncode == 0, check.stderr


def test_as_root_without_the_user_serve_refuses_and_says_what_to_do(tmp_path, monkeypatch):
    def no_such_user(name):
        raise KeyError(name)

    monkeypatch.setattr(stack_module.pwd, "getpwnam", no_such_user)
    with pytest.raises(stack_module.ServeError, match="runs as root") as refused:
        stack_module.render_nginx_config(tmp_path, tmp_path / "g.sock", "127.0.0.1", 9, 3.0, euid=0)
    assert "useradd --system" in str(refused.value) and "ordinary user" in str(refused.value)
    assert stack_module.nginx_worker_user(1000) is None  # an ordinary user needs no one else


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")
def test_as_root_the_run_folder_lets_only_the_workers_group_through(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    stack_module.share_run_folder(run, euid=0)
    status = run.stat()
    assert (status.st_uid, status.st_gid) == (0, pwd.getpwnam("nobody").pw_gid)
    assert stat.S_IMODE(status.st_mode) == 0o710  # enter, not list, not write; others nothing


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="serve switches nginx's workers to another user only as root")
def test_serve_as_root_answers_through_workers_that_are_not_root(tmp_path, observations):
    photo = (observations / "with_mask" / "0-with-mask.jpg").read_bytes()
    large = photo + b"\0" * (2 << 20)  # over client_body_buffer_size: nginx writes it to its temp path first
    with serve(tmp_path / "serve.log", MODEL_PATH=TFLITE, WORKERS=1) as (base_url, process):
        (master,) = [child for child in psutil.Process(process.pid).children() if child.name() == "nginx"]
        workers = master.children()
        assert master.uids().effective == 0 and workers
        assert {worker.uids().effective for worker in workers} == {pwd.getpwnam("nobody").pw_uid}
        small = requests.post(f"{base_url}/predict", data=photo, headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert small.status_code == 200 and small.json()["label"] == "with_mask"
        spooled = requests.post(f"{base_url}/predict", files={"image": ("p.jpg", large)}, timeout=60)
        assert spooled.status_code == 200 and spooled.json()["label"] == "with_mask"
        fetched = requests.post(f"{base_url}/predict", json={"url": "http://127.0.0.1:9/x.jpg"}, timeout=60)
        assert fetched.status_code == 400  # a JSON POST goes through the fetch stage's socket too
