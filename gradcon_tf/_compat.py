"""Work-arounds for behaviour of the Keras/TensorFlow versions we support, kept in one place."""

import tensorflow as tf


def logs_for_distribution(logs):
    """Make ``train_step``/``test_step`` logs survive Keras' multi-worker reduction.

    Keras 3 (checked up to 3.15) reduces step outputs under a multi-worker
    ``MultiWorkerMirroredStrategy`` with ``strategy.reduce("MEAN", v, axis=0)``, which fails on
    scalars ("Invalid reduction dimension 0 for input with 0 dimensions"). Giving each value a
    leading axis of length 1 makes that reduction return the scalar mean over workers.
    """
    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and strategy.extended._in_multi_worker_mode()
    if not multi_worker:
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}
