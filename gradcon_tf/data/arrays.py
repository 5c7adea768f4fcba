"""Datasets held as numpy arrays: a ``.npz`` file, and scikit-learn's small digits set."""

import zipfile

import numpy as np

from gradcon_tf.data.base import DataFileError, LabeledImages, stratified_split

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def from_arrays(x_train, y_train, x_test, y_test):
    """{"train", "test"} from in-memory arrays (images NHWC or NHW; uint8 or float in [0, 1])."""
    return {"train": LabeledImages(x_train, y_train), "test": LabeledImages(x_test, y_test)}


def load_npz(path):
    """A ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (pickles refused)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = set(NPZ_KEYS) - set(arrays.files)
            if missing:
                raise DataFileError(
                    f"{path}: missing arrays {sorted(missing)} (has {arrays.files})"
                )
            loaded = {key: arrays[key] for key in NPZ_KEYS}
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, DataFileError):
            raise
        raise DataFileError(f"{path}: not a readable .npz file ({error})") from None
    try:
        return from_arrays(*(loaded[key] for key in NPZ_KEYS))
    except ValueError as error:
        raise DataFileError(f"{path}: {error}") from None


def load_digits(seed=0):
    """scikit-learn's digits (1,797 8x8 images, 0..16 scaled to uint8), split 2:1 per class."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    # Same split as before: the first third (rounded down) of each seeded class permutation.
    return stratified_split(images, bunch.target, 1.0 / 3.0, seed)
