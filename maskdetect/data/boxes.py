"""Face boxes for training on face crops: ``data/faces.csv`` (the observations photos) and the like.

The largest face the detector finds in each file, or an empty box when it finds none.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tqdm.auto import tqdm

from ..core.constants import PROJECT_ROOT, SUBJECT_DETECTOR
from ..core.faces import Face, YuNetDetector, largest_face
from ..core.files import write_csv
from ..settings import Settings
from .source import DataError

FACES_FILE = PROJECT_ROOT / "data" / "faces.csv"
FACE_COLUMNS = ("source", "xmin", "ymin", "xmax", "ymax", "score")
BOX_COLUMNS = FACE_COLUMNS[1:5]


def largest_faces(folder: Path, paths: list[str], detector: dict | None = None, progress: bool = True) -> list[Face | None]:
    """The largest face YuNet (``detector``: its settings, default SUBJECT_DETECTOR) finds in each file."""
    yunet = YuNetDetector(Settings.from_env().detector_weights, **(detector or SUBJECT_DETECTOR)).load()
    return [largest_face(yunet, Path(folder) / path) for path in tqdm(paths, desc="detect faces", disable=not progress)]


def face_rows(paths: list[str], faces: list[Face | None], key: str = "source") -> list[dict]:
    """CSV rows: ``key`` (the file), the box and the score, empty when no face was found."""
    return [
        {key: path, **dict(zip(BOX_COLUMNS, face.box if face else ("",) * 4)), "score": f"{face.score:.4f}" if face else ""}
        for path, face in zip(paths, faces)
    ]


def read_boxes(path: Path, key: str, fix: str) -> dict[str, tuple[int, int, int, int]]:
    """``key`` -> face box, for the files where a face was found."""
    if not path.exists():
        raise DataError(f"{path} is missing; {fix}")
    with open(path, newline="") as handle:
        return {
            row[key]: tuple(int(row[c]) for c in BOX_COLUMNS)
            for row in csv.DictReader(handle)
            if row["xmin"] != ""
        }


def compute_faces(source: Path, rows: list[dict], progress: bool = True) -> list[dict]:
    """The largest face the subject detector finds in every kept file (empty box when none)."""
    paths = [row["source"] for row in rows]
    return face_rows(paths, largest_faces(source, paths, progress=progress))


def write_faces(rows: list[dict], path: Path | None = None) -> Path:
    return write_csv(rows, FACE_COLUMNS, path or FACES_FILE)


def read_faces(path: Path | None = None) -> dict[str, tuple[int, int, int, int]]:
    """source -> face box, for files where a face was found."""
    return read_boxes(path or FACES_FILE, "source", "run `maskdetect data faces` to compute it")
