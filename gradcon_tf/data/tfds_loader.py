"""Datasets from TensorFlow Datasets (``tfds.load``), as numpy LabeledImages.

Nothing is downloaded unless ``download=True``: the dataset must already be prepared in
``data_dir`` (default: TFDS's own, ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``); prepare it
once with ``tfds build NAME --data_dir DIR`` on a machine that can reach the source.
"""

import numpy as np

from gradcon_tf.data.base import DataFileError, LabeledImages


def load_tfds(name, data_dir=None, download=False, splits=("train", "test")):
    """{split: LabeledImages} of TFDS dataset ``name`` (image + label features)."""
    import tensorflow_datasets as tfds

    try:
        loaded = tfds.load(
            name,
            split=list(splits),
            data_dir=data_dir,
            download=download,
            as_supervised=True,
        )
    except (AssertionError, FileNotFoundError) as error:  # not prepared in data_dir
        where = data_dir or "the default TFDS data_dir"
        raise DataFileError(
            f"tfds:{name}: not prepared in {where} ({error}); run `tfds build {name} "
            f"--data_dir DIR` where the source is reachable, or pass download=True"
        ) from None
    result = {}
    for split, dataset in zip(splits, loaded):
        # Batches, not batch_size=-1: the latter needs a known cardinality (mock data has none).
        parts = list(tfds.as_numpy(dataset.batch(4096)))
        if not parts:
            raise DataFileError(f"tfds:{name}: split {split!r} is empty")
        result[split] = LabeledImages(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
    return result
