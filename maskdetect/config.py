"""The one place for settings: paths, the dataset's origin, split parameters.

Paths default to the project checkout (the package is installed editable) and can be
moved with environment variables, so tests and CI never touch the working tree.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CLASSES = ("with_mask", "without_mask")
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = {"train": 0.6, "validation": 0.2, "test": 0.2}

# The public dataset the project is built on, pinned to one commit.
SOURCE_REPOSITORY = "prajnasb/observations"
SOURCE_COMMIT = "cdcf4501bf7fdec7ac8a4ee245e343b187fa53c7"
SOURCE_FOLDER = "experiements/data"  # upstream spelling
SOURCE_ARCHIVE_URL = (
    f"https://codeload.github.com/{SOURCE_REPOSITORY}/tar.gz/{SOURCE_COMMIT}"
)

# Seeds: one per random decision, so changing one never reshuffles another.
GROUP_SPLIT_SEED = 20201125
FILE_SPLIT_SEED = 42


def data_dir() -> Path:
    """Where the split files, the manifest and the materialised images live."""
    return Path(os.environ.get("MASKDETECT_DATA_DIR", PROJECT_ROOT / "data"))


def manifest_path() -> Path:
    return PROJECT_ROOT / "data" / "manifest.csv"


def splits_path() -> Path:
    return PROJECT_ROOT / "data" / "splits.csv"


def faces_path() -> Path:
    return PROJECT_ROOT / "data" / "faces.csv"


def data_source_from_env() -> Path | None:
    value = os.environ.get("MASKDETECT_DATA_SOURCE")
    return Path(value) if value else None


def deployment_dir() -> Path:
    """Where the deployment model and its metrics are written."""
    return Path(os.environ.get("MASKDETECT_DEPLOYMENT_DIR", PROJECT_ROOT / "deployment"))


def realworld_dir() -> Path | None:
    """The real-photo dev set (with_mask/, without_mask/), when there is one."""
    value = os.environ.get("MASKDETECT_REALWORLD_DIR")
    if value:
        return Path(value)
    default = PROJECT_ROOT.parent / "shared" / "data" / "realworld-dev"
    return default if default.is_dir() else None
