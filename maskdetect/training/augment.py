"""Training-time augmentation: what the training photos lack.

Every training mask is the same light-blue graphic pasted on a large frontal face. Real
masks come in every colour, on small, tilted, blurred faces. So training images get:

* ``recolour_masks``: the pasted mask's light-blue pixels (hue ~0.55, low saturation,
  bright) repainted in a random colour, keeping their shading, on with_mask images;
* colour: hue, saturation, brightness, contrast, sometimes grey;
* geometry and scale: flips, rotation, zoom (mostly in: real face crops are tight),
  translation;
* blur and pixelation (shrunk and enlarged again);
* ``downscale``: single images shrunk to a street scene's face size and enlarged back;
* ``low_light``: darkened, gamma-curved and noisy, like an evening street or a dim entrance;
* ``paint_masks``: a synthetic mask of random shape, colour and pattern painted over the lower
  half of the detected face (``data/faces.csv``), so that the model sees masks of other
  shapes than the one graphic.

Runs inside tf.data on batches; never part of a saved model.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from ..core.constants import LABELS, MASKED

MASKED_INDEX = LABELS.index(MASKED)  # labels are indices into LABELS

# Measured on twin pairs: the pasted mask's pixels in HSV (5th-95th percentile).
MASK_HUE = (0.50, 0.62)
MASK_SATURATION = (0.03, 0.30)
MASK_VALUE_MIN = 0.75


def recolour_masks(
    images: tf.Tensor, labels: tf.Tensor, probability: float = 0.7, every_class: bool = False
) -> tf.Tensor:
    """Repaint the light-blue mask graphic of with_mask images in random colours.

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
        chosen &= tf.reshape(labels, [-1]) == MASKED_INDEX
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


def paint_masks(
    images: tf.Tensor, labels: tf.Tensor, boxes: tf.Tensor, probability: float = 0.3, on_unmasked: bool = False
) -> tuple[tf.Tensor, tf.Tensor]:
    """Paint a synthetic mask over the nose, mouth and chin of faces with a known box.

    ``boxes`` holds each image's face as (xmin, ymin, xmax, ymax) in [0, 1] (NaN: no face
    found). By default only with_mask images get one, over the pasted graphic, so the class
    balance stays; ``on_unmasked`` also paints on without_mask faces and relabels them
    with_mask. Shapes vary from surgical (flat top, pleats) to cloth and FFP2 (nose peak,
    rounded chin), tilted a little; plain colours, smooth colour gradients, or printed fabric
    (stripes, dots, blotches).
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    labels = tf.reshape(labels, [-1])
    known = tf.reduce_all(tf.math.is_finite(boxes), axis=1)
    chosen = known & (tf.random.uniform([batch]) < probability)
    if not on_unmasked:
        chosen &= labels == MASKED_INDEX
    boxes = tf.where(known[:, None], boxes, tf.zeros_like(boxes))

    def per_image(low, high):
        return tf.random.uniform([batch, 1, 1], low, high)

    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    box_w, box_h = tf.maximum(x1 - x0, 1e-3), tf.maximum(y1 - y0, 1e-3)
    # Face coordinates: u across the face (0 left, 1 right), v down it (0 brow, 1 chin).
    xs = (tf.range(width, dtype=tf.float32) + 0.5) / tf.cast(width, tf.float32)
    ys = (tf.range(height, dtype=tf.float32) + 0.5) / tf.cast(height, tf.float32)
    angle = per_image(-0.25, 0.25)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    dx, dy = xs[None, None, :] - cx, ys[None, :, None] - cy
    u = (tf.cos(angle) * dx + tf.sin(angle) * dy) / box_w + 0.5
    v = (-tf.sin(angle) * dx + tf.cos(angle) * dy) / box_h + 0.5
    across = 2 * u - 1  # -1 .. 1
    top = per_image(0.40, 0.58) + per_image(0.0, 0.2) * tf.abs(across)  # peak over the nose
    bottom = per_image(0.98, 1.15) - per_image(0.0, 0.35) * across**2  # round under the chin
    side = per_image(0.0, 0.14)
    # Signed distance to the mask's edge in pixels (positive inside), for soft edges.
    pixels = tf.cast(height, tf.float32) * box_h
    inside = tf.minimum(
        tf.minimum(v - top, bottom - v) * pixels,
        (tf.minimum(u - side, 1 - side - u)) * tf.cast(width, tf.float32) * box_w,
    )
    alpha = tf.clip_by_value(inside + 0.5, 0.0, 1.0)[..., None]

    coarse = tf.random.uniform([batch, 4, 4, 3])
    spread = tf.random.uniform([batch, 1, 1, 1]) * tf.cast(tf.random.uniform([batch, 1, 1, 1]) < 0.4, tf.float32)
    colour = tf.random.uniform([batch, 1, 1, 3])
    # Real masks are often white, black or pale blue: a third get a plain neutral colour.
    neutral = tf.random.uniform([batch, 1, 1, 1], 0.05, 1.0) * tf.constant([[[[1.0, 1.0, 1.0]]]])
    neutral = tf.where(tf.random.uniform([batch, 1, 1, 1]) < 0.2, neutral * [0.85, 0.93, 1.0], neutral)
    colour = tf.where(tf.random.uniform([batch, 1, 1, 1]) < 0.35, neutral, colour)
    pattern = tf.image.resize(colour + spread * (coarse - colour), [height, width], method="bilinear")
    # Printed fabric: stripes, dots or blotches (leopard, camouflage, flowers) in two colours.
    turn = per_image(0.0, 3.1416)
    frequency = per_image(6.0, 25.0) * 6.2832
    stripes = 0.5 + 0.5 * tf.sin(frequency * (tf.cos(turn) * u + tf.sin(turn) * v))
    dots = tf.cast(tf.sin(frequency * u) * tf.sin(frequency * v) > 0.4, tf.float32)
    cells = tf.random.uniform([], 6, 16, dtype=tf.int32)
    blotches = tf.image.resize(tf.random.uniform([batch, cells, cells, 1]), [height, width], method="bilinear")[..., 0]
    blotches = tf.cast(blotches > per_image(0.45, 0.7), tf.float32)
    kind = tf.random.uniform([batch, 1, 1])
    field = tf.where(kind < 0.4, stripes, tf.where(kind < 0.6, dots, blotches))[..., None]
    printed = colour * (1 - field) + tf.random.uniform([batch, 1, 1, 3]) * field
    pattern = tf.where(tf.random.uniform([batch, 1, 1, 1]) < 0.4, printed, pattern)
    pleats = 1 - per_image(0.0, 0.12) * tf.cast(tf.random.uniform([batch, 1, 1]) < 0.5, tf.float32) * (
        0.5 + 0.5 * tf.sin(v * per_image(25.0, 45.0))
    )
    shading = (1 - per_image(0.0, 0.35) * across**2) * pleats  # darker towards the cheeks
    painted = tf.clip_by_value(pattern * shading[..., None], 0.0, 1.0)
    alpha = alpha * tf.cast(chosen, tf.float32)[:, None, None, None]
    images = images * (1 - alpha) + painted * alpha
    return images, tf.where(chosen, tf.fill(tf.shape(labels), tf.cast(MASKED_INDEX, labels.dtype)), labels)


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


def downscale(images: tf.Tensor, probability: float = 0.5, smallest: int = 8, largest: int = 40) -> tf.Tensor:
    """Some images of the batch shrunk to 8-40 px and enlarged back: the small faces of a street scene."""
    size = tf.shape(images)[1:3]
    low = tf.random.uniform([], smallest, largest + 1, dtype=tf.int32)
    restored = tf.image.resize(tf.image.resize(images, [low, low], method="area"), size, method="bilinear")
    chosen = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < probability
    return tf.where(chosen, restored, images)


def low_light(images: tf.Tensor, probability: float = 0.25) -> tf.Tensor:
    """Some images darkened (gain 0.15-0.6, gamma 1-1.8) with sensor noise."""
    n = tf.shape(images)[0]
    per_image = lambda low, high: tf.random.uniform([n, 1, 1, 1], low, high)  # noqa: E731
    dark = tf.pow(images, per_image(1.0, 1.8)) * per_image(0.15, 0.6)
    dark += tf.random.normal(tf.shape(images)) * per_image(0.0, 0.04)
    return tf.where(per_image(0.0, 1.0) < probability, dark, images)


def augment_batch(
    augmenter: keras.Sequential,
    images,
    labels,
    mask_probability: float = 0.7,
    every_class: bool = False,
    boxes=None,
    painted_masks: float = 0.0,
    paint_unmasked: bool = False,
    low_light_share: float = 0.0,
    downscale_share: float = 0.0,
):
    images = recolour_masks(images, labels, mask_probability, every_class)
    if boxes is not None and painted_masks > 0:
        images, labels = paint_masks(images, labels, boxes, painted_masks, paint_unmasked)
    images = augmenter(images, training=True)
    images = pixelate(images)
    if downscale_share > 0:
        images = downscale(images, downscale_share)
    if low_light_share > 0:
        images = low_light(images, low_light_share)
    return tf.clip_by_value(images, 0.0, 1.0), labels
