"""Small data and models the tests share (fixtures in conftest.py use them too)."""

import numpy as np


def bar_images(n, orientation, seed, size=28, channels=1):
    """Synthetic one-class data: a bright bar (horizontal or vertical) on a dim noisy background."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.15, size=(n, size, size, channels)).astype(np.float32)
    for image, start in zip(images, rng.integers(4, size - 8, size=n)):
        if orientation == "horizontal":
            image[start : start + 4, 3:-3, :] = rng.uniform(0.7, 1.0)
        else:
            image[3:-3, start : start + 4, :] = rng.uniform(0.7, 1.0)
    return images


def trained_on_bars(model_class=None):
    """A model (default: the paper's GradCon) trained 3 epochs on 128 horizontal-bar images,
    seed 0: non-zero reference gradients, seconds to make."""
    import keras

    import gradcon_tf

    keras.utils.set_random_seed(0)
    model = (model_class or gradcon_tf.GradCon)()
    model.compile()
    model.fit(bar_images(128, "horizontal", seed=1), epochs=3, batch_size=32, verbose=0)
    return model


def copy_of(model):
    """A new model of ``model``'s class and config with its weights (references, threshold and
    all): a test may change it without changing ``model``."""
    copy = type(model).from_config(model.get_config())
    copy.compile()
    copy.set_weights(model.get_weights())
    if getattr(model, "calibration_scores", None) is not None:
        copy.calibration_scores = model.calibration_scores.copy()
    return copy
