"""A local image score from an anomaly map: where a defect is small, the image's mean washes it
out, while a blob of high map values stays.

``local_score(maps)`` blurs each map with a Gaussian (sigma :data:`BLUR_FRACTION` of the map's
shorter side, mirrored at the border) and averages its highest :data:`TOP_FRACTION` of pixels.
TensorFlow ops only (MIRROR_PAD, CONV_2D, TOPK_V2 in LiteRT), so the exported scoring graphs
compute it as Keras does.
"""

import math

import numpy as np
import tensorflow as tf

#: The share of a map's pixels averaged (1 %: a 13x13 blob of a 128x128 map).
TOP_FRACTION = 0.01
#: The blur's sigma as a fraction of the map's shorter side (4 px at 128).
BLUR_FRACTION = 1 / 32
#: The blur kernel reaches this many sigmas on each side.
TRUNCATE = 3.0


def gaussian_kernel(sigma):
    """The normalised 1-D Gaussian of ``sigma``, radius ceil(TRUNCATE sigma) (float32)."""
    radius = max(1, int(math.ceil(TRUNCATE * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def local_score(maps, top_fraction=TOP_FRACTION, blur_fraction=BLUR_FRACTION):
    """(N,) the mean of the top ``top_fraction`` of the pixels of each blurred (N, H, W) map."""
    height, width = int(maps.shape[1]), int(maps.shape[2])
    kernel = gaussian_kernel(blur_fraction * min(height, width))
    radius = len(kernel) // 2
    if radius >= min(height, width):
        raise ValueError(f"maps of {height}x{width} are too small for a blur of radius {radius}")
    x = tf.pad(maps[..., None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    x = tf.nn.conv2d(x, tf.constant(kernel.reshape(-1, 1, 1, 1)), 1, "VALID")
    x = tf.nn.conv2d(x, tf.constant(kernel.reshape(1, -1, 1, 1)), 1, "VALID")
    count = max(1, int(round(top_fraction * height * width)))
    top = tf.math.top_k(tf.reshape(x, [-1, height * width]), k=count, sorted=False).values
    return tf.reduce_mean(top, axis=1)
