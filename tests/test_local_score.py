"""The local image score against SciPy's Gaussian filter and a sort."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from gradcon_tf import filters
from gradcon_tf import local_score as local


@pytest.mark.parametrize("shape", [(3, 64, 64), (2, 48, 80)])
def test_local_score_is_the_top_share_of_the_blurred_map(shape):
    maps = np.random.default_rng(0).random(shape).astype(np.float32)
    sigma = min(shape[1:]) * local.BLUR_FRACTION
    # TF's REFLECT padding is SciPy's "mirror"; the same radius via truncate.
    radius = len(filters.gaussian_kernel(sigma)) // 2
    blurred = gaussian_filter(maps.astype(np.float64), (0, sigma, sigma), mode="mirror",
                              truncate=radius / sigma)
    flat = np.sort(blurred.reshape(len(maps), -1), axis=1)
    count = round(local.TOP_FRACTION * shape[1] * shape[2])
    expected = flat[:, -count:].mean(axis=1)
    np.testing.assert_allclose(local.local_score(maps).numpy(), expected, rtol=1e-5)


def test_a_small_blob_moves_the_local_score_far_more_than_the_mean():
    maps = np.full((2, 64, 64), 0.1, np.float32)
    maps[1, 30:36, 30:36] = 1.0  # 36 of 4,096 pixels
    score = local.local_score(maps).numpy()
    assert score[1] - score[0] > 0.3 and maps[1].mean() - maps[0].mean() < 0.01


def test_a_local_model_scores_the_local_score_of_its_score_map(normal_images, tmp_path):
    import gradcon_tf
    from tests.test_settings import with_random_references

    model = with_random_references(gradcon_tf.GradCon(image_score="local"))
    out = model.score(normal_images[:6], maps=True)
    np.testing.assert_allclose(out["score"], local.local_score(out["score_map"]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.score(normal_images[:6])["score"], out["score"], rtol=1e-6)
    with pytest.warns(gradcon_tf.CalibrationWarning):  # 40 images are few for fpr 0.05
        model.calibrate(normal_images[:40], maps=False)
    path = str(tmp_path / "local.keras")
    model.save(path)
    loaded = gradcon_tf.load_model(path)
    assert loaded.image_score == "local" and loaded.threshold == model.threshold
    np.testing.assert_allclose(loaded.score(normal_images[:6])["score"], out["score"], rtol=1e-6)

    loaded.image_score = "mean"  # another score: the calibration made on the local one goes
    assert loaded.threshold is None and loaded.calibration_scores is None
    mean = loaded.score(normal_images[:6])
    np.testing.assert_allclose(mean["score"], mean["recon"] + loaded.beta * mean["grad_loss"], rtol=1e-6)
    with pytest.raises(ValueError, match="image_score"):
        gradcon_tf.GradCon(image_score="max")
