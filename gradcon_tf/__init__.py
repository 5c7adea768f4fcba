"""gradcon-tf: GradCon anomaly detection from backpropagated gradients, in TensorFlow/Keras.

The names below are imported on first use, so that ``import gradcon_tf`` (and the ``gradcon``
command's ``--help``) does not pay for importing TensorFlow.
"""

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "GradCon": "gradcon_tf.model",
    "load_model": "gradcon_tf.model",
    "GradConVAE": "gradcon_tf.vae",
    "build_encoder": "gradcon_tf.networks",
    "build_decoder": "gradcon_tf.networks",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gradcon_tf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
