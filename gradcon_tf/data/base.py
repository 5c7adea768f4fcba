"""The container every loader returns, and the error every loader raises for a bad file."""

import dataclasses
import fractions

import numpy as np


class DataFileError(ValueError):
    """A data file is missing, truncated or malformed; the message names the file."""


@dataclasses.dataclass
class LabeledImages:
    images: np.ndarray  # (N, H, W, C), uint8 or float in [0, 1]
    labels: np.ndarray  # (N,) integer class ids

    def __post_init__(self):
        self.images = np.asarray(self.images)
        if self.images.ndim == 3:
            self.images = self.images[..., None]
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, H, W[, C]), got shape {self.images.shape}.")
        self.labels = np.asarray(self.labels).astype(np.int64).reshape(-1)
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"{len(self.images)} images but {len(self.labels)} labels; they must match."
            )

    def __len__(self):
        return len(self.labels)

    def subset(self, index):
        return LabeledImages(self.images[index], self.labels[index])

    def resized(self, shape):
        """The same images at ``shape`` = (H, W, C) (bilinear; same dtype); C must match."""
        height, width, channels = shape
        if self.images.shape[-1] != channels:
            raise ValueError(
                f"the images have {self.images.shape[-1]} channel(s), the shape asked for "
                f"{channels}."
            )
        if self.images.shape[1:3] == (height, width):
            return self
        import tensorflow as tf

        resized = tf.image.resize(self.images, (height, width), method="bilinear").numpy()
        if self.images.dtype == np.uint8:
            resized = np.clip(np.round(resized), 0, 255).astype(np.uint8)
        return LabeledImages(resized.astype(self.images.dtype, copy=False), self.labels)


def concatenate(*parts):
    """One LabeledImages holding ``parts`` in order (e.g. train + test, pooled for GPND)."""
    return LabeledImages(
        np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts])
    )


def stratified_split(images, labels, test_fraction, seed):
    """{"train", "test"} with ``test_fraction`` of each class (rounded down) in "test"."""
    labels = np.asarray(labels).reshape(-1)
    fraction = fractions.Fraction(test_fraction).limit_denominator(1000)  # exact for 1/3 etc.
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test[members[: len(members) * fraction.numerator // fraction.denominator]] = True
    return {
        "train": LabeledImages(images[~test], labels[~test]),
        "test": LabeledImages(images[test], labels[test]),
    }
