"""Labelled image datasets for training and evaluation, picked by a short spec.

``load(spec)`` returns ``{"train": LabeledImages, "test": LabeledImages}`` (image folders add
``"class_names"``); images are NHWC uint8 (or float in [0, 1]) and labels integer class ids.

=========================  ==================================================================
spec                       source
=========================  ==================================================================
``digits``                 scikit-learn's 8x8 digits (bundled; seeded stratified 2:1 split)
``mnist:DIR``              MNIST / Fashion-MNIST IDX files in DIR, gzipped or not
                           (``fashion_mnist:DIR`` and ``idx:DIR`` are the same loader)
``cifar10:PATH``           CIFAR-10 python batches: the official tarball, or the folder
                           ``cifar-10-batches-py``, or a folder holding either
``folder:DIR``             DIR/<class>/<image files> (or DIR/train/... and DIR/test/...)
``npz:FILE``               ``x_train``, ``y_train``, ``x_test``, ``y_test`` arrays
``tfds:NAME[:DATA_DIR]``   ``tfds.load(NAME, data_dir=DATA_DIR)``, prepared beforehand
=========================  ==================================================================

A bad file raises :class:`DataFileError` with the file's path and the problem in the message.
"""

import os

from gradcon_tf.data.arrays import from_arrays, load_digits, load_npz
from gradcon_tf.data.base import DataFileError, LabeledImages, concatenate
from gradcon_tf.data.cifar import load_cifar10
from gradcon_tf.data.folder import load_image_folder
from gradcon_tf.data.idx import load_idx_directory, read_idx
from gradcon_tf.data.tfds_loader import load_tfds

__all__ = [
    "DataFileError",
    "LabeledImages",
    "check_spec",
    "concatenate",
    "from_arrays",
    "load",
    "load_cifar10",
    "load_digits",
    "load_idx_directory",
    "load_image_folder",
    "load_npz",
    "load_tfds",
    "read_idx",
]

_LOADERS = {
    "mnist": load_idx_directory,
    "fashion_mnist": load_idx_directory,
    "idx": load_idx_directory,
    "cifar10": load_cifar10,
    "folder": load_image_folder,
    "npz": load_npz,
}


#: What the path of a spec names, where it is not a directory.
_PATH_KINDS = {"npz": "file", "cifar10": "file or directory"}
_SPEC_FORMS = (
    "digits, mnist:DIR, fashion_mnist:DIR, idx:DIR, cifar10:PATH, folder:DIR, npz:FILE or "
    "tfds:NAME[:DATA_DIR]"
)


def check_spec(spec):
    """Raise the error ``load(spec)`` would raise for a malformed spec, a missing path or a
    missing optional dependency, without reading any data (and without TensorFlow)."""
    kind, _, argument = spec.partition(":")
    if kind == "digits" and not argument:
        return
    if kind == "tfds" and argument:
        import importlib.util

        if importlib.util.find_spec("tensorflow_datasets") is None:
            raise ValueError(
                f"{spec}: needs tensorflow-datasets, which is not installed; install the data "
                "extra: pip install 'gradcon-tf[data]'"
            )
        data_dir = argument.partition(":")[2]
        if data_dir and not os.path.isdir(data_dir):
            raise DataFileError(f"{data_dir}: no such directory (the TFDS data_dir of {spec})")
        return
    if kind in _LOADERS and argument:
        if not os.path.exists(argument):
            what = _PATH_KINDS.get(kind, "directory")
            raise DataFileError(f"{argument}: no such {what} ({spec})")
        return
    raise ValueError(f"unknown dataset spec {spec!r}; expected {_SPEC_FORMS}.")


def load(spec):
    """Load the dataset named by ``spec`` (see the module docstring)."""
    check_spec(spec)
    kind, _, argument = spec.partition(":")
    if kind == "digits" and not argument:
        return load_digits()
    if kind == "tfds" and argument:
        name, _, data_dir = argument.partition(":")
        return load_tfds(name, data_dir=data_dir or None)
    if kind in _LOADERS and argument:
        return _LOADERS[kind](argument)
    raise AssertionError("check_spec accepted a spec load cannot read")  # pragma: no cover
