"""Every command in README.md and documentation/*.md runs as written, or is exempted here with its reason.

The fenced ``bash``/``sh`` blocks are split into commands (continuation lines joined, answers shown
after a command kept as its expected shape). Requests (``curl``) go to a real ``maskdetect serve`` on
localhost:9696, as the docs write it; ``maskdetect`` commands run on files made from the shared data,
in a temporary folder next to a ``../shared/data`` link, with ``.venv`` linked in. One substitution:
there is no internet here, so ``https://example.com/`` becomes a loopback folder holding the same
file names, and the service and the CLI may fetch private addresses (MASKDETECT_ALLOW_PRIVATE_URLS=1):
the command's shape is what is checked. What cannot run here (containers, AWS, Kubernetes, a camera,
hour-long measurements) is listed in EXEMPT; such commands are still checked for bash syntax, for the
files and make targets they name, and (maskdetect ones) for options the CLI accepts. A command that is
neither run nor exempted fails the test, so new docs stay honest.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from maskdetect.core.constants import PROJECT_ROOT
from tests.samples import SHARED, require
from tests.servers import serve, serve_folder, service_env

DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "documentation").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
DOCUMENTED_PORT = 9696  # every doc request names localhost:9696, as `make serve` listens
NO_INTERNET_URL = "https://example.com/"

# (pattern at the command's start or anywhere, reason): commands that cannot run in a test here.
EXEMPT = [
    (r"^(docker |podman |\$P |P=|MASKDETECT_IMAGE=|make weights && docker |deployment/docker/)",
     "needs Docker or podman; tests/test_docker.py and `make docker-check` run the image"),
    (r"^(sam |papermill |API=)|\$API\b", "needs an AWS account and a deployed stack; tests/test_aws.py runs the handler"),
    (r"^(kubectl |helm |IMAGE=|\(cd deployment/kubernetes)", "needs a cluster and a registry; tests/test_kubernetes.py checks the manifests"),
    (r"^apt-get ", "installs a system package"),
    (r"^open ", "opens a browser; tests/test_page_*.py drive the page"),
    (r"maskdetect watch --camera", "needs a camera"),
    (r"maskdetect watch rtsp://", "needs a camera's stream"),
    (r"maskdetect evaluate ", "a measurement of minutes to an hour on the data; the docs state its numbers"),
    (r"^(\.venv/bin/)?python benchmarks/", "a benchmark of minutes; `make bench` runs the service's"),
]
RUN_PATTERNS = {"request": r"(^|\| )curl ", "cli": r"^(\.venv/bin/)?maskdetect ", "make": r"^make "}
OUTPUT_FILE_OPTIONS = ("--out", "--jsonl", "--csv", "-o", "--output")  # maskdetect's and curl's


@dataclass(frozen=True)
class Command:
    doc: str  # README.md:31
    text: str  # as written, continuation lines joined
    shown: str | None  # the answer the doc shows right after it, if any

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text, comments=True)

    def __str__(self) -> str:
        return f"{self.doc} {self.text.split(' #')[0].strip()}"


def shell_blocks() -> list[tuple[str, str]]:
    """(where, text) of every fenced shell block in the docs."""
    blocks = []
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
            if match.group(1) in SHELL_LANGUAGES:
                line = text[: match.start()].count("\n") + 2
                blocks.append((f"{path.relative_to(PROJECT_ROOT)}:{line}", match.group(2)))
    return blocks


def is_output(line: str) -> bool:
    return line.lstrip().startswith(("{", "["))


def commands() -> list[Command]:
    found = []
    for where, block in shell_blocks():
        lines = re.sub(r"\\\n", " ", block).splitlines()
        for index, line in enumerate(lines):
            if not line.strip() or is_output(line) or line.lstrip().startswith("#"):
                continue
            following = lines[index + 1] if index + 1 < len(lines) else ""
            found.append(Command(where, line.strip(), following.strip() if is_output(following) else None))
    return found


def exemption(command: Command) -> str | None:
    return next((reason for pattern, reason in EXEMPT if re.search(pattern, command.text)), None)


def kind(command: Command) -> str | None:
    if exemption(command):
        return "exempt"
    return next((name for name, pattern in RUN_PATTERNS.items() if re.search(pattern, command.text)), None)


def make_targets() -> set[str]:
    listing = subprocess.run(["make", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    return {line.split()[1] for line in listing.splitlines() if line.strip().startswith("make ")}


def inline_spans() -> list[tuple[str, str]]:
    """(doc, code) of every inline code span in the prose (fenced blocks left out)."""
    spans = []
    for path in DOCS:
        prose = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        spans += [(path.name, span) for span in re.findall(r"`([^`\n]+)`", prose)]
    return spans


def test_every_documented_command_is_run_or_exempted():
    unknown = [str(command) for command in commands() if kind(command) is None]
    assert not unknown, f"doc commands neither run by this module nor in its EXEMPT list (add one or the other): {unknown}"


def test_commands_are_only_in_blocks_marked_as_shell():
    """A command in an unmarked or other-language block would escape this module: mark it bash."""
    command_start = re.compile(r"^\s*(curl|make|maskdetect|\.venv/bin/|python|pytest|docker|kubectl|sam) ", re.M)
    hidden = []
    for path in DOCS:
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", path.read_text(), re.S | re.M):
            if match.group(1) not in SHELL_LANGUAGES and command_start.search(match.group(2)):
                hidden.append(f"{path.name}: {command_start.search(match.group(2)).group(0).strip()}...")
    assert not hidden, f"commands in blocks not marked bash or sh: {hidden}"


def test_the_docs_show_requests_and_commands_that_this_module_runs():
    kinds = [kind(command) for command in commands()]
    assert kinds.count("request") >= 10 and kinds.count("cli") >= 5, kinds


def test_every_documented_shell_block_is_valid_bash():
    for where, block in shell_blocks():
        script = "\n".join(line for line in block.splitlines() if not is_output(line))
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert checked.returncode == 0, f"{where} is not valid bash: {checked.stderr}"


def test_every_make_target_named_in_the_docs_exists():
    targets = make_targets()
    named = [(str(command), word) for command in commands() if kind(command) == "make"
             for word in command.words[1:] if "=" not in word]
    named += [(doc, span.split()[1]) for doc, span in inline_spans()
              if re.fullmatch(r"make [a-z-]+( [A-Z_]+=\S+)*", span)]
    missing = [(where, target) for where, target in named if target not in targets]
    assert named and not missing, f"make targets the docs name but the Makefile lacks: {missing}"


def test_every_maskdetect_command_in_the_docs_is_one_the_cli_accepts():
    from maskdetect.cli import build_parser

    for command in commands():
        if re.search(r"^(\.venv/bin/)?maskdetect ", command.text):
            try:
                build_parser().parse_args(command.words[1:])
            except SystemExit as exit:
                pytest.fail(f"{command} is not a command the CLI accepts (exit {exit.code})")
    # prose names commands without their arguments: the subcommand must exist
    (subcommands,) = [action.choices for action in build_parser()._actions if action.dest == "command"]
    named = [span.split()[1] for _, span in inline_spans() if re.match(r"(\.venv/bin/)?maskdetect [a-z]", span)]
    assert named and not set(named) - set(subcommands), f"the docs name maskdetect commands that do not exist: {set(named) - set(subcommands)}"


def test_the_files_exempted_and_inline_commands_name_exist():
    """Commands not run here still name real scripts: exempted ones, and those the prose shows inline."""
    written = [str(command) for command in commands() if kind(command) == "exempt"]
    written += [f"{doc} `{span}`" for doc, span in inline_spans() if re.match(r"(\.venv/bin/)?(python|pytest|maskdetect|docker) ", span)]
    checked = 0
    for command in written:
        for word in re.split(r"[\s=()`]+", command.split(" #")[0]):
            if re.fullmatch(r"(benchmarks|deployment|tests)/[\w/.-]+\.\w+", word) and not word.startswith("deployment/weights"):
                checked += 1
                assert (PROJECT_ROOT / word).exists(), f"{command} names {word}, which does not exist"
    assert checked >= 10, checked


# --- the commands that run -------------------------------------------------------------------------


def make_clip(path: Path, scene: Path, size=(640, 360), frames: int = 10) -> Path:
    """A 2 s clip at 5 frames/s of a real street photo drifting sideways, ``size`` pixels."""
    from maskdetect.core.video import video_writer

    photo = Image.open(scene).convert("RGB").resize((size[0] + 2 * frames, size[1]))
    with video_writer(path, 5, size) as write:
        for index in range(frames):
            write(photo.crop((2 * index, 0, 2 * index + size[0], size[1])))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder laid out like the checkout for the docs' commands: .venv, ../shared/data and the files they name."""
    root = tmp_path_factory.mktemp("docs")
    folder = root / "main"
    folder.mkdir()
    (folder / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    (root / "shared").mkdir()
    (root / "shared" / "data").symlink_to(require(SHARED))
    face = require(SHARED / "observations" / "with_mask" / "0-with-mask.jpg")
    scene = require(SHARED / "scenes-dev" / "images" / "scene000.jpg")
    for name in ("photo.jpg", "face.jpg"):
        shutil.copy(face, folder / name)
    shutil.copy(scene, folder / "street.jpg")
    make_clip(folder / "clip.mp4", scene)
    make_clip(folder / "entrance.mp4", scene)
    (root / "curl").mkdir()
    # curl reads this with every command, which stays as written: the status goes to stderr
    (root / "curl" / ".curlrc").write_text('write-out = "%{stderr}HTTP %{http_code}\\n"\n')
    return folder


@pytest.fixture(scope="module")
def documented_service(workdir, tmp_path_factory):
    """`maskdetect serve` on the docs' port 9696, allowed to fetch the loopback stand-in for example.com."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx binds: a listener, not TIME_WAIT, takes it
        try:
            probe.bind(("127.0.0.1", DOCUMENTED_PORT))
        except OSError:
            pytest.fail(f"port {DOCUMENTED_PORT} is taken (a `make serve` running?): the docs' requests need it; stop it and rerun")
    log = tmp_path_factory.mktemp("docs-service") / "serve.log"
    with serve(log, PORT=DOCUMENTED_PORT, MASKDETECT_ALLOW_PRIVATE_URLS="1") as (base_url, _):
        yield base_url


def runnable() -> list[Command]:
    return [command for command in commands() if kind(command) in ("request", "cli")]


@pytest.mark.slow
@pytest.mark.parametrize("command", runnable(), ids=str)
def test_documented_command_succeeds_as_written(command, workdir, documented_service):
    with serve_folder(workdir) as web:
        text = command.text.replace(NO_INTERNET_URL, f"{web}/")
        # the checkout's package importable, as in the checkout; `maskdetect` on PATH, as in an activated .venv
        env = service_env(PATH=f"{PROJECT_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
                          CURL_HOME=workdir.parent / "curl", MASKDETECT_ALLOW_PRIVATE_URLS=1)
        try:
            done = subprocess.run(["bash", "-c", text], cwd=workdir, env=env, capture_output=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command} still ran after 600 s (hang guard)")
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"{command} exited {done.returncode}: {stderr[-2000:]}"
    if kind(command) == "request":
        statuses = re.findall(r"^HTTP (\d{3})$", stderr, re.M)
        assert statuses == ["200"], f"{command} answered {statuses}: {done.stdout[:500]!r}"
        if done.stdout.startswith(b"{"):
            answer = json.loads(done.stdout)
            assert "error" not in answer, f"{command}: {answer}"
            if command.shown:
                assert set(answer) == set(json.loads(command.shown)), f"{command}: the doc shows other fields than {answer}"
    words = command.words
    written = [words[index + 1] for index, word in enumerate(words[:-1]) if word in (*OUTPUT_FILE_OPTIONS, ">")]
    for name in written:
        assert (workdir / name).stat().st_size > 0, f"{command} wrote no {name}"
