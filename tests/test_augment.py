"""Augmentation repaints the pasted mask, darkens some images, and keeps images valid."""

import numpy as np
import tensorflow as tf

from maskdetect.training import augment

MASK_BLUE = np.array([226, 242, 251], np.float32) / 255  # the pasted graphic, measured
WITH, WITHOUT = 0, 2  # labels are indices into LABELS


def _faces():
    images = np.full((4, 32, 32, 3), 0.6, np.float32)
    images[..., 0] = 0.8  # skin-ish
    images[:, 16:28, 8:24] = MASK_BLUE
    return images


def test_recolour_touches_only_the_mask_of_masked_faces():
    tf.random.set_seed(0)
    images = _faces()
    labels = np.array([WITH, WITH, WITHOUT, WITHOUT], np.int32)
    out = augment.recolour_masks(tf.constant(images), tf.constant(labels), probability=1.0).numpy()
    mask = np.zeros((32, 32), bool)
    mask[16:28, 8:24] = True
    assert np.array_equal(out[:, ~mask], images[:, ~mask])  # skin untouched everywhere
    assert np.array_equal(out[2:], images[2:])  # without_mask images untouched
    for i in (0, 1):
        assert np.abs(out[i][mask] - MASK_BLUE).mean() > 0.05  # repainted


def test_recolour_probability_zero_changes_nothing():
    images = _faces()
    out = augment.recolour_masks(tf.constant(images), tf.zeros(4, tf.int32), probability=0.0).numpy()
    assert np.array_equal(out, images)


def test_augmented_batches_keep_shape_and_range():
    tf.random.set_seed(0)
    augmenter = augment.image_augmenter(seed=3)
    images = np.random.default_rng(0).random((8, 48, 48, 3), dtype=np.float32)
    out, labels = augment.augment_batch(augmenter, tf.constant(images), tf.zeros(8, tf.int32))
    out = out.numpy()
    assert out.shape == images.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert not np.allclose(out, images)


def test_pixelate_blocks_the_image_when_applied():
    images = tf.random.uniform((2, 40, 40, 3), seed=1)
    out = augment.pixelate(images, probability=1.0, smallest=12).numpy()
    assert out.shape == (2, 40, 40, 3)
    assert np.abs(np.diff(out, axis=1)).mean() < np.abs(np.diff(images.numpy(), axis=1)).mean()


def test_recolour_every_class_repaints_unmasked_images_too():
    tf.random.set_seed(0)
    images = _faces()  # the light-blue region stands in for a shirt on the unmasked ones
    labels = np.array([WITH, WITH, WITHOUT, WITHOUT], np.int32)
    out = augment.recolour_masks(tf.constant(images), tf.constant(labels), probability=1.0, every_class=True).numpy()
    assert all(np.abs(out[i, 16:28, 8:24] - MASK_BLUE).mean() > 0.05 for i in range(4))


def _painting_inputs():
    images = np.random.default_rng(0).random((4, 60, 60, 3), dtype=np.float32)  # no colour a mask could match
    boxes = np.array([[0.25, 0.2, 0.75, 0.7]] * 3 + [[np.nan] * 4], np.float32)
    return images, boxes


def test_painted_masks_cover_the_lower_face_only():
    tf.random.set_seed(3)
    images, boxes = _painting_inputs()
    labels = np.full(4, WITH, np.int32)
    out, new_labels = augment.paint_masks(tf.constant(images), tf.constant(labels), tf.constant(boxes), probability=1.0)
    out = out.numpy()
    changed = np.abs(out - images).max(axis=-1) > 1e-3
    for i in range(3):
        assert changed[i, 36:40, 27:33].all()  # mouth: painted
        assert not changed[i, :18].any() and not changed[i, 50:].any()  # above the nose, below the chin
        assert not changed[i, :, :10].any() and not changed[i, :, 50:].any()  # beside the face
    assert not changed[3].any()  # no face found: untouched
    assert np.array_equal(new_labels.numpy(), labels)


def test_painting_leaves_unmasked_faces_unless_asked_and_then_relabels_them():
    images, boxes = _painting_inputs()
    labels = np.full(4, WITHOUT, np.int32)
    out, same = augment.paint_masks(tf.constant(images), tf.constant(labels), tf.constant(boxes), probability=1.0)
    assert np.array_equal(out.numpy(), images) and np.array_equal(same.numpy(), labels)
    out, relabelled = augment.paint_masks(
        tf.constant(images), tf.constant(labels), tf.constant(boxes), probability=1.0, on_unmasked=True
    )
    assert list(relabelled.numpy()) == [WITH, WITH, WITH, WITHOUT]  # the face-less one stays without_mask
    assert not np.array_equal(out.numpy()[:3], images[:3])


def test_low_light_darkens_every_image_it_touches_and_keeps_shape_and_finite_values():
    tf.random.set_seed(5)
    images = np.random.default_rng(1).random((16, 24, 24, 3), dtype=np.float32)
    images[0], images[1] = 0.0, 1.0  # black and white extremes stay well defined under the gamma curve
    out = augment.low_light(tf.constant(images), probability=1.0).numpy()
    assert out.shape == images.shape and np.isfinite(out).all()
    assert (out[1:].mean(axis=(1, 2, 3)) < images[1:].mean(axis=(1, 2, 3)) - 0.1).all()  # every lit image darker
    assert np.abs(out[0]).mean() < 0.1  # black stays about black: only noise is added


def test_low_light_probability_zero_leaves_images_untouched():
    images = np.random.default_rng(2).random((8, 24, 24, 3), dtype=np.float32)
    assert np.array_equal(augment.low_light(tf.constant(images), probability=0.0).numpy(), images)


def test_low_light_darkens_about_its_share_of_a_batch_and_leaves_the_rest_as_they_were():
    tf.random.set_seed(6)
    images = np.random.default_rng(3).random((400, 8, 8, 3), dtype=np.float32)
    out = augment.low_light(tf.constant(images), probability=0.25).numpy()
    untouched = np.all(out == images, axis=(1, 2, 3))
    assert (out[~untouched].mean(axis=(1, 2, 3)) < images[~untouched].mean(axis=(1, 2, 3))).all()
    assert 0.18 < (~untouched).mean() < 0.32


def test_augment_batch_with_low_light_stays_in_range():
    tf.random.set_seed(7)
    augmenter = augment.image_augmenter(seed=4)
    images = np.random.default_rng(4).random((8, 48, 48, 3), dtype=np.float32)
    out, _ = augment.augment_batch(augmenter, tf.constant(images), tf.ones(8), low_light_share=1.0)
    out = out.numpy()
    assert out.shape == images.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert out.mean() < images.mean() - 0.1
