"""MNIST-style IDX files (gzipped or not), read with checks that name the file and the problem."""

import glob
import gzip
import os

import numpy as np

from gradcon_tf.data.base import DataFileError, LabeledImages

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read an IDX file (``.gz`` or plain) into a numpy array, checking the header against the data."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataFileError(f"{path}: cannot read gzip data ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFileError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_size:
        raise DataFileError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        raise DataFileError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file has "
            f"{actual} bytes of data ({'truncated' if actual < expected else 'trailing bytes'})"
        )
    return (
        np.frombuffer(raw, dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))
    )


def _find_idx(directory, stem):
    candidates = sorted(glob.glob(os.path.join(glob.escape(directory), stem + "*")))
    candidates = [c for c in candidates if os.path.basename(c) in (stem, stem + ".gz")]
    if not candidates:
        raise DataFileError(f"{directory}: no file named {stem} or {stem}.gz")
    return candidates[0]


def load_idx_directory(directory):
    """MNIST/Fashion-MNIST layout: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in DIR."""
    if not os.path.isdir(directory):
        raise DataFileError(f"{directory}: no such directory")
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find_idx(directory, f"{prefix}-images-idx3-ubyte")
        labels_path = _find_idx(directory, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise DataFileError(f"{images_path}: expected 3-D images (N, H, W), got {images.shape}")
        if labels.ndim != 1:
            raise DataFileError(f"{labels_path}: expected 1-D labels (N,), got {labels.shape}")
        if len(images) != len(labels):
            raise DataFileError(
                f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
            )
        splits[split] = LabeledImages(images, labels)
    return splits
