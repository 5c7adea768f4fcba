"""An independent baseline beside GradCon: PCA reconstruction error of the flattened pixels.

The principal components of the training images (NumPy's SVD of the centred pixel matrix); an
image's score is the mean squared error of its projection onto the first ``components``.
"""

import numpy as np

#: Components kept (fewer when there are fewer training images).
DEFAULT_COMPONENTS = 50


def _flat(images):
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return images.reshape(len(images), -1).astype(np.float64) / scale


def pca_scores(train_images, images, components=DEFAULT_COMPONENTS):
    """Per image of ``images``, the mean squared error of its reconstruction from the first
    ``components`` principal components of ``train_images`` (uint8 or [0, 1] floats)."""
    train, test = _flat(train_images), _flat(images)
    mean = train.mean(axis=0)
    _, _, basis = np.linalg.svd(train - mean, full_matrices=False)
    basis = basis[: min(components, len(train) - 1)]
    centred = test - mean
    reconstruction = centred @ basis.T @ basis
    return np.mean((reconstruction - centred) ** 2, axis=1)
