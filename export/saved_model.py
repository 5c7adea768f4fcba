"""SavedModel in TF Serving's layout: ``DIR/<version>/saved_model.pb`` + ``variables/``, tag serve."""

import os

import tensorflow as tf

from gradcon_tf import _files as files


def version_folder(directory, version):
    """``directory/version``; a ValueError for a version < 1, a FileExistsError when it exists."""
    version = int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}.")
    path = os.path.join(directory, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; pick another --version or remove it.")
    return path


def save(module, directory, version=1):
    """Write ``module`` (an :class:`gradcon_tf.scoring_graph.ScoringModule`) to ``directory/version``.

    Returns the version directory. TF Serving serves the highest integer version it finds in
    ``directory``; an existing version directory is refused rather than overwritten.
    """
    path = version_folder(directory, version)
    # Written under a temporary name and renamed: TF Serving never sees a half-written version.
    with files.atomic_output(path, directory=True) as temporary:
        tf.saved_model.save(module, temporary, signatures=module.signatures())
    return path
