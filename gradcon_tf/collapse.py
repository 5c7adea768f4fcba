"""What a collapsed start is: a dead decoder.

With the release's initialisation, Adam's first steps can drive the decoder's final sigmoid so
far into saturation that the model outputs (nearly) one image whatever the input, and, the
sigmoid's derivative being ~0, every gradient through it vanishes: the reconstruction loss stops
falling, often for good. Both halves are measured on held-out images, each relative to something
that does not depend on the data's brightness:

* ``variation``: how much the output changes from image to image, relative to how much the
  input does (mean over pixels of the std over images, output / input). 1 for a perfect
  reconstruction, 0 for an output that ignores its input.
* ``slope``: the mean derivative of the output sigmoid, ``y (1 - y)``, over every output value
  (0.25 at y = 0.5, 0 when saturated at either end); the factor every decoder gradient carries.

A decoder is dead when its sigmoid is saturated (slope below 0.0075, 3 % of its largest value)
and its output barely depends on the image (variation below 0.05): it ignores the input *and*
cannot learn not to. After their second epoch, runs that went on to train kept a slope of 0.023
or more, and an output that has not moved yet (grey, or the mean image) keeps a slope near 0.25
with a variation near 0; dead ones were at 0.003 or less, with variations up to 0.015.
Measured against 20-epoch outcomes on grayscale, inverted, thin-stroke, real (ELPV) and RGB
data: docs/initialisation.md.
"""

import math

import numpy as np

#: Dead when the output sigmoid's mean derivative is below this (0.25 is unsaturated)...
MAX_DEAD_SLOPE = 0.0075
#: ... and the output varies across images by less than this share of the input's variation.
MAX_DEAD_VARIATION = 0.05


def decoder_statistics(model, images, chunk=256):
    """``{"variation", "slope"}`` of ``model``'s reconstructions of ``images`` (see above).

    One pass over ``images`` in chunks, accumulating per-pixel sums and sums of squares (float64).
    """
    count, slope_sum, values = len(images), 0.0, 0
    sums = {"in": 0.0, "in2": 0.0, "out": 0.0, "out2": 0.0}
    for start in range(0, count, chunk):
        inputs = np.asarray(model.preprocess(images[start : start + chunk]), np.float64)
        outputs = np.asarray(model(images[start : start + chunk]), np.float64)
        for key, array in (("in", inputs), ("out", outputs)):
            sums[key] = sums[key] + array.sum(0)
            sums[key + "2"] = sums[key + "2"] + np.square(array).sum(0)
        slope_sum += float(np.sum(outputs * (1.0 - outputs)))
        values += outputs.size

    def mean_std(key):
        mean = sums[key] / count
        return float(np.mean(np.sqrt(np.maximum(sums[key + "2"] / count - mean**2, 0.0))))

    spread_in = mean_std("in")
    return {
        "variation": mean_std("out") / spread_in if spread_in > 0 else math.inf,
        "slope": slope_sum / values,
    }


def is_collapsed(statistics):
    """Whether :func:`decoder_statistics` describe a dead decoder."""
    return (
        statistics["variation"] < MAX_DEAD_VARIATION and statistics["slope"] < MAX_DEAD_SLOPE
    )


def describe(statistics):
    """One phrase for the log: what was measured, against the limits."""
    return (
        f"output variation across images {statistics['variation']:.2g} of the input's "
        f"(dead below {MAX_DEAD_VARIATION:g}), sigmoid slope {statistics['slope']:.2g} "
        f"(dead below {MAX_DEAD_SLOPE:g})"
    )


def is_dead(model, images):
    """Whether ``model``'s decoder is dead on ``images``."""
    return is_collapsed(decoder_statistics(model, images))
