"""LiteRT (TFLite) conversion of the exported SavedModel, builtin ops only.

One function per target. Each converts the SavedModel's signatures (keys as in the SavedModel) with
``TFLITE_BUILTINS`` only and then checks the converted operator list: a Flex (``Flex*``) or custom
op would need a runtime the stock ``ai-edge-litert`` does not have, so it is an error here.

* :func:`to_float32`: the reference; matches Keras to ~1e-7.
* :func:`to_float16`: weights stored as float16 (half the size), computed in float32.
* :func:`to_dynamic_int8`: weights stored as int8, activations float (dynamic-range quantization).
* :func:`to_full_int8`: weights and activations int8 where the kernels allow it, calibrated on a
  representative set of normal images; float32 input and outputs, float ops where no int8 kernel
  exists. The plain float signature only.
"""

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.python import schema_util

from gradcon_tf.scoring_graph import (
    FLOAT_SIGNATURE, INPUT_NAME, MAPS_FLOAT_SIGNATURE, MAPS_UINT8_SIGNATURE, UINT8_SIGNATURE,
)

_OPERATOR_NAMES = {
    value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}


class NonBuiltinOpError(RuntimeError):
    """The converted model needs ops that the stock LiteRT runtime does not have."""


def operator_names(model_content):
    """The distinct operator names a ``.tflite`` flatbuffer uses (custom ops by their code)."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_content), 0)
    names = set()
    for code in model.operatorCodes:
        builtin = schema_util.get_builtin_code_from_operator_code(code)
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            names.add(f"CUSTOM:{custom}")
        else:
            names.add(_OPERATOR_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(names)


def check_builtin_only(model_content):
    """Raise :class:`NonBuiltinOpError` if the model holds a Flex or custom op; else its op names."""
    names = operator_names(model_content)
    foreign = [n for n in names if n.startswith("CUSTOM:") or "FLEX" in n.upper()]
    if foreign:
        raise NonBuiltinOpError(
            f"the LiteRT model needs non-builtin ops {foreign}; the stock ai-edge-litert runtime "
            "cannot run them. The decoder must be one gradcon_tf.gradients.plan_decoder accepts."
        )
    return names


def _converter(saved_model_dir, signature_keys):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=list(signature_keys)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    return converter


def _convert(converter):
    model_content = converter.convert()
    check_builtin_only(model_content)
    return model_content


ALL_SIGNATURES = (FLOAT_SIGNATURE, UINT8_SIGNATURE, MAPS_FLOAT_SIGNATURE, MAPS_UINT8_SIGNATURE)


def to_float32(saved_model_dir):
    return _convert(_converter(saved_model_dir, ALL_SIGNATURES))


def to_float16(saved_model_dir):
    converter = _converter(saved_model_dir, ALL_SIGNATURES)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return _convert(converter)


def to_dynamic_int8(saved_model_dir):
    converter = _converter(saved_model_dir, ALL_SIGNATURES)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return _convert(converter)


def to_full_int8(saved_model_dir, representative_images, max_samples=200):
    """Full-integer quantization calibrated on ``representative_images`` (normal, float in [0, 1])."""
    images = np.asarray(representative_images, dtype=np.float32)[:max_samples]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"representative_images must be a non-empty NHWC batch, got {images.shape}.")

    def representative_dataset():
        for image in images:
            yield {INPUT_NAME: image[None]}

    converter = _converter(saved_model_dir, (FLOAT_SIGNATURE,))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    return _convert(converter)


#: file-name tag -> converter, in the order they are written.
TARGETS = {
    "f32": to_float32,
    "f16": to_float16,
    "dynamic_int8": to_dynamic_int8,
}
