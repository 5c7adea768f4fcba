"""A local image score from an anomaly map: where a defect is small, the image's mean washes it
out, while a blob of high map values stays.

``local_score(maps)`` blurs each map with a Gaussian (sigma :data:`BLUR_FRACTION` of the map's
shorter side, mirrored at the border; :func:`gradcon_tf.filters.gaussian_blur`) and averages
its highest :data:`TOP_FRACTION` of pixels (TOPK_V2 in LiteRT): TensorFlow ops only, so the
exported scoring graphs compute it as Keras does.
"""

import tensorflow as tf

from gradcon_tf.filters import gaussian_blur

#: The share of a map's pixels averaged (1 %: a 13x13 blob of a 128x128 map).
TOP_FRACTION = 0.01
#: The blur's sigma as a fraction of the map's shorter side (4 px at 128).
BLUR_FRACTION = 1 / 32


def local_score(maps, top_fraction=TOP_FRACTION, blur_fraction=BLUR_FRACTION):
    """(N,) the mean of the top ``top_fraction`` of the pixels of each blurred (N, H, W) map."""
    height, width = int(maps.shape[1]), int(maps.shape[2])
    blurred = gaussian_blur(maps[..., None], blur_fraction * min(height, width))
    count = max(1, int(round(top_fraction * height * width)))
    top = tf.math.top_k(tf.reshape(blurred, [-1, height * width]), k=count, sorted=False).values
    return tf.reduce_mean(top, axis=1)
