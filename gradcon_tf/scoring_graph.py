"""The scoring graph of a GradCon model: a ``tf.Module`` with signatures per input dtype.

``GradCon.export`` saves it as a SavedModel; ``gradcon_tf.export`` writes it as the SavedModel
of TF Serving and the LiteRT models.

The plain signatures (``serving_default`` for float32 images in [0, 1], ``score_uint8`` for uint8)
take a batch of NHWC images of the model's input shape and return, per image:

* ``score`` (float32): recon + beta * grad_loss (``image_score="local"``: the local score of
  the score map), higher = more anomalous;
* ``recon`` (float32): the image's reconstruction MSE;
* ``grad_loss`` (float32): -mean over the decoder layers of the gradient cosines;
* ``layer_cosines`` (float32, (N, layers)): cosine of the image's own decoder-kernel gradient to
  the trained reference gradient, per layer (latent side first);
* ``is_anomaly`` (bool): ``score > threshold``;
* ``threshold`` (float32): the decision threshold, repeated per image (TF Serving's row format
  needs every output to have the batch dimension);
* ``p_value`` (float32): the conformal p-value against the model's calibration scores (frozen
  into the graph), as :meth:`gradcon_tf.GradCon.p_values`; NaN for a model never calibrated.

The map signatures (``maps`` float32, ``maps_uint8``) return the same and the anomaly maps of
:meth:`gradcon_tf.GradCon.per_sample_scores` (``maps=True``), (N, H, W) float32 each:
``recon_map``, ``grad_map`` and ``score_map``, and ``map_scales`` ((N, 3) float32: the model's
:attr:`gradcon_tf.GradCon.map_scales` in that order, repeated per image; NaN when it has none),
the shared colour scale of overlays. They cost more (a forward tangent per decoder
layer), so the plain signatures stay as fast as before.

The threshold is NaN when the model was never calibrated; then ``is_anomaly`` is all False
(every comparison with NaN is false). The per-sample gradients are computed inside the graph, for
the whole batch at once, by :meth:`gradcon_tf.GradCon.per_sample_scores` (fast path:
:func:`gradcon_tf.gradients.decoder_scores`): Keras scoring and both exports run the same code.
"""

import math

import tensorflow as tf

# Signature keys and output names, shared by the SavedModel, the LiteRT models and gradcon-edge.
from gradcon_tf.portable.signatures import (  # noqa: F401 (OUTPUT_NAMES: this module's API)
    FLOAT_SIGNATURE, INPUT_NAME, MAP_NAMES, MAP_SCALES, MAPS_FLOAT_SIGNATURE, MAPS_UINT8_SIGNATURE,
    OUTPUT_NAMES, UINT8_SIGNATURE,
)


class ScoringModule(tf.Module):
    """Per-image GradCon scores of a trained :class:`gradcon_tf.GradCon`, as exportable functions.

    Args:
      model: a trained ``GradCon``.
      threshold: decision threshold on the score; default: the model's own (NaN if it has none).
    """

    def __init__(self, model, threshold=None):
        super().__init__(name="gradcon_scorer")
        if threshold is None:
            threshold = model.threshold
        threshold = math.nan if threshold is None else float(threshold)
        # Track the model's variables explicitly (the Keras model itself is not a tf.Module
        # child): the SavedModel stores them and the LiteRT converter can freeze them.
        self.model_variables = [getattr(v, "value", v) for v in model.weights]
        self.threshold = tf.Variable(threshold, dtype=tf.float32, trainable=False, name="threshold")
        self.image_shape = tuple(model.image_shape)
        score_batch = model.per_sample_scores  # a plain callable: not tracked, not saved
        p_values = _conformal_p_values(model.calibration_scores)
        scales = [math.nan] * len(MAP_NAMES) if model.map_scales is None else [
            model.map_scales[name] for name in MAP_NAMES]
        self.map_scales = tf.constant(scales, tf.float32)

        def outputs(images, maps=False):
            scores = score_batch(images, maps=maps)
            score = scores["score"]
            result = {
                "score": score,
                "recon": scores["recon"],
                "grad_loss": scores["grad_loss"],
                "layer_cosines": scores["layer_cosines"],
                "is_anomaly": tf.greater(score, self.threshold),
                "threshold": tf.fill(tf.shape(score), self.threshold),
                "p_value": p_values(score),
            }
            if maps:
                result.update({name: scores[name] for name in MAP_NAMES})
                result[MAP_SCALES] = tf.tile(self.map_scales[None, :], [tf.shape(score)[0], 1])
            return result

        shape = [None, *self.image_shape]
        float_spec = [tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)]
        uint8_spec = [tf.TensorSpec(shape, tf.uint8, name=INPUT_NAME)]
        self.score_float32 = tf.function(outputs, input_signature=float_spec)
        self.score_uint8 = tf.function(outputs, input_signature=uint8_spec)
        self.maps_float32 = tf.function(lambda images: outputs(images, True), input_signature=float_spec)
        self.maps_uint8 = tf.function(lambda images: outputs(images, True), input_signature=uint8_spec)

    def signatures(self):
        """``{signature key: concrete function}`` for ``tf.saved_model.save``."""
        return {
            FLOAT_SIGNATURE: self.score_float32.get_concrete_function(),
            UINT8_SIGNATURE: self.score_uint8.get_concrete_function(),
            MAPS_FLOAT_SIGNATURE: self.maps_float32.get_concrete_function(),
            MAPS_UINT8_SIGNATURE: self.maps_uint8.get_concrete_function(),
        }


def _conformal_p_values(calibration_scores):
    """``score -> (1 + #{calibration scores >= score}) / (n + 1)`` in builtin ops (a compare and
    a sum over the n scores), or NaN per image when there are no calibration scores."""
    if calibration_scores is None or len(calibration_scores) == 0:
        return lambda score: tf.fill(tf.shape(score), math.nan)
    reference = tf.constant(calibration_scores, tf.float32)[None, :]
    count = float(len(calibration_scores))

    def p_values(score):
        at_or_above = tf.reduce_sum(tf.cast(reference >= score[:, None], tf.float32), axis=1)
        return (1.0 + at_or_above) / (count + 1.0)

    return p_values
