"""Image filters the model's graph applies (TensorFlow ops only: MIRROR_PAD and CONV_2D in
LiteRT, so the exported scoring graphs filter as Keras does).

:func:`gaussian_blur` smooths maps for the local image score (:mod:`gradcon_tf.local_score`);
:func:`remove_illumination` takes a slowly varying brightness (exposure, a light gradient)
out of the network input, keeping the local structure where small defects are.
"""

import math

import numpy as np
import tensorflow as tf

#: The blur kernel reaches this many sigmas on each side.
TRUNCATE = 3.0
#: remove_illumination's blur sigma as a fraction of the image's shorter side.
ILLUMINATION_SIGMA_FRACTION = 1 / 16


def gaussian_kernel(sigma):
    """The normalised 1-D Gaussian of ``sigma``, radius ceil(TRUNCATE sigma) (float32)."""
    radius = max(1, int(math.ceil(TRUNCATE * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_blur(images, sigma):
    """(N, H, W, C) images blurred channel by channel with a Gaussian of ``sigma`` pixels,
    mirrored at the border (separable: a column pass, then a row pass)."""
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    height, width, channels = int(images.shape[1]), int(images.shape[2]), int(images.shape[3])
    if radius >= min(height, width):
        raise ValueError(f"{height}x{width} images are too small for a blur of radius {radius}")
    x = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    column = np.tile(kernel.reshape(-1, 1, 1, 1), (1, 1, channels, 1))
    row = np.tile(kernel.reshape(1, -1, 1, 1), (1, 1, channels, 1))
    x = tf.nn.depthwise_conv2d(x, tf.constant(column), [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, tf.constant(row), [1, 1, 1, 1], "VALID")


def remove_illumination(images):
    """0.5 + x - blur(x), clipped to [0, 1]: each image minus its Gaussian blur (sigma
    :data:`ILLUMINATION_SIGMA_FRACTION` of its shorter side), around mid-grey."""
    sigma = ILLUMINATION_SIGMA_FRACTION * min(int(images.shape[1]), int(images.shape[2]))
    return tf.clip_by_value(0.5 + images - gaussian_blur(images, sigma), 0.0, 1.0)
