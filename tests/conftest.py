import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


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


@pytest.fixture
def normal_images():
    return bar_images(96, "horizontal", seed=1)


@pytest.fixture
def anomalous_images():
    return bar_images(96, "vertical", seed=2)


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
