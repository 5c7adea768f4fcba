"""Read the tensors of a PyTorch checkpoint as numpy arrays, without torch and without trusting it.

``torch.save`` writes a pickle whose tensors point at raw storages: in the zip format (torch >= 1.6)
the pickle is ``<dir>/data.pkl`` and storage ``k`` is ``<dir>/data/k``; in the legacy format the
pickles and the storages follow one another in one stream. The pickle is read by an unpickler that
resolves only the handful of globals a state dict needs and refuses every other one, so reading a
checkpoint never runs code from it.
"""

import collections
import pickle
import zipfile

import numpy as np

STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch.save file
LEGACY_PROTOCOL = 1001


class _StorageType:
    """What a global such as ``torch.FloatStorage`` resolves to: the storage's element type."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _Storage:
    """A storage named by the pickle; ``array`` is filled from the file once the pickle is read."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.array = None


class _TensorRef:
    """A tensor as ``_rebuild_tensor_v2`` describes it: a strided view into a storage."""

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def to_numpy(self):
        data = self.storage.array
        if 0 in self.shape:
            return np.zeros(self.shape, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides))
        if self.offset < 0 or min(self.strides, default=0) < 0 or last >= data.size:
            raise ValueError("a tensor of the checkpoint runs past the end of its storage")
        byte_strides = [s * data.itemsize for s in self.strides]
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.shape, byte_strides)
        return np.array(view)


def _rebuild_tensor_v2(storage, offset, shape, strides, requires_grad, hooks, metadata=None):
    if not isinstance(storage, _Storage) or len(shape) != len(strides):
        raise ValueError("a tensor of the checkpoint is not built from a storage")
    ints = [offset, *shape, *strides]
    if not all(isinstance(value, int) for value in ints):
        raise ValueError("a tensor of the checkpoint has a non-integer shape or stride")
    return _TensorRef(storage, offset, tuple(shape), tuple(strides))


def _rebuild_parameter(data, requires_grad, hooks):
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a state dict; any global but an OrderedDict, a tensor or a storage type is refused.

    Storages the pickle names are collected in ``storages`` (key -> ``_Storage``), still empty.
    """

    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[module, name]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        raise ValueError(f"the checkpoint reader refuses global {module}.{name}")

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy adds view metadata (None: no view).
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise ValueError(f"the checkpoint reader refuses persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int):
            raise ValueError(f"the checkpoint reader refuses persistent id {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise ValueError("the checkpoint holds storage views, which this reader does not read")
        return self.storages.setdefault(str(key), _Storage(storage_type.dtype, numel))


def read_state_dict(path):
    """The tensors of the PyTorch checkpoint at ``path``, as ``{name: numpy array}``.

    Reads both ``torch.save`` formats (zip and legacy). A file that is not a checkpoint, or a
    checkpoint that is not a flat name -> tensor mapping, is a ``ValueError``.
    """
    path = str(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            tree, storages = _read_zip(path, archive)
    else:
        with open(path, "rb") as file:
            tree, storages = _read_legacy(path, file)
    return _to_arrays(path, tree, storages)


def _read_zip(path, archive):
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise ValueError(f"{path} is a zip file but not a PyTorch checkpoint (no <dir>/data.pkl)")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if f"{prefix}byteorder" in archive.namelist():
        byteorder = archive.read(f"{prefix}byteorder").decode().strip()
    with archive.open(pickles[0]) as file:
        unpickler = RestrictedUnpickler(file)
        tree = unpickler.load()
    for key, storage in unpickler.storages.items():
        if f"{prefix}data/{key}" not in archive.namelist():
            raise ValueError(f"{path} is not a complete PyTorch checkpoint (no storage {key})")
        data = archive.read(f"{prefix}data/{key}")
        storage.array = _storage_array(path, data, storage, byteorder)
    return tree, unpickler.storages


def _read_legacy(path, file):
    try:
        magic = RestrictedUnpickler(file).load()
    except Exception as error:  # any garbage: whatever the unpickler trips on
        raise ValueError(f"{path} is not a PyTorch checkpoint ({error})") from error
    if magic != LEGACY_MAGIC:
        raise ValueError(f"{path} is a pickle but not a PyTorch checkpoint")
    if RestrictedUnpickler(file).load() != LEGACY_PROTOCOL:
        raise ValueError(f"{path} is a legacy PyTorch checkpoint of an unknown protocol")
    system = RestrictedUnpickler(file).load()
    byteorder = "little" if dict(system).get("little_endian", True) else "big"
    unpickler = RestrictedUnpickler(file)
    tree = unpickler.load()
    for key in RestrictedUnpickler(file).load():
        storage = unpickler.storages.get(str(key))
        if storage is None:
            raise ValueError(f"{path} lists a storage its pickle does not name ({key})")
        numel = int.from_bytes(file.read(8), byteorder)
        data = file.read(numel * storage.dtype.itemsize)
        storage.array = _storage_array(path, data, storage, byteorder)
    return tree, unpickler.storages


def _storage_array(path, data, storage, byteorder):
    dtype = storage.dtype.newbyteorder("<" if byteorder == "little" else ">")
    if len(data) < storage.numel * dtype.itemsize:
        raise ValueError(f"{path} is truncated: a storage is shorter than its pickle says")
    array = np.frombuffer(data, dtype, count=storage.numel)
    return array.astype(storage.dtype.newbyteorder("="), copy=False)


def _to_arrays(path, tree, storages):
    if any(storage.array is None for storage in storages.values()):
        raise ValueError(f"{path} is not a complete PyTorch checkpoint (a storage is missing)")
    is_state_dict = isinstance(tree, dict) and all(
        isinstance(name, str) and isinstance(value, _TensorRef) for name, value in tree.items()
    )
    if not is_state_dict:
        raise ValueError(f"{path} is a PyTorch checkpoint but not a state dict (name -> tensor)")
    return {name: tensor.to_numpy() for name, tensor in tree.items()}
