"""`maskdetect export` (TFLite, ONNX) against the Keras model on real test images, and the lean runtime.

Conversions take seconds each: the deployment model is converted once per format for the whole
module (the `exported` fixture); the other tests reuse the result or the committed .tflite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.samples import SHARED, require
from maskdetect.core import constants
from maskdetect.training import export
from maskdetect.core.images import preprocess
from maskdetect.core.files import sha256_file
from maskdetect.core.inference import ModelError, Predictor
from maskdetect.data.layout import prepare_data
from maskdetect.settings import Settings

pytestmark = pytest.mark.slow  # converts the model and runs the lean path in fresh processes

DEPLOYMENT = constants.PROJECT_ROOT / "deployment"
H5 = DEPLOYMENT / constants.MODEL_FILE
TFLITE = DEPLOYMENT / "maskdetect.tflite"
CHECKED = 64  # test images each export of the module is checked on


@pytest.fixture(scope="module")
def test_split(observations, tmp_path_factory):
    """The real split laid out outside the checkout; MASKDETECT_DATA_DIR points at it for the module."""


    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDETECT_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        patch.setenv("MASKDETECT_DATA_SOURCE", str(observations))
        prepare_data(progress=False)
        yield Settings.from_env().data_dir / "test"


@pytest.fixture(scope="module")
def keras_model():
    return Predictor.load(H5)


@pytest.fixture(scope="module")
def exported(test_split, keras_model, tmp_path_factory):
    """The committed .h5 and metrics.json copied to a folder, exported there to TFLite and ONNX."""
    folder = tmp_path_factory.mktemp("deployment")
    model = shutil.copy(H5, folder / constants.MODEL_FILE)
    shutil.copy(DEPLOYMENT / constants.METRICS_FILE, folder / constants.METRICS_FILE)
    said = []
    results = export.export_model(model, formats=("tflite", "onnx"), images=CHECKED, say=said.append)
    return folder, results, said


@pytest.fixture(scope="module")
def real_batch(test_split, keras_model) -> tuple[list, np.ndarray, np.ndarray]:
    """128 test images (both classes, more than the export checked), preprocessed, and the .h5's answers, (128, 3)."""
    files = export.check_images(128)
    batch = np.stack([preprocess(f) for f in files])
    return files, batch, keras_model.backend.predict(batch)


def test_exports_give_the_keras_probabilities_on_real_test_images(exported, keras_model, real_batch):
    import onnxruntime

    folder, results, said = exported
    _, batch, expected = real_batch
    assert expected.shape == (128, 3)
    assert expected[:, 0].min() < 0.1 and expected[:, 0].max() > 0.9  # real faces of both classes, not a flat answer

    tflite = Predictor.load(folder / "maskdetect.tflite")
    assert type(tflite.backend).__name__ == "TFLiteBackend"
    assert (tflite.backend.input_size, tflite.backend.channels) == (100, 3)
    assert np.abs(tflite.backend.predict(batch) - expected).max() <= export.TOLERANCES["tflite"]  # 128 images, not only the 64 checked
    session = onnxruntime.InferenceSession(str(folder / "maskdetect.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["probabilities"]
    onnx = session.run(None, {"image": batch})[0]
    assert np.abs(onnx.reshape(len(batch), -1) - expected[:, : onnx.shape[-1]]).max() <= 1e-5

    assert [(r.format, r.path) for r in results] == [("tflite", folder / "maskdetect.tflite"), ("onnx", folder / "maskdetect.onnx")]
    assert all(r.images == CHECKED and 0 <= r.max_abs_diff <= export.TOLERANCES[r.format] for r in results)
    assert os.path.getsize(folder / "maskdetect.tflite") < 0.5 * os.path.getsize(folder / "maskdetect.onnx")  # 8-bit weights
    assert said[0] == f"loading {folder / constants.MODEL_FILE}" and any("converting to onnx" in line for line in said)
    assert sorted(p.name for p in folder.iterdir()) == ["maskdetect.h5", "maskdetect.onnx", "maskdetect.tflite", "metrics.json"]


def test_each_export_is_recorded_in_metrics_keeping_every_other_key(exported):
    folder, results, _ = exported
    before = json.loads((DEPLOYMENT / constants.METRICS_FILE).read_text())
    after = json.loads((folder / constants.METRICS_FILE).read_text())
    assert {k: v for k, v in after.items() if k != "exports"} == {k: v for k, v in before.items() if k != "exports"}
    assert set(after["exports"]) == {"maskdetect.tflite", "maskdetect.onnx"}
    for result in results:
        entry = after["exports"][result.path.name]
        assert entry["bytes"] == result.path.stat().st_size == result.bytes
        assert entry["sha256"] == sha256_file(result.path) == result.sha256
        assert entry["images"] == CHECKED and entry["max_abs_diff"] == result.max_abs_diff <= entry["tolerance"] == export.TOLERANCES[result.format]
        assert entry["source"] == "maskdetect.h5" and entry["format"] == result.format


def test_the_export_is_served_under_the_models_name_only_while_it_is_that_file(exported, tmp_path):
    folder, _, _ = exported
    metrics = json.loads((folder / constants.METRICS_FILE).read_text())
    loaded = Predictor.load(folder / "maskdetect.tflite")
    assert loaded.name == metrics["model"]

    # The same metrics beside a different .tflite of the same size (one weight byte changed): not this model.
    shutil.copy(folder / constants.METRICS_FILE, tmp_path / constants.METRICS_FILE)
    content = bytearray((folder / "maskdetect.tflite").read_bytes())
    content[len(content) // 2] ^= 0x01
    (tmp_path / "maskdetect.tflite").write_bytes(bytes(content))
    assert Predictor.load(tmp_path / "maskdetect.tflite").name == "maskdetect.tflite"
    # A .tflite with no entry under "exports" (renamed): its file name.
    shutil.copy(folder / "maskdetect.tflite", tmp_path / "other.tflite")
    assert Predictor.load(tmp_path / "other.tflite").name == "other.tflite"


def test_the_committed_tflite_is_the_committed_h5_converted(keras_model, real_batch):
    _, batch, expected = real_batch
    metrics = json.loads((DEPLOYMENT / constants.METRICS_FILE).read_text())
    entry = metrics["exports"]["maskdetect.tflite"]
    assert entry["bytes"] == TFLITE.stat().st_size and entry["sha256"] == sha256_file(TFLITE)
    assert entry["source"] == constants.MODEL_FILE and metrics["model_bytes"] == H5.stat().st_size
    assert entry["images"] == 256 and entry["max_abs_diff"] <= export.TOLERANCES["tflite"]
    committed = Predictor.load(TFLITE)
    assert committed.name == metrics["model"] == keras_model.name
    assert np.abs(committed.backend.predict(batch) - expected).max() <= export.TOLERANCES["tflite"]


def test_a_failing_check_writes_nothing_and_keeps_the_previous_export(test_split, model_file, tmp_path, monkeypatch):
    """A converter that gives another model (the committed classifier for the brightness model) is refused."""
    model = shutil.copy(model_file, tmp_path / "maskdetect.h5")
    metrics = tmp_path / constants.METRICS_FILE
    metrics.write_text('{"model": "brightness", "model_bytes": %d}' % os.path.getsize(model))
    previous = tmp_path / "maskdetect.tflite"
    previous.write_bytes(b"the previous export")
    wrong = TFLITE.read_bytes()
    monkeypatch.setitem(export.FORMATS, "tflite", (lambda keras_model: wrong, *export.FORMATS["tflite"][1:]))
    with pytest.raises(export.ExportError, match=r"refused: the tflite export differs from maskdetect.h5 by up to 0\.\d+"):
        export.export_model(model, images=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maskdetect.h5", "maskdetect.tflite", "metrics.json"]
    assert previous.read_bytes() == b"the previous export"
    assert json.loads(metrics.read_text()) == {"model": "brightness", "model_bytes": os.path.getsize(model)}


# ---------------------------------------------------------------------------- the lean runtime

LEAN = textwrap.dedent(
    """
    import json, sys

    HEAVY = {"tensorflow", "keras", "tf_keras"}

    def heavy():
        return sorted(HEAVY & {name.split(".")[0] for name in sys.modules})

    import maskdetect.core.constants, maskdetect.core.fetch, maskdetect.core.images, maskdetect.core.inference
    from maskdetect.core.inference import Predictor
    from maskdetect.service import create_app
    from maskdetect.settings import Settings
    steps = {"imports": heavy()}
    model, image, scene = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
    answer = Predictor.load(model, Settings.from_env().face_centred).predict(image)
    steps["Predictor.predict"] = heavy()
    client = create_app({"TESTING": True, "MODEL_PATH": model}).test_client()
    predicted = client.post("/predict", data=image, content_type="image/jpeg").get_json()
    health = client.get("/health").get_json()
    page = client.get("/").status_code
    steps["/predict, /health, /"] = heavy()
    detected = client.post("/detect", data=scene, content_type="image/jpeg")
    steps["/detect"] = heavy()
    print(json.dumps({"steps": steps, "answer": answer.as_dict(), "predicted": predicted, "health": health,
                      "page": page, "detect": [detected.status_code, detected.get_json()]}))
    """
)


@pytest.mark.parametrize("face_centred", [True, False], ids=["face-centred", "whole-photo"])
def test_the_lean_path_never_imports_tensorflow_detect_included(real_batch, face_centred):
    files, _, expected = real_batch
    image = files[0]
    scene = require(SHARED / "scenes-dev" / "images" / "scene000.jpg")
    env = {**os.environ, "PYTHONPATH": str(constants.PROJECT_ROOT), "MASKDETECT_FACE_CENTRED": "1" if face_centred else "0"}
    env.pop("MODEL_PATH", None)
    run = subprocess.run(
        [sys.executable, "-c", LEAN, str(TFLITE), str(image), str(scene)], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    steps = result["steps"]
    assert steps == {"imports": [], "Predictor.predict": [], "/predict, /health, /": [], "/detect": []}, steps

    name = json.loads((DEPLOYMENT / constants.METRICS_FILE).read_text())["model"]
    assert result["health"] == {"status": "ok", "model": name} and result["page"] == 200
    assert result["predicted"] == result["answer"] and result["answer"]["model"] == name
    if face_centred:  # a test photo: its face is found and classified
        assert len(result["answer"]["face"]) == 4
    else:
        assert result["answer"]["face"] is None
        assert [result["answer"][label] for label in constants.LABELS] == pytest.approx(expected[0], abs=export.TOLERANCES["tflite"])
    status, detected = result["detect"]
    assert status == 200 and detected["total"] >= 3 and detected["model"] == name


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "content, why",
    [(b"", "empty"), (b"not a flatbuffer at all", "garbage"), (H5.open("rb").read(4096), "an .h5 renamed")],
    ids=["empty", "garbage", "h5-renamed"],
)
def test_an_unreadable_tflite_is_a_model_error(tmp_path, content, why):
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=rf"could not load the model {path} \(ValueError: .+\)"):
        Predictor.load(path)


def run_export(*args: str) -> int:
    from maskdetect.cli import main

    return main(["export", *args])


def test_cli_errors_exit_non_zero_with_a_message(tmp_path, data_dir, capsys):
    assert run_export("--model", str(tmp_path / "none.h5")) == 1
    assert f"no model at {tmp_path / 'none.h5'}: train one with `make train`" in capsys.readouterr().err
    assert run_export("--model", str(TFLITE)) == 1
    assert "not a Keras model file (.h5, .keras)" in capsys.readouterr().err
    assert run_export("--model", str(H5), "--images", "0") == 1
    assert "--images must be at least 1" in capsys.readouterr().err
    assert run_export("--model", str(H5)) == 1  # data_dir is empty: no test split laid out
    assert "no test images under" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(H5, broken / "maskdetect.h5")
    (broken / constants.METRICS_FILE).write_text("{not json")
    assert run_export("--model", str(broken / "maskdetect.h5")) == 1
    assert "metrics.json is not readable JSON" in capsys.readouterr().err
    assert sorted(p.name for p in broken.iterdir()) == ["maskdetect.h5", "metrics.json"]


def test_the_command_exits_non_zero_for_a_missing_model(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "maskdetect.cli", "export", "--model", str(tmp_path / "missing.h5")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(constants.PROJECT_ROOT)},
        timeout=120,
    )
    assert run.returncode == 1 and run.stdout == ""
    assert f"maskdetect: error: no model at {tmp_path / 'missing.h5'}: train one with `make train`" in run.stderr
