"""What a saved GradCon model file must be, checked without importing TensorFlow."""

import errno
import os
import zipfile


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
