"""Model builders, the bundled pretrained base, and saving for deployment."""

import json

import keras
import numpy as np
import pytest

from maskdetect.training import evaluate, models, train


@pytest.mark.parametrize("builder,convs", [(models.cnn1, 1), (models.cnn2, 2), (models.cnn4, 4)])
@pytest.mark.parametrize("channels", [1, 3])
def test_cnn_builders_follow_their_arguments(builder, convs, channels):
    model = builder(input_size=64, channels=channels, filters=8, inner=16, dropout=0.25, learning_rate=0.01, optimizer="sgd")
    assert model.input_shape == (None, 64, 64, channels)
    assert model.output_shape == (None, 1) and model.layers[-1].name == "with_mask"  # two classes: p(with_mask)
    assert [l.name for l in model.layers if isinstance(l, keras.layers.Conv2D)] == [f"conv{i + 1}" for i in range(convs)]
    assert model.get_layer("conv1").filters == 8 and model.get_layer("inner").units == 16
    assert model.get_layer("dropout").rate == 0.25
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    p = model.predict_on_batch(np.random.rand(2, 64, 64, channels).astype("float32"))
    assert ((0 <= p) & (p <= 1)).all()


def test_three_class_models_end_in_a_softmax_over_the_labels_and_learn_from_label_indices():
    model = models.cnn2(input_size=32, filters=4, inner=8, classes=3)
    assert model.output_shape == (None, 3) and model.layers[-1].name == "probabilities"
    p = model.predict_on_batch(np.random.rand(4, 32, 32, 3).astype("float32"))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert model.loss == "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="classes"):
        models.cnn1(classes=4)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="optimizer"):
        models.cnn1(optimizer="adagrad-ish")


@pytest.mark.slow
def test_pretrained_uses_the_bundled_vgg16_frozen():
    model = models.pretrained(input_size=64, inner=8)
    base = model.get_layer("vgg16_block3_pool")
    assert not base.trainable and base.output_shape[1:] == (8, 8, 256)
    bundled = models.bundled_vgg16_weights()
    for name in ("block1_conv1", "block3_conv3"):
        for got, expected in zip(base.get_layer(name).get_weights(), bundled[name]):
            np.testing.assert_array_equal(got, expected)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"inner", "with_mask"}


def test_caffe_preprocessing_is_bgr_minus_mean():
    inputs = keras.Input((2, 2, 3))
    converter = keras.Model(inputs, models._caffe_input(inputs))
    rgb = np.random.rand(1, 2, 2, 3).astype("float32")
    expected = rgb[..., ::-1] * 255.0 - np.array(models.CAFFE_MEAN_BGR, np.float32)
    np.testing.assert_allclose(converter.predict_on_batch(rgb), expected, rtol=1e-5, atol=1e-3)


def test_two_class_metrics_match_a_hand_count():
    labels = np.array([0, 0, 0, 2, 2])  # with_mask x3, without_mask x2
    with_mask = np.array([0.9, 0.6, 0.2, 0.4, 0.7])  # a two-class model's p(with_mask)
    m = evaluate.classification_metrics(labels, with_mask)
    assert m["confusion_matrix"] == [[2, 0, 1], [0, 0, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["roc_auc"] == pytest.approx(3 / 6)  # pairs ranked right: 0.9 > both, 0.6 > 0.4
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m["three_way"]["recall"] == {"with_mask": pytest.approx(2 / 3), "without_mask": 0.5}  # no incorrect faces: no recall


def test_three_class_metrics_judge_masked_or_not_and_each_label():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array([
        [0.8, 0.1, 0.1],  # with_mask, right
        [0.3, 0.6, 0.1],  # with_mask called incorrect: wrong both ways
        [0.1, 0.7, 0.2],  # incorrect, right
        [0.2, 0.3, 0.5],  # incorrect called without_mask: right as "not masked"
        [0.1, 0.2, 0.7],  # without_mask, right
        [0.6, 0.1, 0.3],  # without_mask called with_mask: wrong both ways
    ])
    m = evaluate.classification_metrics(labels, probabilities)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["three_way"]["accuracy"] == pytest.approx(3 / 6)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 3 / 4) / 2)  # masked 1 of 2, not masked 3 of 4
    assert m["three_way"]["recall"] == {"with_mask": 0.5, "incorrect": 0.5, "without_mask": 0.5}
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]


@pytest.mark.slow
def test_fit_is_seeded_and_the_saved_model_predicts_the_same(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((24, 32, 32, 3), dtype=np.float32)
    labels = (np.arange(24) % 3).astype("int32")
    images[labels == 0, 16:, :, 2] = 0.9  # something to learn
    cfg = train.TrainConfig(input_size=32, filters=4, inner=8, epochs=2, batch_size=8, patience=2, classes=3)
    first, history = train.fit(cfg, (images, labels), (images[:8], labels[:8]))
    second, _ = train.fit(cfg, (images, labels), (images[:8], labels[:8]))
    np.testing.assert_allclose(train.predict(first, images), train.predict(second, images), atol=1e-6)
    assert len(history["loss"]) == 2

    path = train.save_model(first, tmp_path / "m.h5")
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(train.predict(loaded, images), train.predict(first, images), atol=1e-6)
    import h5py

    with h5py.File(path) as h5:
        assert "optimizer_weights" not in h5
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]


def _tiny_sets(n=16, size=32, labels=(0, 2)):
    """Images whose lower half is blue for with_mask (label 0), green for incorrect (1), as loaded: label indices."""
    rng = np.random.default_rng(1)
    sets = {}
    for name in ("train", "train-crops", "validation", "test"):
        images = rng.random((n, size, size, 3), dtype=np.float32)
        labels_of = np.array([labels[i % len(labels)] for i in range(n)], np.int32)
        images[labels_of == 0, size // 2 :, :, 2] = 0.95
        images[labels_of == 1, size // 2 :, :, 1] = 0.95
        sets[name] = (images, labels_of, [f"{name}/{i}.jpg" for i in range(n)])
    return sets


@pytest.mark.slow
def test_run_trains_on_crops_too_and_scores_every_held_out_set():
    cfg = train.TrainConfig(input_size=32, filters=4, inner=8, epochs=1, batch_size=8, painted_masks=0.0)
    result = train.run(cfg, _tiny_sets(), progress=False)
    assert set(result.metrics) == set(result.predictions) == {"validation", "test"}
    assert result.metrics["test"]["n"] == 16 and result.predictions["test"].shape == (16, 3)
    assert (result.predictions["test"][:, 1] == 0).all()  # a two-class model never answers incorrect
    assert result.seconds > 0 and len(result.history["val_loss"]) == 1


def test_subsample_keeps_every_label_and_aligned_paths():
    small = train.subsample(_tiny_sets(labels=(0, 1, 2)), 6)
    images, labels, paths = small["test"]
    assert len(images) == len(labels) == len(paths) == 6
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert all(int(p.split("/")[1][:-4]) % 3 == int(l) for p, l in zip(paths, labels))


@pytest.mark.slow
def test_save_result_writes_model_and_metrics(tmp_path):
    cfg = train.TrainConfig(input_size=32, filters=4, inner=8, epochs=1, batch_size=8, painted_masks=0.0)
    result = train.run(cfg, _tiny_sets(), progress=False)
    report = train.save_result(result, cfg, tmp_path)
    saved = json.loads((tmp_path / train.METRICS_FILE).read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["metrics"]["test"]["confusion_matrix"] and saved["split_sha256"] == train.split_hash()
    assert saved["packages"]["tensorflow"].startswith("2.21")
    assert saved["model_bytes"] == (tmp_path / train.MODEL_FILE).stat().st_size
    assert "calibration" not in saved and "threshold" not in saved  # not calibrated; the label is the most probable
    assert saved["labels"] == ["with_mask", "incorrect", "without_mask"]
    assert "face_centred" not in saved  # no photo folders given


@pytest.mark.slow
def test_save_result_scores_photo_folders_as_predict_answers(tmp_path, observations):
    import shutil

    from maskdetect.core.inference import Predictor

    folder = tmp_path / "photos"
    for label, names in (("with_mask", ["0-with-mask.jpg"]), ("without_mask", ["298.jpg", "0.jpg"])):
        (folder / label).mkdir(parents=True)
        for name in names:
            shutil.copy(observations / label / name, folder / label / name)
    cfg = train.TrainConfig(input_size=32, filters=4, inner=8, epochs=1, batch_size=8, painted_masks=0.0)
    result = train.run(cfg, _tiny_sets(), progress=False)
    saved = train.save_result(result, cfg, tmp_path / "out", {"test": folder})
    scored = saved["face_centred"]["test"]
    assert scored["n"] == 3 and scored["faces_found"] >= 2 and len(scored["confusion_matrix"]) == 3
    predictor = Predictor.load(tmp_path / "out" / train.MODEL_FILE, face_centred=True)
    masked = sum(predictor.predict(path).label == "with_mask" for path in folder.glob("*/*.jpg"))
    assert masked == sum(row[0] for row in scored["confusion_matrix"])


def _tiny_sets_with_real_faces():
    sets = _tiny_sets()
    more = _tiny_sets()  # the same generator: other names, the same kind of images
    three = _tiny_sets(labels=(0, 1, 2))
    sets["validation-crops"] = more["train-crops"]
    sets["realfaces-train"], sets["realfaces-validation"] = more["train"], more["validation"]
    for split in ("train", "validation", "test"):
        sets[f"maskwear-{split}"] = three[split]
    return sets


@pytest.mark.slow
def test_run_calibrates_on_the_held_out_faces_and_save_result_records_it(tmp_path):
    from maskdetect.training.calibration import apply_scaling

    sets = _tiny_sets_with_real_faces()
    settings = dict(input_size=32, filters=4, inner=8, epochs=1, batch_size=8, painted_masks=0.0, real_faces=True,
                    mask_wear=True, classes=3)
    plain = train.run(train.TrainConfig(**settings, calibrate=False), sets, progress=False)
    cfg = train.TrainConfig(**settings, calibrate=True)
    calibrated = train.run(cfg, sets, progress=False)
    assert plain.calibration is None
    report = calibrated.calibration
    assert report["method"] == "temperature and class bias" and report["n"] == 48 and len(report["b"]) == 3
    assert report["fitted_on"] == "validation-crops + realfaces-validation + maskwear-validation"  # never a check set
    assert set(calibrated.metrics) == {"validation", "test", "realfaces-validation", "maskwear-validation", "maskwear-test"}
    # The same seeded training, then the scaling folded into the model: its answers are the scaled ones.
    assert np.abs(calibrated.predictions["test"] - plain.predictions["test"]).max() > 0.01
    for name in calibrated.predictions:
        np.testing.assert_allclose(
            calibrated.predictions[name], apply_scaling(plain.predictions[name], report["a"], report["b"]), atol=1e-5
        )

    saved = train.save_result(calibrated, cfg, tmp_path)
    assert saved["calibration"] == json.loads(json.dumps(report))
    reloaded = keras.models.load_model(tmp_path / train.MODEL_FILE, compile=False)
    np.testing.assert_allclose(train.predict(reloaded, sets["test"][0]), calibrated.predictions["test"], atol=1e-6)


@pytest.mark.slow
def test_cosine_schedule_decays_the_learning_rate_to_zero_over_the_epochs():
    cfg = train.TrainConfig(input_size=32, filters=4, inner=8, epochs=2, batch_size=8, schedule="cosine", augment=False)
    sets = _tiny_sets()
    model, history = train.fit(cfg, sets["train"][:2], sets["validation"][:2])
    rate = model.optimizer.learning_rate
    assert float(rate) == pytest.approx(0.0, abs=1e-6)  # 2 epochs x 2 batches taken: at the end of the cosine
    assert len(history["loss"]) == 2
    with pytest.raises(ValueError, match="schedule"):
        train.fit(train.TrainConfig(schedule="steps", input_size=32, epochs=1), sets["train"][:2], sets["validation"][:2])


def test_maskwear_needs_three_classes():
    with pytest.raises(ValueError, match="classes=3"):
        train.run(train.TrainConfig(mask_wear=True), _tiny_sets(), progress=False)
