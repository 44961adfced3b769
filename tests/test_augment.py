"""Augmentation repaints the pasted mask and keeps images valid."""

import numpy as np
import tensorflow as tf

from maskdetect import augment

MASK_BLUE = np.array([226, 242, 251], np.float32) / 255  # the pasted graphic, measured


def _faces():
    images = np.full((4, 32, 32, 3), 0.6, np.float32)
    images[..., 0] = 0.8  # skin-ish
    images[:, 16:28, 8:24] = MASK_BLUE
    return images


def test_recolour_touches_only_the_mask_of_masked_faces():
    tf.random.set_seed(0)
    images = _faces()
    labels = np.array([1, 1, 0, 0], np.float32)
    out = augment.recolour_masks(tf.constant(images), tf.constant(labels), probability=1.0).numpy()
    mask = np.zeros((32, 32), bool)
    mask[16:28, 8:24] = True
    assert np.array_equal(out[:, ~mask], images[:, ~mask])  # skin untouched everywhere
    assert np.array_equal(out[2:], images[2:])  # without_mask images untouched
    for i in (0, 1):
        assert np.abs(out[i][mask] - MASK_BLUE).mean() > 0.05  # repainted


def test_recolour_probability_zero_changes_nothing():
    images = _faces()
    out = augment.recolour_masks(tf.constant(images), tf.ones(4), probability=0.0).numpy()
    assert np.array_equal(out, images)


def test_augmented_batches_keep_shape_and_range():
    tf.random.set_seed(0)
    augmenter = augment.image_augmenter(seed=3)
    images = np.random.default_rng(0).random((8, 48, 48, 3), dtype=np.float32)
    out, labels = augment.augment_batch(augmenter, tf.constant(images), tf.ones(8))
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
    labels = np.array([1, 1, 0, 0], np.float32)
    out = augment.recolour_masks(tf.constant(images), tf.constant(labels), probability=1.0, every_class=True).numpy()
    assert all(np.abs(out[i, 16:28, 8:24] - MASK_BLUE).mean() > 0.05 for i in range(4))
