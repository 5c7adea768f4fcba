"""CIFAR-10 "python version" batches, in the layout of the official tarball.

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5``
and ``test_batch``: pickled dicts with ``data`` (N, 3072) uint8 rows (1024 red, 1024 green,
1024 blue values, each row-major 32x32) and ``labels`` (N ints). :func:`load_cifar10` accepts the
tarball itself, the extracted ``cifar-10-batches-py`` folder, or a folder that holds either.

The batches are pickles, and unpickling runs code named in the file. The reader therefore allows
only the few numpy and builtin names a real batch needs and refuses anything else.
"""

import io
import os
import pickle
import tarfile

import numpy as np

from gradcon_tf.data.base import DataFileError, LabeledImages

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
FOLDER = "cifar-10-batches-py"
TARBALL = "cifar-10-python.tar.gz"
CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "bytes"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(payload, name):
    """(images (N, 32, 32, 3) uint8, labels (N,)) of one pickled batch; ``name`` is for errors."""
    try:
        batch = _BatchUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as error:  # truncated or not a pickle: the message names the file
        raise DataFileError(f"{name}: not a readable CIFAR-10 batch ({error})") from None
    if not isinstance(batch, dict):
        raise DataFileError(f"{name}: expected a pickled dict, got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataFileError(f"{name}: missing 'data' or 'labels' (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"]).reshape(-1)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataFileError(
            f"{name}: 'data' must be (N, 3072) uint8, got {data.shape} {data.dtype}"
        )
    if len(labels) != len(data):
        raise DataFileError(f"{name}: {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(f"{name}: labels outside 0..9 (min {labels.min()}, max {labels.max()})")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_folder(folder):
    def read(name):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as handle:
                return handle.read(), path
        except FileNotFoundError:
            raise DataFileError(
                f"{path}: no such file (expected the official CIFAR-10 layout)"
            ) from None

    return read


def _read_tarball(path):
    try:
        archive = tarfile.open(path, "r:*")
        members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataFileError(f"{path}: not a readable tar archive ({error})") from None

    def read(name):
        if name not in members:
            raise DataFileError(f"{path}: the archive has no {FOLDER}/{name}")
        try:
            return archive.extractfile(members[name]).read(), f"{path}:{members[name].name}"
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DataFileError(f"{path}:{members[name].name}: cannot read ({error})") from None

    return read


def load_cifar10(path):
    """{"train", "test"} LabeledImages from the official CIFAR-10 python batches at ``path``."""
    path = os.fspath(path)
    if os.path.isfile(path):
        read = _read_tarball(path)
    elif os.path.isdir(os.path.join(path, FOLDER)):
        read = _read_folder(os.path.join(path, FOLDER))
    elif os.path.isfile(os.path.join(path, TARBALL)):
        read = _read_tarball(os.path.join(path, TARBALL))
    elif os.path.isdir(path):
        read = _read_folder(path)
    else:
        raise DataFileError(f"{path}: no such file or directory")
    splits = {}
    for split, names in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
        parts = [read_batch(*read(name)) for name in names]
        splits[split] = LabeledImages(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
    return splits
