"""Training-time augmentation: what the training photos lack.

Every training mask is the same light-blue graphic pasted on a large frontal face. Real
masks come in every colour, on small, tilted, blurred faces. So training images get:

* ``recolour_masks``: the pasted mask's light-blue pixels (hue ~0.55, low saturation,
  bright) repainted in a random colour, keeping their shading, on with_mask images;
* colour: hue, saturation, brightness, contrast, sometimes grey;
* geometry and scale: flips, rotation, zoom (mostly in: real face crops are tight),
  translation;
* blur and pixelation (shrunk and enlarged again).

Runs inside tf.data on batches; never part of a saved model.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

# Measured on twin pairs: the pasted mask's pixels in HSV (5th-95th percentile).
MASK_HUE = (0.50, 0.62)
MASK_SATURATION = (0.03, 0.30)
MASK_VALUE_MIN = 0.75


def recolour_masks(
    images: tf.Tensor, labels: tf.Tensor, probability: float = 0.7, every_class: bool = False
) -> tf.Tensor:
    """Repaint the light-blue mask graphic of with_mask images (label 1) in random colours.

    ``every_class`` repaints the same colour range in without_mask images too (light-blue and
    white shirts, walls), so that colour alone tells nothing about the class.
    """
    hsv = tf.image.rgb_to_hsv(images)
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    region = (
        (hue >= MASK_HUE[0]) & (hue <= MASK_HUE[1])
        & (saturation >= MASK_SATURATION[0]) & (saturation <= MASK_SATURATION[1])
        & (value >= MASK_VALUE_MIN)
    )
    batch = tf.shape(images)[0]
    chosen = tf.random.uniform([batch]) < probability
    if not every_class:
        chosen &= tf.reshape(labels, [-1]) > 0.5
    region &= chosen[:, None, None]
    # A smooth random pattern: plain colours, two-tone and patterned fabric alike.
    size = tf.shape(images)[1:3]
    coarse = tf.random.uniform([batch, 4, 4, 3])
    spread = tf.random.uniform([batch, 1, 1, 1])  # 0: one colour, 1: a colourful pattern
    colour = tf.random.uniform([batch, 1, 1, 3])
    pattern = tf.image.resize(colour + spread * (coarse - colour), size, method="bilinear")
    shading = value[..., None] / 0.98  # keeps the folds and edges of the graphic
    repainted = tf.clip_by_value(pattern * shading, 0.0, 1.0)
    return tf.where(region[..., None], repainted, images)


def image_augmenter(seed: int = 0) -> keras.Sequential:
    """Colour, geometry, scale and blur, for images in [0, 1]."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.06, fill_mode="reflect", seed=seed),
            layers.RandomZoom((-0.5, 0.1), fill_mode="reflect", seed=seed),  # negative = zoom in: tight face crops
            layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed),
            layers.RandomHue(0.15, value_range=(0, 1), seed=seed),
            layers.RandomSaturation((0.3, 0.8), value_range=(0, 1), seed=seed),
            layers.RandomBrightness(0.2, value_range=(0, 1), seed=seed),
            layers.RandomContrast(0.3, seed=seed),
            layers.RandomGrayscale(0.1, seed=seed),
            layers.RandomGaussianBlur(factor=0.5, sigma=(0.1, 1.2), value_range=(0, 1), seed=seed),
        ],
        name="augment",
    )


def pixelate(images: tf.Tensor, probability: float = 0.3, smallest: int = 12) -> tf.Tensor:
    """Sometimes shrink the batch to a few pixels and back: small, blurry, blocky faces."""
    size = tf.shape(images)[1:3]
    low = tf.random.uniform([], smallest, tf.maximum(smallest + 1, size[0] // 2), dtype=tf.int32)
    shrunk = tf.image.resize(images, [low, low], method="area")
    restored = tf.cond(
        tf.random.uniform([]) < 0.5,
        lambda: tf.image.resize(shrunk, size, method="nearest"),
        lambda: tf.image.resize(shrunk, size, method="bilinear"),
    )
    return tf.cond(tf.random.uniform([]) < probability, lambda: restored, lambda: images)


def augment_batch(
    augmenter: keras.Sequential, images, labels, mask_probability: float = 0.7, every_class: bool = False
):
    images = recolour_masks(images, labels, mask_probability, every_class)
    images = augmenter(images, training=True)
    images = pixelate(images)
    return tf.clip_by_value(images, 0.0, 1.0), labels
