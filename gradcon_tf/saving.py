"""GradCon's files: crash-safe ``save`` / ``save_weights``, the scoring SavedModel of ``export``,
the calibration and training record kept beside the weights, and :func:`load_model`."""

import importlib
import json
import os

import keras
import numpy as np

from gradcon_tf import _files as files
from gradcon_tf import model_files
from gradcon_tf.portable.signatures import MAP_NAMES

#: Where :meth:`SavedState.save_own_variables` stores the sorted calibration scores.
CALIBRATION_SCORES_KEY = "calibration_scores"
#: Where it stores the calibration images' map scales (``GradCon.map_scales``).
MAP_SCALES_KEY = "map_scales"
#: Where it stores what training recorded (``selected_epoch``, ``collapsed_starts``), as JSON.
TRAINING_RECORD_KEY = "training_record"


class SavedState:
    """What :class:`gradcon_tf.model.GradCon` writes and reads beyond Keras' own (a mixin)."""

    def save(self, filepath, overwrite=True, **kwargs):
        """``keras.Model.save``, written under a temporary name and renamed (crash-safe)."""
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False.")
        with files.atomic_output(filepath) as temporary:
            super().save(temporary, overwrite=True, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """``keras.Model.save_weights``, crash-safe like :meth:`save` (BackupAndRestore uses it)."""
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False.")
        with files.atomic_output(filepath) as temporary:
            super().save_weights(temporary, overwrite=True, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=True, **kwargs):
        """``keras.Model.export`` for GradCon: the scoring SavedModel at ``filepath``.

        Its signatures (``serving_default`` for float images, ``score_uint8``) compute the
        per-sample scores, gradients included, as :func:`gradcon_tf.export.export_model` writes
        them; ``gradcon export`` also writes TF Serving's version folder and the LiteRT models.
        """
        if format != "tf_saved_model" or kwargs:
            raise ValueError(
                "GradCon.export writes the scoring SavedModel only (format='tf_saved_model'); "
                "for LiteRT and TF Serving's layout use `gradcon export MODEL.keras --out DIR`."
            )
        import tensorflow as tf

        from gradcon_tf.scoring_graph import ScoringModule

        module = ScoringModule(self)
        with files.atomic_output(os.fspath(filepath), directory=True) as temporary:
            tf.saved_model.save(module, temporary, signatures=module.signatures())
        if verbose:
            print(f"Saved the GradCon scoring SavedModel to {filepath} (`gradcon export` also "
                  "writes the LiteRT models).")


    def save_own_variables(self, store):
        """The model's variables, the calibration scores when there are some, and what training
        recorded (``selected_epoch``, ``collapsed_starts``)."""
        super().save_own_variables(store)
        if self.calibration_scores is not None:
            store[CALIBRATION_SCORES_KEY] = self.calibration_scores
        if self.map_scales is not None:
            store[MAP_SCALES_KEY] = np.array([self.map_scales[n] for n in MAP_NAMES], np.float64)
        record = {"selected_epoch": self.selected_epoch, "collapsed_starts": self.collapsed_starts}
        store[TRAINING_RECORD_KEY] = np.frombuffer(json.dumps(record).encode(), np.uint8)

    def load_own_variables(self, store):
        """Files without calibration scores load without (score() gives no p_value); files
        without a training record load with ``selected_epoch`` None, files without map scales
        with ``map_scales`` None."""
        extras = (CALIBRATION_SCORES_KEY, MAP_SCALES_KEY, TRAINING_RECORD_KEY)
        super().load_own_variables({k: store[k] for k in store.keys() if k not in extras})
        if CALIBRATION_SCORES_KEY in store:
            self.calibration_scores = np.asarray(store[CALIBRATION_SCORES_KEY], np.float64)
        if MAP_SCALES_KEY in store:
            values = np.asarray(store[MAP_SCALES_KEY], np.float64)
            self.map_scales = dict(zip(MAP_NAMES, map(float, values)))
        if TRAINING_RECORD_KEY in store:
            record = json.loads(np.asarray(store[TRAINING_RECORD_KEY], np.uint8).tobytes())
            self.selected_epoch = record["selected_epoch"]
            self.collapsed_starts = list(record["collapsed_starts"])



def load_model(path):
    """Load a saved GradCon model (Keras safe mode), or raise an error saying what ``path`` is."""
    from gradcon_tf.model import GradCon

    importlib.import_module("gradcon_tf.vae")  # registers GradConVAE, which Keras may need

    path = model_files.check_model_file(path)
    try:
        model = keras.models.load_model(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: cannot load a Keras model ({error})") from None
    if not isinstance(model, GradCon):
        raise ValueError(f"{path}: not a GradCon model (it holds a {type(model).__name__}).")
    return model
