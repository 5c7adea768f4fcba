"""gradcon-tf: GradCon anomaly detection from backpropagated gradients, in TensorFlow/Keras.

The names below are imported on first use, so that ``import gradcon_tf`` (and the ``gradcon``
command's ``--help``) does not pay for importing TensorFlow.
"""

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    # the models, and loading them
    "GradCon": "gradcon_tf.model",
    "GradConVAE": "gradcon_tf.vae",
    "load_model": "gradcon_tf.saving",
    "build_encoder": "gradcon_tf.networks",
    "build_decoder": "gradcon_tf.networks",
    # training: the recipe, the callbacks and the optimizer it uses
    "train_one_class": "gradcon_tf.experiment",
    "evaluate_one_class": "gradcon_tf.experiment",
    "KeepBestWeights": "gradcon_tf.callbacks",
    "StopOnCollapse": "gradcon_tf.callbacks",
    "CalibrationWarning": "gradcon_tf.calibration",
    "StopOnNonFiniteLoss": "gradcon_tf.callbacks",
    "NonFiniteLossError": "gradcon_tf.callbacks",
    "CorrectedEpsilonAdam": "gradcon_tf.optimizers",
    # your own images: image folders (gradcon_tf.inspection)
    "load_normal_folder": "gradcon_tf.inspection",
    "normal_split": "gradcon_tf.inspection",
    "train_on_normal_folder": "gradcon_tf.inspection",
    "evaluate_folders": "gradcon_tf.inspection",
    "write_inspection_report": "gradcon_tf.inspection_report",
    # data and the paper's protocols
    "load_dataset": "gradcon_tf.data",
    "one_class_split": "gradcon_tf.splits",
}
#: names that differ from the defining module's
_RENAMED = {"load_dataset": "load"}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gradcon_tf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
