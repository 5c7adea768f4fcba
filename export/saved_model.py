"""SavedModel in TF Serving's layout: ``DIR/<version>/saved_model.pb`` + ``variables/``, tag serve."""

import os

import tensorflow as tf

from gradcon_tf import _files as files


def save(module, directory, version=1):
    """Write ``module`` (an :class:`gradcon_tf.scoring_graph.ScoringModule`) to ``directory/version``.

    Returns the version directory. TF Serving serves the highest integer version it finds in
    ``directory``; an existing version directory is refused rather than overwritten.
    """
    version = int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}.")
    path = os.path.join(directory, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; pick another --version or remove it.")
    # Written under a temporary name and renamed: TF Serving never sees a half-written version.
    with files.atomic_output(path, directory=True) as temporary:
        tf.saved_model.save(module, temporary, signatures=module.signatures())
    return path
