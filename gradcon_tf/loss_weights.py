"""The weights of the gradient terms: alpha in Eq. 6, beta in the anomaly score.

The reconstruction error L is an MSE, so it scales with the images' contrast, while the gradient
loss (minus a mean cosine) does not: the same alpha weighs the constraint far more on low-contrast
images. The paper set alpha = 0.03 (and beta = 4 alpha) on MNIST and CIFAR-10, where the pixel
variance across the images of a class is about :data:`PAPER_PIXEL_VARIANCE`; on ELPV's solar cells
it is 0.008-0.013, and the paper's alpha there keeps the autoencoder from learning (validation
MSE stuck near 0.015, with spikes, where alpha = 0 reaches 0.002: docs/own_images.md).

``"data"`` weights keep the paper's balance on any data: alpha and beta scaled by the training
images' pixel variance over the paper's, ``alpha = 0.03 * V / PAPER_PIXEL_VARIANCE``.
"""

import numpy as np

from gradcon_tf.model import DEFAULT_ALPHA

#: The two choices: the paper's constants, or those scaled to the training images' variance.
LOSS_WEIGHTS = ("paper", "data")
#: Mean over pixels of the variance across images of one MNIST class (the ten classes' first
#: 2,000 training images: 0.029-0.065, mean 0.054): the data the paper's alpha was set on.
PAPER_PIXEL_VARIANCE = 0.054
#: Images read to measure the variance (a seeded subset of larger sets).
MAX_IMAGES = 4096
#: On a backbone's standardised features alpha and beta are this share of their data-scaled
#: values (beta = 4 alpha still): the full constraint lowered the reconstruction's detection on
#: features, monotonically in alpha (docs/features.md).
FEATURE_ALPHA_SHARE = 0.1


def pixel_variance(images):
    """Mean over pixels and channels of the pixel's variance across ``images`` (uint8 or [0, 1])."""
    images = np.asarray(images)
    if len(images) > MAX_IMAGES:
        images = images[np.random.default_rng(0).choice(len(images), MAX_IMAGES, replace=False)]
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return float(np.mean(np.var(images.astype(np.float64) / scale, axis=0)))


def loss_weights(choice, images=None, alpha=DEFAULT_ALPHA):
    """``{"alpha", "beta"}`` for ``choice`` (:data:`LOSS_WEIGHTS`); ``"data"`` measures
    ``images`` (beta = 4 alpha as in the paper; alpha 0, the plain CAE, stays 0 and beta 0.12)."""
    if choice not in LOSS_WEIGHTS:
        raise ValueError(f"loss weights must be one of {LOSS_WEIGHTS}, got {choice!r}")
    scale = 1.0 if choice == "paper" else pixel_variance(images) / PAPER_PIXEL_VARIANCE
    if alpha == 0:
        return {"alpha": 0.0, "beta": 4.0 * DEFAULT_ALPHA * scale}
    return {"alpha": alpha * scale, "beta": 4.0 * alpha * scale}
