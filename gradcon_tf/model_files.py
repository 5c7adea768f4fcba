"""What a saved GradCon model file must be, checked without importing TensorFlow."""

import errno
import os
import zipfile

from gradcon_tf import _files as files

#: The file name ending Keras saves a whole model under.
MODEL_SUFFIX = ".keras"


def check_model_file(path):
    """Raise an error that says what ``path`` is unless it is a ``.keras`` archive."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such file (expected a .keras model)", path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: a folder; expected a .keras file written by model.save")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path}: not a .keras archive (truncated, or another kind of file); expected a "
            "file written by model.save"
        )
    return path


def check_model_output(path):
    """Raise an error that says why a model cannot be saved to ``path`` (before any training):
    not a ``.keras`` name, a folder, or a place that cannot be written. Returns whether a file is
    there already (it will be replaced)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"a folder; give the model's file name, e.g. {path.rstrip(os.sep)}"
                         f"{os.sep}model{MODEL_SUFFIX}")
    if not path.endswith(MODEL_SUFFIX):
        raise ValueError(f"a model file's name must end in {MODEL_SUFFIX} (Keras' format for a "
                         f"whole model), e.g. {os.path.splitext(path)[0]}{MODEL_SUFFIX}")
    files.check_writable(path)
    return os.path.exists(path)
