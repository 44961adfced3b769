"""``data/faces.csv``: the face box the subject detector finds in each photo, for the training crops."""

from __future__ import annotations

import csv
from pathlib import Path

from tqdm.auto import tqdm

from ..core.constants import PROJECT_ROOT, SUBJECT_DETECTOR
from ..core.faces import YuNetDetector, largest_face
from ..core.files import write_csv
from ..settings import Settings
from .source import DataError

FACES_FILE = PROJECT_ROOT / "data" / "faces.csv"
FACE_COLUMNS = ("source", "xmin", "ymin", "xmax", "ymax", "score")


def compute_faces(source: Path, rows: list[dict], progress: bool = True) -> list[dict]:
    """The largest face the subject detector finds in every kept file (empty box when none)."""
    detector = YuNetDetector(Settings.from_env().detector_weights, **SUBJECT_DETECTOR).load()
    found = []
    for row in tqdm(rows, desc="detect faces", disable=not progress):
        face = largest_face(detector, Path(source) / row["source"])
        box = face.box if face else ("", "", "", "")
        found.append(
            {"source": row["source"], **dict(zip(FACE_COLUMNS[1:5], box)), "score": f"{face.score:.4f}" if face else ""}
        )
    return found


def write_faces(rows: list[dict], path: Path | None = None) -> Path:
    return write_csv(rows, FACE_COLUMNS, path or FACES_FILE)


def read_faces(path: Path | None = None) -> dict[str, tuple[int, int, int, int]]:
    """source -> face box, for files where a face was found."""
    path = path or FACES_FILE
    if not path.exists():
        raise DataError(f"{path} is missing; run `maskdetect data faces` to compute it")
    with open(path, newline="") as handle:
        return {
            row["source"]: tuple(int(row[c]) for c in FACE_COLUMNS[1:5])
            for row in csv.DictReader(handle)
            if row["xmin"] != ""
        }
