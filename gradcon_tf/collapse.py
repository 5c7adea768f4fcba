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

A decoder is dead when both are near zero: its output barely depends on the image *and* it
cannot learn to. Healthy early reconstructions, blurry and dim as they may be, keep a variation
of a few percent or more, and a grey output that has not moved yet keeps a slope near 0.25.
Measured against 20-epoch outcomes on grayscale, inverted, thin-stroke, real (ELPV) and RGB
data: docs/initialisation.md.
"""

import math

import numpy as np

#: Dead when the output varies across images by less than this share of the input's variation...
MAX_DEAD_VARIATION = 0.01
#: ... and the output sigmoid's mean derivative is below this (0.25 is unsaturated).
MAX_DEAD_SLOPE = 0.01


def decoder_statistics(model, images, chunk=256):
    """``{"variation", "slope"}`` of ``model``'s reconstructions of ``images`` (see above).

    Two passes over ``images`` in chunks: means first, then the spreads, so memory stays flat.
    """
    count = len(images)
    sums = None
    input_sums = None
    slope_sum, values = 0.0, 0
    for start in range(0, count, chunk):
        inputs, outputs = _pair(model, images[start : start + chunk])
        sums = outputs.sum(0) if sums is None else sums + outputs.sum(0)
        input_sums = inputs.sum(0) if input_sums is None else input_sums + inputs.sum(0)
        slope_sum += float(np.sum(outputs * (1.0 - outputs)))
        values += outputs.size
    mean_out, mean_in = sums / count, input_sums / count
    spread_out = spread_in = 0.0
    for start in range(0, count, chunk):
        inputs, outputs = _pair(model, images[start : start + chunk])
        spread_out = spread_out + np.sum((outputs - mean_out) ** 2, axis=0)
        spread_in = spread_in + np.sum((inputs - mean_in) ** 2, axis=0)
    std_out = float(np.mean(np.sqrt(spread_out / count)))
    std_in = float(np.mean(np.sqrt(spread_in / count)))
    return {
        "variation": std_out / std_in if std_in > 0 else math.inf,
        "slope": slope_sum / values,
    }


def _pair(model, images):
    inputs = np.asarray(model.preprocess(images), np.float64)
    outputs = np.asarray(model(images), np.float64)
    return inputs, outputs


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
