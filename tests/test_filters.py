"""The graph's filters against SciPy: the Gaussian blur, and illumination removal."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from gradcon_tf import filters


def test_gaussian_blur_matches_scipy_per_channel():
    images = np.random.default_rng(0).random((2, 40, 56, 3)).astype(np.float32)
    sigma = 2.5
    radius = len(filters.gaussian_kernel(sigma)) // 2
    # TF's REFLECT padding is SciPy's "mirror"; the same radius via truncate.
    expected = gaussian_filter(images.astype(np.float64), (0, sigma, sigma, 0), mode="mirror",
                               truncate=radius / sigma)
    np.testing.assert_allclose(filters.gaussian_blur(images, sigma).numpy(), expected, atol=1e-6)


def test_remove_illumination_takes_out_a_light_gradient_and_keeps_the_texture():
    rng = np.random.default_rng(1)
    texture = 0.4 + 0.1 * rng.standard_normal((1, 64, 64, 1)).astype(np.float32)
    ramp = np.linspace(-0.2, 0.2, 64, dtype=np.float32)[None, None, :, None]
    lit = filters.remove_illumination(texture + ramp).numpy()
    plain = filters.remove_illumination(texture).numpy()
    inner = (slice(None), slice(16, 48), slice(16, 48))  # a linear ramp blurs to itself inside
    np.testing.assert_allclose(lit[inner], plain[inner], atol=1e-5)
    assert abs(plain.mean() - 0.5) < 0.01 and plain.std() > 0.05


def test_a_model_that_removes_illumination_trains_on_and_weighs_the_filtered_images(normal_images, tmp_path):
    import gradcon_tf
    from gradcon_tf import experiment, loss_weights
    from gradcon_tf.splits import OneClassSplit

    split = OneClassSplit(normal_images[:64], normal_images[64:], normal_images[:8], np.zeros(8, bool))
    model = experiment.train_one_class(split, 1, verbose=0, loss_weights="data", remove_illumination=True)
    filtered = filters.remove_illumination(normal_images[:64]).numpy()
    np.testing.assert_allclose(model.preprocess(normal_images[:4]).numpy(), filtered[:4], atol=1e-6)
    expected = loss_weights.loss_weights("data", filtered)  # the variance the network sees
    assert model.alpha == pytest.approx(expected["alpha"], rel=1e-5)
    assert model.alpha < 0.5 * loss_weights.loss_weights("data", normal_images[:64])["alpha"]
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = gradcon_tf.load_model(path)
    assert loaded.remove_illumination
    np.testing.assert_allclose(loaded.score(split.test)["score"], model.score(split.test)["score"], rtol=1e-6)
