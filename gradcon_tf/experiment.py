"""Train GradCon on one inlier class and measure how well its scores find the outliers."""

import sys

import keras
import numpy as np

from gradcon_tf import evaluation
from gradcon_tf.callbacks import KeepBestWeights, StopOnBlankReconstruction
from gradcon_tf.model import DEFAULT_ALPHA, DEFAULT_BATCH_SIZE, GradCon
from gradcon_tf.vae import GradConVAE

#: Initial weights drawn at most this many times when collapsed starts are redrawn.
MAX_INITIALIZATION_DRAWS = 5
#: Draw k > 0 of a run with seed s seeds everything with s + k * INITIALIZATION_SEED_STRIDE.
INITIALIZATION_SEED_STRIDE = 10_000

#: The autoencoders of Table 1 -> (model class, alpha). Without the constraint (alpha 0) the
#: running averages of the decoder gradients are still kept, so the gradient loss is a score too.
METHODS = {
    "gradcon": (GradCon, DEFAULT_ALPHA),  # CAE + Grad
    "cae": (GradCon, 0.0),
    "vae": (GradConVAE, 0.0),
    "vae-grad": (GradConVAE, DEFAULT_ALPHA),
}


def method_arguments(method):
    """alpha and beta of the model of Table 1 named ``method`` (beta: the paper's 4 * 0.03)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return {"alpha": METHODS[method][1], "beta": 4.0 * DEFAULT_ALPHA}


def build_model(method, input_shape, output_bias_from_data=True):
    """The model of Table 1 named ``method``, for images shaped ``input_shape``.

    ``output_bias_from_data=False`` keeps the release's initialisation (see :class:`GradCon`).
    """
    model_class = METHODS[method][0]
    return model_class(
        input_shape=input_shape,
        output_bias_from_data=output_bias_from_data,
        **method_arguments(method),
    )


class EpochProgress(keras.callbacks.Callback):
    """One progress bar over epochs (instead of one per epoch), with the latest losses; on a
    stream that is not a terminal (a log file), one plain line per epoch instead."""

    SHOWN = ("loss", "recon_loss", "grad_loss", "val_loss")

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout

    def on_train_begin(self, logs=None):
        self._bar = None
        if self.stream.isatty():
            self._bar = keras.utils.Progbar(
                self.params["epochs"], unit_name="epoch", stateful_metrics=self.SHOWN
            )

    def on_epoch_end(self, epoch, logs=None):
        shown = [(k, float(logs[k])) for k in self.SHOWN if k in (logs or {})]
        if self._bar is not None:
            self._bar.update(epoch + 1, shown)
            return
        values = " ".join(f"{k} {v:.5g}" for k, v in shown)
        print(f"epoch {epoch + 1}/{self.params['epochs']} {values}", file=self.stream, flush=True)


#: Initialisations of ``train_one_class``: ``guarded`` (the default) trains from PyTorch's draw, as
#: the authors' release does, and only when that leaves a blank reconstruction after one of the
#: first ``GUARDED_EPOCHS`` epochs trains again from the same weights with the output bias from
#: data (and, if that is blank too, from the next draw with it); ``release`` keeps PyTorch's
#: draw whatever happens; ``data`` always sets the output bias from data.
INITIALIZATIONS = ("guarded", "release", "data")
GUARDED_EPOCHS = 2


def _draws(seed, initialization, redraw_collapsed):
    """(seed, output_bias_from_data) of each training run that may be tried, in order."""
    if initialization == "guarded":
        return [(seed, False), (seed, True), (seed + INITIALIZATION_SEED_STRIDE, True)]
    bias_from_data = initialization == "data"
    count = MAX_INITIALIZATION_DRAWS if redraw_collapsed else 1
    return [(seed + k * INITIALIZATION_SEED_STRIDE, bias_from_data) for k in range(count)]


def train_one_class(
    split,
    epochs,
    seed=0,
    batch_size=DEFAULT_BATCH_SIZE,
    fpr=0.05,
    verbose=1,
    callbacks=(),
    method="gradcon",
    initialization="guarded",
    redraw_collapsed=False,
    checkpoint_every=1,
):
    """Fit the ``method`` model (default GradCon) on ``split.train``, selected by validation loss.

    The weights (running averages included) of the epoch with the lowest ``val_loss`` are kept;
    ``checkpoint_every=5`` chooses among the epochs the authors' release writes
    (:class:`~gradcon_tf.callbacks.KeepBestWeights`). The model's ``selected_epoch`` says which
    epoch that was. The threshold is calibrated on the validation images at ``fpr``.
    ``verbose=1`` shows one progress bar over epochs (one line per epoch off a terminal), 2
    Keras' per-epoch lines, 0 nothing.

    ``initialization``: one of :data:`INITIALIZATIONS`. A run is blank when the reconstruction of
    the validation images is blank after the first epoch (the first two with ``guarded``)
    (:class:`~gradcon_tf.callbacks.StopOnBlankReconstruction`). ``redraw_collapsed`` (``release``
    or ``data``): after a blank first epoch, start again from new initial weights (draw k seeds
    everything with ``seed + k * INITIALIZATION_SEED_STRIDE``), at most
    ``MAX_INITIALIZATION_DRAWS`` draws. The last run tried trains to the end whatever happens.
    The returned model's ``initialization`` says which run trained and which epochs were blank.
    """
    if initialization not in INITIALIZATIONS:
        raise ValueError(f"initialization must be one of {INITIALIZATIONS}, got {initialization!r}")
    if verbose == 1:
        callbacks, verbose = [EpochProgress(), *callbacks], 0
    draws = _draws(seed, initialization, redraw_collapsed)
    guarded_epochs = GUARDED_EPOCHS if initialization == "guarded" else 1
    collapsed = []
    for draw, (draw_seed, bias_from_data) in enumerate(draws):
        keras.utils.set_random_seed(draw_seed)
        model = build_model(method, split.train.shape[1:], bias_from_data)
        model.compile()
        best = KeepBestWeights(every=checkpoint_every)
        guard = (
            [StopOnBlankReconstruction(split.validation, epochs=guarded_epochs)]
            if draw + 1 < len(draws)
            else []
        )
        model.fit(
            split.train,
            validation_data=split.validation,
            epochs=epochs,
            batch_size=batch_size,
            callbacks=[best, *guard, *callbacks],
            verbose=verbose,
        )
        if not guard or guard[0].collapsed_at is None:
            break
        collapsed.append({"draw": draw, "blank_after_epoch": guard[0].collapsed_at})
        keras.backend.clear_session()
    model.initialization = {
        "draw": draw,
        "output_bias_from_data": bias_from_data,
        "collapsed": collapsed,
    }
    model.selected_epoch = best.best_epoch
    model.calibrate(split.validation, fpr=fpr)
    return model


def evaluate_one_class(model, split):
    """AUROC of each score kind (by ``GradCon.score()`` key) and of each decoder layer's cosine
    on ``split.test``, and the test rates at the model's threshold."""
    outputs = model.score(split.test)
    labels = split.test_is_anomaly
    record = evaluation.evaluate(outputs, labels)
    kinds = evaluation.score_kinds(outputs)
    result = {key: record[name]["auroc"] for name, (key, _) in kinds.items()}
    result["layers"] = [layer["auroc"] for layer in record["layers"]]
    if "is_anomaly" in outputs:
        result["test_false_positive_rate"] = float(np.mean(outputs["is_anomaly"][~labels]))
        result["test_true_positive_rate"] = float(np.mean(outputs["is_anomaly"][labels]))
    return result
