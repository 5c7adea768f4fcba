"""One real epoch of the reproduction's training and the 20-epoch wall time it implies."""

import time
import types

import numpy as np

from benchmarks.common import BUDGET_EPOCHS, EPOCH_IMAGES, TRAIN_BATCH, log


def bench_epochs(settings, graph_step_ms):
    import keras

    from gradcon_tf import experiment
    from benchmarks.timing import load_average

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    rng = np.random.default_rng(6)
    split = types.SimpleNamespace(
        train=rng.integers(0, 256, (settings.epoch_images, 28, 28, 1), dtype=np.uint8),
        validation=rng.integers(0, 256, (settings.validation_images, 28, 28, 1), dtype=np.uint8),
    )
    load_start = load_average()
    timer = EpochTimer()
    log(f"epochs: {settings.epochs} epochs of {settings.epoch_images} images (experiment.train_one_class)")
    start = time.perf_counter()
    experiment.train_one_class(split, epochs=settings.epochs, verbose=0, callbacks=[timer])
    total = time.perf_counter() - start
    later = timer.seconds[1:] or timer.seconds
    steps_per_epoch = -(-EPOCH_IMAGES // TRAIN_BATCH)
    return {
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "measured_epochs": settings.epochs,
        "images_per_epoch": settings.epoch_images,
        "validation_images": settings.validation_images,
        "epoch_s": timer.seconds,
        "train_one_class_wall_s": total,
        "budget": {"epochs": BUDGET_EPOCHS, "images_per_epoch": EPOCH_IMAGES, "steps_per_epoch": steps_per_epoch},
        "budget_wall_s_from_measured_epochs": (
            max(0.0, timer.seconds[0] - float(np.median(later)))  # tracing, once
            + BUDGET_EPOCHS * float(np.median(later)) * EPOCH_IMAGES / settings.epoch_images
        ),
        "budget_wall_s_from_step_time": BUDGET_EPOCHS * steps_per_epoch * graph_step_ms / 1e3,
        "note": (
            "from measured epochs: (first epoch - median later epoch: tracing, once) + 20 x the median "
            "later epoch of train_one_class (fit with validation), the epochs scaled to 5,400 images "
            "when fewer were used; "
            "from step time: 20 x 85 steps x the median graph step (no validation, no tracing)"
        ),
    }
