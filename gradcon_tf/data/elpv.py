"""The ELPV solar-cell images (Buerhop-Lutz et al. 2018; Deitsch et al. 2019), one-class.

2,624 grayscale 300x300 electroluminescence images of cells of mono- and polycrystalline modules,
each with the probability that it is defective (0, 1/3, 2/3, 1) given by experts. Installed with
``pip install elpv-dataset`` (the package bundles the images).

One-class protocol (:func:`elpv_one_class_split`): the training images are functional cells
(probability 0) of one module type (or both); a seeded 25 % of them is held out for the test set,
with every defective cell of that type (probability >= 2/3, or > 0); 10 % of the rest validates
and calibrates.
"""

import dataclasses
import os

import numpy as np

from gradcon_tf.data.base import DataFileError
from gradcon_tf.splits import OneClassSplit

MODULE_TYPES = ("mono", "poly", "both")
#: The defect probabilities a test set counts as defective: ``">=2/3"`` or ``">0"``.
DEFECT_CRITERIA = {">=2/3": 2 / 3 - 1e-9, ">0": 1e-9}
HELD_OUT_FRACTION = 0.25
VALIDATION_FRACTION = 0.1


@dataclasses.dataclass
class ElpvCells:
    images: np.ndarray  # (N, H, W, 1) uint8
    defect_probability: np.ndarray  # (N,) float
    module_type: np.ndarray  # (N,) "mono" / "poly"


def labels_csv_of(spec):
    """The labels file a spec names: ``elpv`` -> None (the ``elpv-dataset`` package's),
    ``elpv:LABELS_CSV`` -> LABELS_CSV; raises ValueError for another spec or a missing source."""
    kind, _, path = spec.partition(":")
    if kind != "elpv":
        raise ValueError(f"ELPV data is elpv or elpv:LABELS_CSV, got {spec!r}")
    if path and not os.path.isfile(path):
        raise ValueError(f"{spec}: no such file (expected the labels.csv beside the images/ folder)")
    if not path:
        import importlib.util

        if importlib.util.find_spec("elpv_dataset") is None:
            raise ValueError("ELPV needs the elpv-dataset package: pip install elpv-dataset")
    return path or None


def load_elpv(size=None, labels_csv=None):
    """The cells of ``elpv_dataset`` (or of ``labels_csv`` beside its images), resized to ``size``
    x ``size`` (bilinear) when given."""
    from PIL import Image

    if labels_csv is None:
        try:
            import elpv_dataset
        except ImportError as error:
            raise DataFileError(
                "ELPV needs the elpv-dataset package: pip install elpv-dataset"
            ) from error
        labels_csv = os.path.join(elpv_dataset.__path__[0], "data", "labels.csv")
    root = os.path.dirname(labels_csv)
    rows = [line.split() for line in open(labels_csv) if line.strip()]
    images = []
    for path, *_ in rows:
        with Image.open(os.path.join(root, path)) as image:
            image = image.convert("L")
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            images.append(np.asarray(image))
    return ElpvCells(
        images=np.stack(images)[..., None],
        defect_probability=np.array([float(r[1]) for r in rows]),
        module_type=np.array([r[2] for r in rows]),
    )


@dataclasses.dataclass
class ElpvSplit:
    """Indices into the cells of one one-class split (:func:`elpv_split_indices`)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray  # held-out functional and defective cells, shuffled
    test_is_anomaly: np.ndarray  # (len(test),) bool


def elpv_split_indices(cells, module_type="both", seed=0, defective=">=2/3"):
    """Train on functional cells of ``module_type``; test on held-out functional vs defective.

    The seed draws the held-out functional cells (the same for either ``defective``, so one
    model serves both test sets) and the test order."""
    if module_type not in MODULE_TYPES:
        raise ValueError(f"module_type must be one of {MODULE_TYPES}, got {module_type!r}")
    if defective not in DEFECT_CRITERIA:
        raise ValueError(f"defective must be one of {tuple(DEFECT_CRITERIA)}, got {defective!r}")
    chosen = np.ones(len(cells.module_type), bool)
    if module_type != "both":
        chosen = cells.module_type == module_type
    rng = np.random.default_rng(seed)
    functional = rng.permutation(np.flatnonzero(chosen & (cells.defect_probability == 0)))
    defects = np.flatnonzero(chosen & (cells.defect_probability > DEFECT_CRITERIA[defective]))
    n_held_out = int(round(HELD_OUT_FRACTION * len(functional)))
    training = functional[n_held_out:]
    n_validation = int(round(VALIDATION_FRACTION * len(training)))
    test = np.concatenate([functional[:n_held_out], defects])
    is_anomaly = np.concatenate([np.zeros(n_held_out, bool), np.ones(len(defects), bool)])
    order = rng.permutation(len(test))
    return ElpvSplit(training[n_validation:], training[:n_validation], test[order], is_anomaly[order])


def elpv_one_class_split(cells, module_type="both", seed=0, defective=">=2/3"):
    """The images of :func:`elpv_split_indices`' split, as a one-class split."""
    indices = elpv_split_indices(cells, module_type, seed, defective)
    return OneClassSplit(
        train=cells.images[indices.train],
        validation=cells.images[indices.validation],
        test=cells.images[indices.test],
        test_is_anomaly=indices.test_is_anomaly,
    )
