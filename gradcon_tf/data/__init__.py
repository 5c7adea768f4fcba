"""Labelled image datasets for training and evaluation, picked by a short spec.

``load(spec)`` returns ``{"train": LabeledImages, "test": LabeledImages}``; images are NHWC uint8
(or float in [0, 1]) and labels integer class ids. Specs:

* ``digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn; the built-in
  default). No official split: a stratified, seeded 2:1 train/test split.
* ``mnist:DIR`` (or ``idx:DIR``): MNIST/Fashion-MNIST IDX files in DIR (``train-images-idx3-ubyte``
  etc., gzipped or not).
* ``npz:FILE``: a numpy ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test``.
"""

import dataclasses
import glob
import os

import numpy as np

from gradcon_tf.data.idx import DataFileError, read_idx


@dataclasses.dataclass
class LabeledImages:
    images: np.ndarray  # (N, H, W, C)
    labels: np.ndarray  # (N,) integer class ids

    def __post_init__(self):
        if self.images.ndim == 3:
            self.images = self.images[..., None]
        self.labels = np.asarray(self.labels).astype(np.int64).reshape(-1)
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"{len(self.images)} images but {len(self.labels)} labels; they must match."
            )

    def __len__(self):
        return len(self.labels)


def load_digits(seed=0):
    """scikit-learn's digits (1,797 8x8 images, 0..16 scaled to uint8), split 2:1 per class."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test[members[: len(members) // 3]] = True
    return {
        "train": LabeledImages(images[~test], labels[~test]),
        "test": LabeledImages(images[test], labels[test]),
    }


def _find_idx(directory, stem):
    candidates = sorted(glob.glob(os.path.join(directory, stem + "*")))
    if not candidates:
        raise DataFileError(f"{directory}: no file named {stem}[.gz]")
    return candidates[0]


def load_idx_directory(directory):
    """MNIST-layout IDX files: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find_idx(directory, f"{prefix}-images-idx3-ubyte")
        labels_path = _find_idx(directory, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataFileError(
                f"{images_path}: {images.shape} images do not match {labels_path}: {labels.shape}"
            )
        splits[split] = LabeledImages(images, labels)
    return splits


def load_npz(path):
    with np.load(path, allow_pickle=False) as arrays:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
        if missing:
            raise DataFileError(f"{path}: missing arrays {sorted(missing)}")
        return {
            "train": LabeledImages(arrays["x_train"], arrays["y_train"]),
            "test": LabeledImages(arrays["x_test"], arrays["y_test"]),
        }


def load(spec):
    """Load the dataset named by ``spec`` (see the module docstring)."""
    kind, _, argument = spec.partition(":")
    if kind == "digits":
        return load_digits()
    if kind in ("mnist", "idx", "fashion_mnist") and argument:
        return load_idx_directory(argument)
    if kind == "npz" and argument:
        return load_npz(argument)
    raise ValueError(f"Unknown dataset spec {spec!r}; expected digits, mnist:DIR or npz:FILE.")
