"""A training command that resumes after a crash: ``resumable_fit.py WORKDIR [--kill-at-batch B]``.

Trains 4 epochs with BackupAndRestore in WORKDIR/backup and saves WORKDIR/final.keras. With
``--kill-at-batch B`` the process SIGKILLs itself in epoch 3 at batch B (a hard crash: no cleanup,
no Python exception handling), as a machine failure would.
"""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradcon_tf  # noqa: E402

workdir = sys.argv[1]
kill_at = int(sys.argv[sys.argv.index("--kill-at-batch") + 1]) if "--kill-at-batch" in sys.argv else None


class KillMidEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 2 and batch == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


images = np.random.default_rng(0).uniform(size=(96, 28, 28, 1)).astype(np.float32)
keras.utils.set_random_seed(0)
model = gradcon_tf.GradCon()
model.compile()
callbacks = [keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup"), double_checkpoint=True)]
if kill_at is not None:
    callbacks.append(KillMidEpoch())
# A fixed data order (shuffle=False): a resumed epoch then sees the batches the lost one saw.
model.fit(images, epochs=4, batch_size=16, shuffle=False, callbacks=callbacks, verbose=0)
model.save(os.path.join(workdir, "final.keras"))
