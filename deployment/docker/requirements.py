"""Write the images' requirements files: their packages, pinned and hashed from Pipfile.lock.

    python deployment/docker/requirements.py          write them (make docker-requirements)
    python deployment/docker/requirements.py --check  exit 1 if one is out of date

Three files (see TARGETS): the service image's (deployment/docker/requirements.txt: the .tflite
on LiteRT, no TensorFlow), the same plus TensorFlow and Keras for the image built with
`--build-arg KERAS=1` (requirements-keras.txt: requirements.in and requirements-keras.in), and the
AWS Lambda function's lean runtime (deployment/aws/requirements.txt). Each installs only what it
needs (the top-level names in its .in files) and their dependencies, each at the version
and with the hashes Pipfile.lock holds, so the container runs exactly the versions the tests
ran. The dependencies are read from the installed packages' metadata (run this with the
project's environment, .venv/), with environment markers evaluated for that image's Python on
Linux x86_64.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import NamedTuple

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOCK = ROOT / "Pipfile.lock"
TOP_LEVEL = HERE / "requirements.in"
OUTPUT = HERE / "requirements.txt"
KERAS_TOP_LEVEL = HERE / "requirements-keras.in"
KERAS_OUTPUT = HERE / "requirements-keras.txt"

# The image's interpreter and platform, whatever machine this runs on.
IMAGE_ENVIRONMENT = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.2",
    "python_version": "3.11",
    "sys_platform": "linux",
}
# The Lambda base image public.ecr.aws/lambda/python:3.12 (Amazon Linux 2023): its 3.11 image is
# Amazon Linux 2, whose glibc 2.26 is older than the locked numpy, pillow and ai-edge-litert
# wheels need (manylinux_2_27); documentation/deployment.md, "AWS Lambda" says more.
LAMBDA_ENVIRONMENT = {**IMAGE_ENVIRONMENT, "implementation_version": "3.12.0", "python_full_version": "3.12.0", "python_version": "3.12"}


class Target(NamedTuple):
    top_level: Path | tuple[Path, ...]  # one .in file, or several whose names are installed together
    output: Path
    environment: dict


TARGETS = {
    "docker": Target(TOP_LEVEL, OUTPUT, IMAGE_ENVIRONMENT),
    "docker-keras": Target((TOP_LEVEL, KERAS_TOP_LEVEL), KERAS_OUTPUT, IMAGE_ENVIRONMENT),
    "aws": Target(ROOT / "deployment" / "aws" / "requirements.in", ROOT / "deployment" / "aws" / "requirements.txt", LAMBDA_ENVIRONMENT),
}


class RequirementsError(RuntimeError):
    """The lock, the environment and requirements.in do not fit together."""


def _paths(top_level: Path | tuple[Path, ...]) -> tuple[Path, ...]:
    return (top_level,) if isinstance(top_level, Path) else tuple(top_level)


def top_level_names(top_level: Path | tuple[Path, ...] = TOP_LEVEL) -> list[str]:
    names = []
    for path in _paths(top_level):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return names


def _applies(marker: Marker | None, extras: set[str], environment: dict) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({**environment, "extra": extra}) for extra in extras | {""})


def closure(names: list[str], environment: dict = IMAGE_ENVIRONMENT) -> dict[str, set[str]]:
    """Canonical name -> the extras asked of it, for `names` and everything they need."""
    wanted: dict[str, set[str]] = {}
    queue = [Requirement(name) for name in names]
    while queue:
        requirement = queue.pop()
        key = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if key in wanted and extras <= wanted[key]:
            continue
        wanted.setdefault(key, set()).update(extras)
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            raise RequirementsError(
                f"{requirement.name} is not installed in {sys.prefix}: run this with the project's "
                "environment (make docker-requirements creates it from Pipfile.lock)"
            ) from None
        for text in requires:
            dependency = Requirement(text)
            if _applies(dependency.marker, wanted[key], environment):
                queue.append(dependency)
    return wanted


def render(lock_path: Path = LOCK, top_level: Path | tuple[Path, ...] = TOP_LEVEL, environment: dict = IMAGE_ENVIRONMENT) -> str:
    lock = json.loads(lock_path.read_text())
    locked = {canonicalize_name(name): entry for name, entry in lock["default"].items()}
    lines = [
        "# Generated by `make docker-requirements` (deployment/docker/requirements.py): do not edit.",
        f"# The packages in {' and '.join(path.name for path in _paths(top_level))} and their dependencies, pinned and hashed as in",
        f"# Pipfile.lock (Pipfile hash {lock['_meta']['hash']['sha256'][:12]}).",
    ]
    for key in sorted(closure(top_level_names(top_level), environment)):
        entry = locked.get(key)
        if entry is None or "version" not in entry:
            raise RequirementsError(
                f"{key} is needed by the service but is not a pinned package of Pipfile.lock's "
                "[packages]: add it to the Pipfile and run `make lock`"
            )
        hashes = " ".join(f"--hash={digest}" for digest in entry["hashes"])
        lines.append(f"{key}{entry['version']} {hashes}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a requirements file is out of date")
    parser.add_argument("--target", choices=sorted(TARGETS), action="append", help="only this image (default: all)")
    args = parser.parse_args(argv)
    status = 0
    for name in args.target or TARGETS:
        target = TARGETS[name]
        output = target.output.relative_to(ROOT)
        try:
            text = render(top_level=target.top_level, environment=target.environment)
        except RequirementsError as error:
            print(f"ERROR: {output}: {error}", file=sys.stderr)
            status = 1
            continue
        if args.check:
            if not target.output.exists() or target.output.read_text() != text:
                print(f"ERROR: {output} is out of date with Pipfile.lock or "
                      f"{' or '.join(path.name for path in _paths(target.top_level))}: run `make docker-requirements`", file=sys.stderr)
                status = 1
            continue
        temporary = target.output.with_name(f".{target.output.name}.tmp")
        temporary.write_text(text)
        temporary.replace(target.output)  # atomic: never a half-written requirements file
        print(f"wrote {output}: {len(text.splitlines()) - 3} packages", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
