"""Fine-tuning MTCNN on masked faces: the data, the two-part loss, the weights file, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED, _require
from PIL import Image

from maskdetect import cli, config, detector_training, scenes
from maskdetect.detector_training import DetectorTrainConfig
from maskdetect.faces import MTCNNDetector


@pytest.fixture(scope="module")
def contexts(observations, tmp_path_factory):
    """Every sixth face square of the training split, and the private data folder it came from."""
    target = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDETECT_DATA_DIR", str(target))
        assert cli.main(["data", "--quiet", "--source", str(observations)]) == 0
        images, boxes, labels = detector_training.load_contexts("train", progress=False)
    return images[::6], boxes[::6], labels[::6], target


def test_each_face_sits_in_the_middle_half_of_its_square(contexts):
    images, boxes, labels, _ = contexts
    size = detector_training.CONTEXT
    assert images.shape[1:] == (size, size, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert set(np.unique(labels)) == {0.0, 1.0}
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(centres, 0.5, atol=0.02)
    np.testing.assert_allclose(sides, 0.5, atol=0.02)


def _windows(images, boxes, size):
    """Each face (a square over its box) and the square's top-left corner, at a network's input size."""
    import tensorflow as tf

    n = len(images)
    faces = [[(b[1] + b[3]) / 2 - 0.25, (b[0] + b[2]) / 2 - 0.25, (b[1] + b[3]) / 2 + 0.25, (b[0] + b[2]) / 2 + 0.25] for b in boxes]
    corners = [[0.0, 0.0, 0.25, 0.25]] * n
    crop = tf.image.crop_and_resize(images * 255.0, np.array(faces + corners, np.float32), list(range(n)) * 2, [size, size])
    return ((crop - 127.5) / 128.0)[:n], ((crop - 127.5) / 128.0)[n:]


def test_fine_tuning_raises_masked_faces_and_keeps_the_rest(contexts):
    """The loss's two halves: masked faces move up; unmasked faces, corners and boxes stay put."""
    import tensorflow as tf

    from maskdetect import augment

    images, boxes, labels, _ = contexts
    original = detector_training.original_networks()["rnet"]
    cfg = DetectorTrainConfig(steps=60, learning_rate=1e-3)
    tuned = detector_training.train_network("rnet", original, images, boxes, labels, cfg, progress=False)

    tf.random.set_seed(5)
    unmasked = labels == 0
    painted, _ = augment.paint_masks(tf.constant(images[unmasked]), tf.zeros(unmasked.sum()), tf.constant(boxes[unmasked]), 1.0, True)
    masked_faces, _ = _windows(painted.numpy(), boxes[unmasked], 24)
    plain_faces, corners = _windows(images[unmasked], boxes[unmasked], 24)

    def face_probability(network, windows):
        return network(windows)[-1].numpy()[:, 1]

    def log_odds(p):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    # On large, clear training faces RNet already says ~0.95 to a mask: compare in log-odds.
    before, after = face_probability(original, masked_faces), face_probability(tuned, masked_faces)
    assert (log_odds(after) - log_odds(before)).mean() > 1.0
    for windows in (plain_faces, corners):
        assert np.abs(face_probability(tuned, windows) - face_probability(original, windows)).mean() < 0.1
    box_shift = np.abs(tuned(plain_faces)[0].numpy() - original(plain_faces)[0].numpy()).mean()
    assert box_shift < 0.05


def test_weights_round_trip_into_the_detector(contexts, tmp_path, observations):
    images, boxes, labels, _ = contexts
    originals = detector_training.original_networks()
    cfg = DetectorTrainConfig(steps=2)
    tuned = {s: detector_training.train_network(s, originals[s], images, boxes, labels, cfg, progress=False) for s in detector_training.STAGES}
    path = detector_training.save_weights(tuned, tmp_path / "tuned.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["tuned.npz"]  # nothing half-written left beside it
    loaded = detector_training.load_weights(path)
    for stage in detector_training.STAGES:
        for saved, trained in zip(loaded[stage], tuned[stage].get_weights(), strict=True):
            np.testing.assert_array_equal(saved, trained)

    detector = MTCNNDetector(weights=path).load()
    for stage, network in zip(detector_training.STAGES, detector._mtcnn.stages):  # noqa: SLF001
        assert all(np.array_equal(a, b) for a, b in zip(network.model.python_function.get_weights(), loaded[stage]))
    photo = Image.open(observations / "without_mask" / "0.jpg")
    assert detector.detect(photo), "two steps must not make MTCNN blind"


def test_cli_writes_the_weights_and_explains_missing_data(contexts, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MASKDETECT_DATA_DIR", str(contexts[3]))
    assert cli.main(["train-detector", "--steps", "1", "--quiet", "--out", str(tmp_path / "ok.npz")]) == 0
    assert set(detector_training.load_weights(tmp_path / "ok.npz")) == set(detector_training.STAGES)
    monkeypatch.setenv("MASKDETECT_DATA_DIR", str(tmp_path / "nowhere"))
    assert cli.main(["train-detector", "--steps", "1", "--quiet", "--out", str(tmp_path / "w.npz")]) == 1
    assert "make data" in capsys.readouterr().err
    assert not (tmp_path / "w.npz").exists()


def test_missing_weights_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make detector"):
        MTCNNDetector(weights=tmp_path / "absent.npz").load()


def test_the_committed_detector_finds_more_large_masked_faces_than_the_package():
    """The point of the fine-tuning, on real scenes: masked faces over 48 px, first 120 scenes."""
    folder = _require(SHARED / "scenes-dev")
    labels = scenes.read_labels(folder / "labels.csv")
    names = sorted(labels)[:120]

    def found(weights) -> tuple[int, int]:
        detector = MTCNNDetector(**(config.DETECTOR | {"weights": weights}))
        hits = total = 0
        for name in names:
            masked = [t.box for t in labels[name] if t.label == "with_mask" and scenes.size_bucket(t.box) == ">48"]
            if masked:
                boxes = [face.box for face in detector.detect(Image.open(folder / "images" / name))]
                hits += len(scenes.match(boxes, masked))
                total += len(masked)
        return hits, total

    tuned, total = found(config.DETECTOR["weights"])
    package, _ = found(None)
    assert total >= 50
    assert tuned >= package + 0.04 * total, (tuned, package, total)
