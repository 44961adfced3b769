"""``maskdetect serve``: the service as deployed, nginx in front of gunicorn.

gunicorn (``deployment/gunicorn.conf.py``: sync workers, one request at a time each) listens on
a unix socket in a temporary folder; nginx (``deployment/nginx.conf``) listens on HOST:PORT, reads
every request whole within the client deadlines before it hands it on, and stamps it for load
shedding (:mod:`maskdetect.service.shedding`). So a slow client costs an nginx connection, not a worker.
Beside it, the URL fetch stage (``deployment/gunicorn-fetch.conf.py``, :mod:`maskdetect.service.fetcher`)
on a second socket: nginx sends it the JSON POSTs, so waiting on a remote URL holds none of the
compute workers that answer uploads and ``/health``.

Signals: HUP reloads all three (each gunicorn starts new workers and lets the old ones finish their
request; nginx re-reads its configuration). TERM, INT and QUIT stop nginx gracefully first (it
stops accepting and finishes the requests it holds), then the fetch stage, then the compute
gunicorn (each finishes its requests). If any process exits on its own, the others are stopped and
serve exits with status 1.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .core.constants import DEFAULT_HOST, DEFAULT_PORT, MAX_IMAGE_BYTES, PROJECT_ROOT, URL_TOTAL_TIMEOUT
from .settings import Settings

DEPLOYMENT = PROJECT_ROOT / "deployment"
GUNICORN_CONFIG = DEPLOYMENT / "gunicorn.conf.py"
FETCH_CONFIG = DEPLOYMENT / "gunicorn-fetch.conf.py"
NGINX_TEMPLATE = DEPLOYMENT / "nginx.conf"
UPSTREAM_TIMEOUT_S = 35  # gunicorn's worker timeout (30 s) and then some: gunicorn answers first
FETCH_TIMEOUT_S = URL_TOTAL_TIMEOUT + UPSTREAM_TIMEOUT_S + 5  # the fetch stage: a fetch, then the compute stage's answer
SOCKET_WAIT_S = 60.0  # gunicorn binds its socket before it boots workers: seconds, even on a busy machine
STOP_WAIT_S = 20.0  # per process, longer than the gunicorns' graceful_timeout (10 s; the fetch stage 15 s)


class ServeError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


NGINX_WORKER_USER = "nobody"  # serve run as root: nginx's workers, which parse every request, run as this user


def nginx_worker_user(euid: int | None = None) -> tuple[str, str, int] | None:
    """(user, group, group id) nginx's workers run as when serve runs as root (``euid`` 0); None otherwise.

    Not root, nginx cannot switch users and its workers stay this user. ServeError when root and no such user exists.
    """
    if (os.geteuid() if euid is None else euid) != 0:
        return None
    try:
        user = pwd.getpwnam(NGINX_WORKER_USER)
    except KeyError:
        raise ServeError(
            f"maskdetect serve runs as root, and nginx's workers must not: they would run as user {NGINX_WORKER_USER}, "
            f"which this system lacks. Create it (useradd --system --no-create-home {NGINX_WORKER_USER}) or run serve as an "
            "ordinary user"
        ) from None
    try:
        group = grp.getgrgid(user.pw_gid).gr_name
    except KeyError:
        group = str(user.pw_gid)
    return user.pw_name, group, user.pw_gid


def share_run_folder(run: Path, euid: int | None = None) -> None:
    """As root, let nginx's workers (and nobody else) through the run folder to their temp paths and the sockets.

    mkdtemp made it 0700 root's; it becomes root:<the workers' group> 0710: they may enter, not list or write
    (nginx's master, root, creates the temp paths and gives them to the workers' user).
    """
    worker = nginx_worker_user(euid)
    if worker is not None:
        os.chown(run, 0, worker[2])
        os.chmod(run, 0o710)


def find_nginx() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if found is None:
        raise ServeError(
            "nginx is not installed: install it (Debian/Ubuntu: apt-get install nginx; macOS: brew install nginx), "
            "or run gunicorn alone with `maskdetect serve --no-proxy` (development only: a few slow clients stop it)"
        )
    return found


def render_nginx_config(run: Path, socket: Path, host: str, port: int, client_timeout_s: float,
                        fetch_socket: Path | None = None, settings: Settings | None = None, euid: int | None = None) -> str:
    """deployment/nginx.conf with its placeholders (capitals between at signs) filled in.

    ``fetch_socket``: the fetch stage's (default ``run``/fetch.sock); ``settings``: the per-client URL limits (default Settings());
    ``euid``: the user serve runs as (default this process's), root making the workers NGINX_WORKER_USER.
    """
    worker = nginx_worker_user(euid)
    settings = settings or Settings()
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    values = {
        "USER": f"user {worker[0]} {worker[1]};" if worker else "",  # never root: the workers parse every request
        "RUN": str(run),
        "SOCKET": str(socket),
        "LISTEN": listen,
        "CLIENT_TIMEOUT": f"{client_timeout_s:g}",
        "UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT_S),
        "FETCH_SOCKET": str(fetch_socket or run / "fetch.sock"),
        "FETCH_TIMEOUT": f"{FETCH_TIMEOUT_S:g}",
        "URL_CLIENT_CONNECTIONS": str(settings.url_client_connections),
        "URL_CLIENT_RATE": str(settings.url_client_rate),
        "URL_CLIENT_BURST": str(settings.url_client_burst),
        "LARGE_REQUESTS": str(settings.large_requests),
        "MAX_BODY": str(MAX_IMAGE_BYTES),
        "MAX_BODY_MB": f"{MAX_IMAGE_BYTES / 1024 / 1024:g}",
    }
    return re.sub(r"@([A-Z_]+)@", lambda match: values[match.group(1)], NGINX_TEMPLATE.read_text())


def _stop(process: subprocess.Popen, sig: int, wait_s: float = STOP_WAIT_S) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_socket(socket: Path, gunicorn: subprocess.Popen, name: str = "gunicorn") -> None:
    deadline = time.monotonic() + SOCKET_WAIT_S
    while not socket.exists():
        if gunicorn.poll() is not None:
            raise ServeError(f"{name} stopped with status {gunicorn.returncode} before it listened (its log is above)")
        if time.monotonic() > deadline:
            raise ServeError(f"{name} did not listen on {socket} within {SOCKET_WAIT_S:g} s")
        time.sleep(0.05)


def serve(*, host: str | None = None, port: int | None = None, proxy: bool = True, settings: Settings | None = None) -> int:
    """Run the stack until a signal stops it; the exit status (0 after TERM, INT or QUIT)."""
    settings = settings or Settings.from_env()  # a bad value fails here, before anything starts
    host = host or settings.host
    port = int(port or settings.port)
    gunicorn_command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
    if not proxy:  # gunicorn in this process's place: signals reach it directly
        os.execve(sys.executable, gunicorn_command, {**os.environ, "HOST": host, "PORT": str(port)})

    nginx_binary = find_nginx()
    run = Path(tempfile.mkdtemp(prefix="maskdetect-serve-"))  # 0700: this user's only
    try:
        share_run_folder(run)
        return _run_stack(run, nginx_binary, gunicorn_command, host, port, settings)
    finally:
        shutil.rmtree(run, ignore_errors=True)


def _run_stack(run: Path, nginx_binary: str, gunicorn_command: list[str], host: str, port: int, settings: Settings) -> int:
    socket, fetch_socket = run / "gunicorn.sock", run / "fetch.sock"
    nginx_config = run / "nginx.conf"
    nginx_config.write_text(render_nginx_config(run, socket, host, port, settings.client_timeout_s, fetch_socket, settings))
    nginx_command = [nginx_binary, "-c", str(nginx_config), "-p", str(run), "-e", "stderr"]
    check = subprocess.run([*nginx_command, "-t", "-q"], capture_output=True, text=True)
    if check.returncode != 0:
        raise ServeError(f"nginx refused its configuration: {check.stderr.strip()}")

    requests: list[int] = []
    handled = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    previous = {sig: signal.signal(sig, lambda sig, _frame: requests.append(sig)) for sig in handled}
    processes: dict[str, subprocess.Popen] = {}  # in starting order; stopped in reverse
    metrics = run / "metrics"  # empty: each gunicorn process writes its metrics here, GET /metrics sums them
    metrics.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}  # prometheus-client reads it at import
    try:
        processes["gunicorn"] = subprocess.Popen(gunicorn_command, env={**env, "MASKDETECT_GUNICORN_BIND": f"unix:{socket}"})
        processes["the fetch stage"] = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(FETCH_CONFIG)],
            env={**env, "MASKDETECT_GUNICORN_BIND": f"unix:{fetch_socket}", "MASKDETECT_COMPUTE_SOCKET": str(socket)},
        )
        _wait_for_socket(socket, processes["gunicorn"])
        _wait_for_socket(fetch_socket, processes["the fetch stage"], "the fetch stage")
        processes["nginx"] = nginx = subprocess.Popen(nginx_command)
        print(f"maskdetect serve: http://{host}:{port} (nginx, pid {nginx.pid}) -> gunicorn (pid {processes['gunicorn'].pid}) on {socket}; "
              f"JSON to the fetch stage (gunicorn, pid {processes['the fetch stage'].pid}) on {fetch_socket}", file=sys.stderr, flush=True)
        while True:
            while requests:
                sig = requests.pop(0)
                if sig == signal.SIGHUP:
                    for process in processes.values():
                        process.send_signal(signal.SIGHUP)
                else:
                    return 0
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"maskdetect serve: {name} stopped with status {process.returncode}; stopping", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.1)
    finally:
        # Graceful, front first: nginx stops listening and finishes what it holds, then the fetch
        # stage its fetches (which need the compute stage), then each compute worker its request.
        for name, process in reversed(processes.items()):
            _stop(process, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def add_arguments(parser) -> None:
    parser.add_argument("--host", help=f"address nginx listens on (default $HOST, else {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port (default $PORT, else {DEFAULT_PORT})")
    parser.add_argument(
        "--no-proxy", dest="proxy", action="store_false",
        help="gunicorn alone on HOST:PORT, without nginx: for development only (a few slow clients stop it)",
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m maskdetect.serve", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(host=args.host, port=args.port, proxy=args.proxy)
    except (ServeError, ValueError) as error:
        print(f"maskdetect serve: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
