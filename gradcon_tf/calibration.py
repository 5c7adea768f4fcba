"""Calibration on held-out normal images: the decision threshold at a false-positive rate, the
conformal p-values and the overlays' shared map scales, and :class:`Calibrated`, which gives
``GradCon`` its ``threshold``, ``calibrate`` and ``p_values``. NumPy only; the exported graph
computes the same p-values in TensorFlow ops (``scoring_graph``, tested equal)."""

import math
import warnings

import numpy as np

from gradcon_tf.portable.map_scales import map_scale
from gradcon_tf.portable.signatures import MAP_NAMES

#: ``calibrate()`` warns when fewer held-out normal images than this score above the threshold.
MIN_SCORES_ABOVE_THRESHOLD = 10
#: Map scales are taken from at most this many pixels a side of each map: maps are computed at
#: the network's 28x28 and resized, so this grid loses nothing at 28x28.
MAP_SAMPLE_SIZE = 28


class CalibrationWarning(UserWarning):
    """Too few normal images to calibrate the threshold or the p-values at the requested fpr."""


def checked_fpr(fpr):
    """``fpr`` as a float; a ValueError unless it is in (0, 1)."""
    fpr = float(fpr)
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}.")
    return fpr


def threshold_at(scores, fpr):
    """The threshold above which at most a share ``fpr`` of ``scores`` lie: their (1 - fpr)
    quantile, taken at a score (``method="higher"``)."""
    return float(np.quantile(scores, 1.0 - checked_fpr(fpr), method="higher"))


def conformal_p_values(calibration_scores, scores):
    """``(1 + #{calibration scores >= s}) / (n + 1)`` for each s of ``scores``, against the sorted
    ``calibration_scores`` of n normal images. Under the hypothesis that an image is normal
    (exchangeable with the calibration images) ``P(p <= a) <= a`` for every level a."""
    reference = np.asarray(calibration_scores)
    at_or_above = len(reference) - np.searchsorted(reference, np.asarray(scores), side="left")
    return (1.0 + at_or_above) / (len(reference) + 1.0)


def map_sample(maps):
    """(N, H, W) maps on a grid of at most :data:`MAP_SAMPLE_SIZE` pixels a side."""
    step_y = max(1, maps.shape[1] // MAP_SAMPLE_SIZE)
    step_x = max(1, maps.shape[2] // MAP_SAMPLE_SIZE)
    return maps[:, ::step_y, ::step_x]


def map_scales(samples):
    """{map name: the scale of all its sampled values} from {map name: [map_sample arrays]}."""
    return {name: map_scale(np.concatenate(parts)) for name, parts in samples.items()}


def calibration_shortfall(count, fpr):
    """Why ``count`` normal images are too few to calibrate at ``fpr``, or None if they are not.

    The threshold is an order statistic: with ``n * fpr`` images above it, the false-positive
    rate it gives on new normal images varies by about ``sqrt(fpr (1 - fpr) / n)``, and no
    conformal p-value is below ``1 / (n + 1)``.
    """
    above = int(math.floor(count * fpr))
    needed = int(math.ceil(MIN_SCORES_ABOVE_THRESHOLD / fpr))
    if above >= MIN_SCORES_ABOVE_THRESHOLD and 1.0 / (count + 1) <= fpr:
        return None
    return (
        f"calibrating at fpr={fpr:g} on {count} normal images: {above} score above the "
        f"threshold, so the false-positive rate on new images may be far from {fpr:g}"
        + (
            f", and p_value is never below 1/{count + 1} = {1 / (count + 1):.3g}"
            if 1.0 / (count + 1) > fpr
            else ""
        )
        + f"; use at least {needed} images ({MIN_SCORES_ABOVE_THRESHOLD} above the threshold)."
    )


class Calibrated:
    """``threshold``, ``calibrate`` and ``p_values`` for :class:`gradcon_tf.model.GradCon` (a
    mixin): the threshold lives in the model's ``_threshold`` weight (NaN: none), so that it is
    saved with it; the sorted calibration scores and ``map_scales`` beside the weights
    (:mod:`gradcon_tf.saving`)."""

    @property
    def threshold(self):
        """Decision threshold on the score (None until set or calibrated)."""
        value = float(np.asarray(self._threshold))
        return None if math.isnan(value) else value

    @threshold.setter
    def threshold(self, value):
        if value is None:
            self._threshold.assign(float("nan"))
            return
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"threshold must be a finite number, got {value}.")
        self._threshold.assign(value)

    def calibrate(self, normal_images, fpr=0.05, batch_size=256, maps=True):
        """Set the threshold so that at most ``fpr`` of held-out *normal* images score above it,
        and keep their sorted scores: :meth:`score` then also returns conformal p-values.
        ``maps``: also keep the 99th percentile of their anomaly maps (:attr:`map_scales`), the
        shared scale of overlays (``gradcon score --maps DIR --map-scale calibration``): about
        twice the time; memory holds one batch of maps and at most
        :data:`MAP_SAMPLE_SIZE` squared values per image and map.

        Warns (:class:`CalibrationWarning`) when the images are too few for ``fpr``: fewer than
        :data:`MIN_SCORES_ABOVE_THRESHOLD` of them above the threshold, or ``1/(n+1) > fpr``
        (no p-value can then be as low as ``fpr``).
        """
        fpr = checked_fpr(fpr)  # before any scoring
        scores, samples = [], {name: [] for name in MAP_NAMES}
        for part in self._scored_batches(normal_images, batch_size, maps):
            scores.append(part["score"])
            for name in samples if maps else ():
                samples[name].append(map_sample(part[name]))
        scores = np.concatenate(scores)
        if maps:
            self.map_scales = map_scales(samples)
        self.calibration_scores = np.sort(scores.astype(np.float64))
        self.threshold = threshold_at(scores, fpr)
        problem = calibration_shortfall(len(scores), fpr)
        if problem:
            warnings.warn(problem, CalibrationWarning, stacklevel=2)
        return self.threshold

    def p_values(self, scores):
        """Conformal p-values of ``scores`` against the calibration scores (normal images):
        ``(1 + #{calibration scores >= s}) / (n + 1)`` (:func:`conformal_p_values`)."""
        if self.calibration_scores is None:
            raise ValueError("no calibration scores: call calibrate() with normal images first.")
        return conformal_p_values(self.calibration_scores, scores)
