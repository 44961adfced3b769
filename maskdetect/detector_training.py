"""Teach MTCNN that a masked face is a face.

MTCNN was trained before masks were common: on scenes-dev its three networks score masked
faces far lower than unmasked ones, and every labelled face over 48 px it misses wears a mask.
This fine-tunes copies of the three networks (PNet, RNet, ONet) on the training split's
faces, half of them wearing a synthetic mask (the pasted graphic recoloured, or a painted
mask from :mod:`maskdetect.augment`), with two goals in one loss:

* a masked face is a face: its face score is pulled to 1;
* nothing else changes: on every other window (unmasked faces, parts of faces, hair,
  clothes, background, at any scale) and for every box and landmark regression, the copy is
  pulled to the original network's answer (distillation), so what MTCNN already did well,
  including rejecting non-faces, is kept.

The result is one small ``.npz`` of weights (``deployment/mtcnn-masked.npz``) that
:class:`maskdetect.faces.MTCNNDetector` loads over the package's own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config
from .files import atomic_path

STAGES = ("pnet", "rnet", "onet")
INPUT_SIZES = {"pnet": 12, "rnet": 24, "onet": 48}
CONTEXT = 128  # each training face is kept as a square this many pixels wide, face about half of it


@dataclass
class DetectorTrainConfig:
    steps: int = 600  # per network
    batch_size: int = 32  # contexts per step; each gives one face window and `others` other windows
    others: int = 4
    learning_rate: float = 3e-4
    masked_share: float = 0.7  # share of faces that wear a (pasted or painted) mask
    masked_weight: float = 3.0  # weight of a masked face window in the face-score loss (others: 1)
    seed: int = 1


def load_contexts(split: str = "train", progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square around each face of ``split`` (2x the face, as displayed), its box and label.

    Returns (images in [0, 1] of shape (n, CONTEXT, CONTEXT, 3), face boxes in [0, 1] of the
    square, labels 1.0 for with_mask photos).
    """
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image
    from tqdm.auto import tqdm

    from .data import DataError, read_faces, read_splits
    from .images import decode_image

    boxes = read_faces()
    root = config.data_dir() / split
    if not root.is_dir():
        raise DataError(f"{root} is missing: run `make data` (or `maskdetect data`) first")
    rows = [r for r in read_splits() if r["split"] == split and r["source"] in boxes]

    def context(row):
        image = decode_image(root / row["class"] / row["file"]).convert("RGB")
        xmin, ymin, xmax, ymax = boxes[row["source"]]
        side = 2.0 * max(xmax - xmin, ymax - ymin)
        left, top = (xmin + xmax - side) / 2, (ymin + ymax - side) / 2
        square = image.crop((round(left), round(top), round(left + side), round(top + side)))
        array = np.asarray(square.resize((CONTEXT, CONTEXT), Image.Resampling.BILINEAR), np.float32) / 255
        span = round(left + side) - round(left)
        face = [(xmin - round(left)) / span, (ymin - round(top)) / span, (xmax - round(left)) / span, (ymax - round(top)) / span]
        return array, np.array(face, np.float32)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        done = list(tqdm(pool.map(context, rows), total=len(rows), desc=f"faces {split}/", disable=not progress))
    labels = np.array([1.0 if r["class"] == "with_mask" else 0.0 for r in rows], np.float32)
    return np.stack([d[0] for d in done]), np.stack([d[1] for d in done]), labels


def original_networks() -> dict:
    """The ``mtcnn`` package's three networks with its own weights."""
    from mtcnn import MTCNN

    detector = MTCNN(device="CPU:0")
    return dict(zip(STAGES, (stage.model for stage in detector.stages)))


def copy_network(network):
    clone = type(network)()
    clone.build()
    clone.set_weights(network.get_weights())
    return clone


def _windows(tf, boxes, labels, batch, others):
    """One face window per image (jittered square around the face) and `others` random ones.

    Returns (window boxes as y1, x1, y2, x2 in [0, 1], image index, is-masked-face flag).
    """
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    side = tf.maximum(x1 - x0, y1 - y0) * tf.random.uniform([batch], 0.85, 1.2)
    cx = (x0 + x1) / 2 + (x1 - x0) * tf.random.uniform([batch], -0.12, 0.12)
    cy = (y0 + y1) / 2 + (y1 - y0) * tf.random.uniform([batch], -0.12, 0.12)
    faces = tf.stack([cy - side / 2, cx - side / 2, cy + side / 2, cx + side / 2], axis=1)
    n = batch * others
    other_side = tf.random.uniform([n], 0.12, 1.0)
    oy = tf.random.uniform([n]) * (1 - other_side)
    ox = tf.random.uniform([n]) * (1 - other_side)
    rest = tf.stack([oy, ox, oy + other_side, ox + other_side], axis=1)
    index = tf.concat([tf.range(batch), tf.repeat(tf.range(batch), others)], axis=0)
    masked = tf.concat([labels > 0.5, tf.zeros([n], tf.bool)], axis=0)
    return tf.concat([faces, rest], axis=0), index, masked


def _augment(tf, images, labels, boxes, masked_share):
    """Masks of every colour and shape, lighting, and the blur of small faces."""
    from . import augment

    images = augment.recolour_masks(images, labels, 0.7)
    # Unmasked faces get a painted mask so that about `masked_share` of faces wear one.
    unmasked_share = 1 - tf.reduce_mean(labels)
    paint = tf.clip_by_value((masked_share - tf.reduce_mean(labels)) / tf.maximum(unmasked_share, 1e-3), 0.0, 1.0)
    images, painted = augment.paint_masks(images, tf.zeros_like(labels), boxes, paint, on_unmasked=True)
    images, _ = augment.paint_masks(images, labels, boxes, 0.5)  # repaint the pasted graphic
    labels = tf.maximum(labels, painted)
    batch = tf.shape(images)[0]
    images = tf.image.adjust_brightness(images, tf.random.uniform([batch, 1, 1, 1], -0.2, 0.2))
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * tf.random.uniform([batch, 1, 1, 1], 0.6, 1.4) + mean
    grey = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(images))
    images = tf.where(tf.random.uniform([batch, 1, 1, 1]) < 0.1, grey, images)
    # Street faces are often 20-60 px: shrink the square (face half of it) and enlarge it again.
    low = tf.random.uniform([], 24, CONTEXT, dtype=tf.int32)
    small = tf.image.resize(tf.image.resize(images, [low, low], method="area"), [CONTEXT, CONTEXT])
    images = tf.where(tf.random.uniform([batch, 1, 1, 1]) < 0.6, small, images)
    return tf.clip_by_value(images, 0.0, 1.0), labels


def _face_probability(outputs):
    return outputs[-1][..., 1]


def train_network(stage: str, original, images, boxes, labels, cfg: DetectorTrainConfig, progress: bool = True):
    """Fine-tune a copy of one of MTCNN's networks; returns it."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    tf.random.set_seed(cfg.seed)
    model = copy_network(original)
    if stage != "pnet":  # RNet and ONet: the first two convolution blocks stay as they are (and cost
        model.conv1.trainable = model.conv2.trainable = False  # most of the backward pass)
        model.prelu1.trainable = model.prelu2.trainable = False
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    size = INPUT_SIZES[stage]
    images = tf.constant(images)
    boxes_all = tf.constant(boxes)
    labels_all = tf.constant(labels)
    n = int(images.shape[0])

    @tf.function
    def step():
        pick = tf.random.uniform([cfg.batch_size], 0, n, dtype=tf.int32)
        batch_images, batch_labels = _augment(
            tf, tf.gather(images, pick), tf.gather(labels_all, pick), tf.gather(boxes_all, pick), cfg.masked_share
        )
        windows, index, masked = _windows(tf, tf.gather(boxes_all, pick), batch_labels, cfg.batch_size, cfg.others)
        patches = tf.image.crop_and_resize(batch_images * 255.0, windows, index, [size, size])
        patches = (patches - 127.5) / 128.0  # MTCNN's normalisation
        teacher = original(patches)
        target = tf.where(masked, 1.0, tf.reshape(_face_probability(teacher), [-1]))
        with tf.GradientTape() as tape:
            student = model(patches, training=True)
            p = tf.clip_by_value(tf.reshape(_face_probability(student), [-1]), 1e-6, 1 - 1e-6)
            weight = tf.where(masked, cfg.masked_weight, 1.0)
            face_loss = -tf.reduce_mean(weight * (target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p)))
            # Boxes and landmarks: keep the original's answers (scaled up: offsets are ~0.1).
            keep_loss = tf.add_n([tf.reduce_mean(tf.square(s - t)) for s, t in zip(student[:-1], teacher[:-1])])
            loss = face_loss + 10.0 * keep_loss
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return face_loss, keep_loss

    bar = tqdm(range(cfg.steps), desc=f"fine-tune {stage}", disable=not progress)
    for _ in bar:
        face_loss, keep_loss = step()
        bar.set_postfix(face=f"{float(face_loss):.3f}", keep=f"{float(keep_loss):.4f}")
    return model


def save_weights(networks: dict, path: Path) -> Path:
    """All three networks' weights in one .npz, written atomically."""
    arrays = {f"{stage}/{i}": w for stage, network in networks.items() for i, w in enumerate(network.get_weights())}
    with atomic_path(path) as temporary:
        np.savez_compressed(temporary, **arrays)
    return path


def load_weights(path: Path) -> dict[str, list[np.ndarray]]:
    with np.load(path) as saved:
        weights: dict[str, list[np.ndarray]] = {}
        for stage in STAGES:
            count = sum(1 for key in saved.files if key.startswith(f"{stage}/"))
            weights[stage] = [saved[f"{stage}/{i}"] for i in range(count)]
    return weights


def train_detector(cfg: DetectorTrainConfig | None = None, out: Path | None = None, progress: bool = True) -> Path:
    cfg = cfg or DetectorTrainConfig()
    out = out or config.DETECTOR_WEIGHTS
    started = time.monotonic()
    images, boxes, labels = load_contexts("train", progress)
    originals = original_networks()
    tuned = {stage: train_network(stage, originals[stage], images, boxes, labels, cfg, progress) for stage in STAGES}
    save_weights(tuned, out)
    if progress:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")
    return out
