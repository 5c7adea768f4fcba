"""Training guards: ``StopOnNonFiniteLoss`` (GradCon.fit adds it by itself) and
``StopOnCollapse`` (GradCon.fit's guarded start); model selection by validation loss:
``KeepBestWeights``; progress over epochs: ``EpochProgress``."""

import math
import sys
import time

import keras

from gradcon_tf import collapse


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training at the first NaN/inf loss with an error that says where it happened.

    The model's weights (running averages included) are put back to the end of the last epoch
    that finished with a finite loss. Raising (rather than ending ``fit`` normally) means that
    checkpoints on disk stay as they were: ``ModelCheckpoint`` files are the last good ones and
    ``BackupAndRestore`` keeps its backup, so the same command resumes from it.
    """

    def __init__(self):
        super().__init__()
        self._last_good_weights = None
        self._last_good_epoch = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self._last_good_weights = self.model.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.model.set_weights(self._last_good_weights)
        where = (
            "the start of training"
            if self._last_good_epoch is None
            else f"the end of epoch {self._last_good_epoch + 1}"
        )
        raise NonFiniteLossError(
            f"GradCon training stopped: the loss became {float(loss)} at epoch {self._epoch + 1}, "
            f"batch {batch + 1}. The model's weights were restored to {where}; checkpoints on "
            "disk were left as they were. Check the input data for extreme values, or lower the "
            "learning rate."
        )

    def on_epoch_end(self, epoch, logs=None):
        self._last_good_weights = self.model.get_weights()
        self._last_good_epoch = epoch


class StopOnCollapse(keras.callbacks.Callback):
    """Stop training when, after epoch ``epoch`` (or the last, if fewer), the decoder is dead on
    ``images`` (:func:`gradcon_tf.collapse.is_collapsed`). ``GradCon.fit`` guards fresh models
    with it (``initialization="guarded"``, after epoch 2); ``stop=False`` only records.

    After ``fit`` returns, ``collapsed_at`` is the (1-based) epoch found dead, else None, and
    ``reason`` says what was measured.
    """

    def __init__(self, images, epoch=1, stop=True):
        super().__init__()
        self.images = images
        self.epoch = int(epoch)
        self.stop = bool(stop)
        self.collapsed_at = None
        self.reason = None

    def on_train_begin(self, logs=None):
        self.collapsed_at = self.reason = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != min(self.epoch, self.params.get("epochs") or self.epoch):
            return
        statistics = collapse.decoder_statistics(self.model, self.images)
        if collapse.is_collapsed(statistics):
            self.collapsed_at = epoch + 1
            self.reason = collapse.describe(statistics)
            if self.stop:
                self.model.stop_training = True


class KeepBestWeights(keras.callbacks.Callback):
    """Model selection by validation loss: after ``fit`` the model holds the weights (running
    averages included) of the epoch with the lowest ``val_loss`` ("the checkpoint with the best
    validation loss", as the paper and the authors' release keep).

    ``every=k`` selects as the release does with its checkpoint frequency (``--write-freq``, 5):
    it writes a checkpoint only after epochs 1, 1 + k, 1 + 2k, ... and the last, and a written
    epoch becomes the best checkpoint when its validation loss is the lowest of all epochs so
    far. When the lowest loss falls between two writes, the release keeps an earlier written
    epoch (or the last one, if that is lower still). ``every=1`` is the plain rule.

    ``best_epoch`` (1-based) is the selected epoch after ``fit``, also set as the model's
    ``selected_epoch`` when ``restore`` (and the model has one); ``selected()`` is the (epoch, weights) that would be
    kept if training ended after the latest epoch.
    """

    def __init__(self, every=1, monitor="val_loss", restore=True):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of epochs, got {every}")
        self.every = int(every)
        self.monitor = monitor
        self.restore = restore
        self.best_epoch = None

    def on_train_begin(self, logs=None):  # again for each initialisation drawn
        self._lowest = math.inf
        self._written = None  # (epoch, weights) of the best checkpoint written so far
        self._latest = None  # (epoch, whether its loss is the lowest so far)
        self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get(self.monitor)
        if loss is None:
            return
        is_lowest = float(loss) < self._lowest  # never true for NaN
        if is_lowest:
            self._lowest = float(loss)
        self._latest = (epoch + 1, is_lowest)
        if is_lowest and epoch % self.every == 0:
            self._written = (epoch + 1, self.model.get_weights())

    def selected(self):
        """(epoch, weights) kept if training ended now: the last epoch is always written."""
        if self._latest is None:
            return None, None
        epoch, is_lowest = self._latest
        if is_lowest:
            return epoch, self.model.get_weights()
        return self._written if self._written is not None else (None, None)

    def on_train_end(self, logs=None):
        epoch, weights = self.selected()
        self.best_epoch = epoch
        if self.restore and hasattr(self.model, "selected_epoch"):
            self.model.selected_epoch = epoch
        if self.restore and weights is not None:
            self.model.set_weights(weights)


class EpochProgress(keras.callbacks.Callback):
    """One progress bar over epochs (instead of one per epoch), with the latest losses; on a
    stream that is not a terminal (a log file), one plain line per epoch instead, with the time
    elapsed and the time left at the mean epoch time so far."""

    SHOWN = ("loss", "recon_loss", "grad_loss", "val_loss")

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout

    def on_train_begin(self, logs=None):
        self._bar = None
        self._started = time.perf_counter()
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
        epochs = self.params["epochs"]
        elapsed = time.perf_counter() - self._started
        left = elapsed / (epoch + 1) * (epochs - epoch - 1)
        print(
            f"epoch {epoch + 1}/{epochs} {values} elapsed {_duration(elapsed)} "
            f"ETA {_duration(left)}",
            file=self.stream, flush=True,
        )


def _duration(seconds):
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
