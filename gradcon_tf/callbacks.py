"""Training guards that GradCon.fit adds by itself."""

import math

import keras


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
