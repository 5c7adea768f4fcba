"""Anomaly maps (``score(maps=True)``) against a per-image tape computation of their definition.

For one image, layer i: the kernel gradient g_i of its own loss (a GradientTape), the output
gradient dL/dx_hat (a tape on the reconstruction) and the output's change along the reference,
tau_i = d x_hat / d phi_i [R_i] (a ForwardAccumulator); then in float64
m_i(y) = H W <dL/dx_hat(y), tau_i(y)> / (|g_i| |R_i|) and grad_map = mean_i max(-m_i, 0).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradcon_tf
from gradcon_tf import gradients
from tests.helpers import bar_images


def per_image_maps(model, images):
    """(recon_map, grad_map, layer maps m_i) of each image, one at a time, at the network's 28x28."""
    kernels = [k.value for k in model.constrained_kernels]
    references = [r.numpy().astype(np.float64) for r in model.reference_gradients]
    recon_maps, grad_maps, all_layer_maps = [], [], []
    for image in images:
        x = model.preprocess(image[None])
        with tf.GradientTape(persistent=True) as tape:
            reconstruction = model(image[None])
            loss = tf.reduce_mean(tf.square(reconstruction - x))
        kernel_grads = tape.gradient(loss, kernels)
        output_grad = tape.gradient(loss, reconstruction).numpy().astype(np.float64)[0]
        layer_maps = []
        for kernel, gradient, reference in zip(kernels, kernel_grads, references):
            with tf.autodiff.ForwardAccumulator(kernel, tf.constant(reference, tf.float32)) as acc:
                tangent = acc.jvp(model(image[None])).numpy().astype(np.float64)[0]
            norm = np.linalg.norm(gradient.numpy().astype(np.float64)) * np.linalg.norm(reference)
            pixels = tangent.shape[0] * tangent.shape[1]
            layer_maps.append(pixels * np.sum(output_grad * tangent, axis=-1) / norm)
        recon_maps.append(np.mean((reconstruction.numpy() - x.numpy())[0] ** 2, axis=-1))
        grad_maps.append(np.mean(np.maximum(-np.array(layer_maps), 0.0), axis=0))
        all_layer_maps.append(np.stack(layer_maps, axis=-1))
    return np.array(recon_maps), np.array(grad_maps), np.array(all_layer_maps)


@pytest.fixture(scope="module")
def images():
    return np.concatenate([bar_images(4, "horizontal", seed=5), bar_images(4, "vertical", seed=6)])


def test_maps_equal_per_image_tape(trained, images):
    scores = trained.score(images, maps=True)
    recon_maps, grad_maps, _ = per_image_maps(trained, images)
    np.testing.assert_allclose(scores["recon_map"], recon_maps, rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores["grad_map"], grad_maps, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        scores["score_map"], scores["recon_map"] + trained.beta * scores["grad_map"], atol=1e-7
    )
    assert np.std(grad_maps) > 0.1  # not a flat map: the test can tell pixels apart


def test_layer_maps_equal_per_image_tape_and_average_to_the_cosines(trained, images):
    network_input = trained.preprocess(images)
    plan = gradients.plan_decoder(trained.decoder)
    _, cosines, _, layer_maps = gradients.decoder_scores(
        plan, trained.encoder(network_input), network_input, trained.reference_gradients,
        maps=True,
    )
    _, _, expected = per_image_maps(trained, images)
    np.testing.assert_allclose(layer_maps.numpy(), expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(layer_maps.numpy().mean(axis=(1, 2)), cosines.numpy(), atol=1e-5)


def test_maps_leave_the_scores_as_they_are(trained, images):
    scores = trained.score(images, maps=True)
    np.testing.assert_allclose(scores["recon_map"].mean(axis=(1, 2)), scores["recon"], rtol=1e-5)
    assert np.all(scores["grad_map"] >= 0)
    plain = trained.score(images)
    assert "grad_map" not in plain
    for key in plain:
        np.testing.assert_allclose(scores[key], plain[key], atol=1e-6, err_msg=key)


def test_generic_path_maps_equal_fast_path(trained, images):
    network_input = trained.preprocess(images)
    latents = trained.encoder(network_input)
    references = [r.value for r in trained.reference_gradients]
    plan = gradients.plan_decoder(trained.decoder)
    fast = gradients.decoder_scores(plan, latents, network_input, references, maps=True)
    generic = gradients.generic_decoder_scores(
        trained.decoder, latents, network_input, references, maps=True
    )
    np.testing.assert_allclose(generic[3].numpy(), fast[3].numpy(), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(generic[1].numpy(), fast[1].numpy(), rtol=0, atol=1e-5)


def test_maps_at_the_input_resolution():
    keras.utils.set_random_seed(1)
    model = gradcon_tf.GradCon(input_shape=(32, 32, 3))
    model.compile()
    model.fit(bar_images(64, "horizontal", seed=1, size=32, channels=3), epochs=1, verbose=0)
    scores = model.score(bar_images(3, "vertical", seed=2, size=32, channels=3), maps=True)
    for key in ("recon_map", "grad_map", "score_map"):
        assert scores[key].shape == (3, 32, 32)
        assert np.all(np.isfinite(scores[key]))
    np.testing.assert_allclose(scores["recon_map"].mean(axis=(1, 2)), scores["recon"], rtol=0.05)


def test_calibrate_keeps_the_99th_percentile_of_the_calibration_maps(tmp_path):
    """One batch of maps at a time, the same scales as from all maps at once; saved and loaded;
    ``maps=False`` keeps none."""
    from gradcon_tf.portable.overlays import map_scale

    keras.utils.set_random_seed(4)
    model = gradcon_tf.GradCon()
    rng = np.random.default_rng(4)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    images = rng.integers(0, 256, size=(40, 28, 28, 1), dtype=np.uint8)
    with pytest.warns(gradcon_tf.CalibrationWarning):
        model.calibrate(images, batch_size=16)
    everything = model.score(images, maps=True)
    expected = {name: map_scale(everything[name]) for name in ("recon_map", "grad_map", "score_map")}
    assert model.map_scales == pytest.approx(expected, rel=1e-12) and min(expected.values()) > 0
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").map_scales == pytest.approx(expected, rel=1e-12)
    fresh = gradcon_tf.GradCon()
    with pytest.warns(gradcon_tf.CalibrationWarning):
        fresh.calibrate(images, maps=False)
    assert fresh.map_scales is None
