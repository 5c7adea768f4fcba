"""The VAE / VAE + Grad of Table 1: losses against numpy, per-sample scores against a tape loop."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradcon_tf
from gradcon_tf import experiment, gradients
from tests.helpers import bar_images, trained_on_bars


def numpy_bce(images, reconstructions):
    p = np.clip(reconstructions, 1e-7, 1 - 1e-7)
    return -np.mean(images * np.log(p) + (1 - images) * np.log(1 - p), axis=(1, 2, 3))


def numpy_kl_per_pixel(mean, log_variance, pixels=784):
    return -0.5 * np.sum(1 + log_variance - mean**2 - np.exp(log_variance), axis=1) / pixels


def batch_of_one_vae_scores(model, images):
    """Reference: one sample at a time, z = posterior mean, the gradient of its own BCE."""
    kernels = [k.value for k in model.constrained_kernels]
    rows = []
    for image in images:
        x = model.preprocess(image[None]).numpy().astype(np.float64)
        mean, log_variance = (t.numpy() for t in model.encoder(model.preprocess(image[None])))
        with tf.GradientTape() as tape:
            p = model.decoder(model.latent_projection(mean))
            clipped = tf.clip_by_value(p, 1e-7, 1 - 1e-7)
            loss = -tf.reduce_mean(x * tf.math.log(clipped) + (1 - x) * tf.math.log(1 - clipped))
        grads = tape.gradient(loss, kernels)
        cosines = [
            float(np.sum(g.numpy() * r.numpy()) / (np.linalg.norm(g) * np.linalg.norm(r)))
            for g, r in zip(grads, model.reference_gradients)
        ]
        latent = numpy_kl_per_pixel(mean, log_variance)[0]
        rows.append((float(loss), -np.mean(cosines), cosines, latent))
    recon, grad_loss, cosines, latent = (np.array(c) for c in zip(*rows))
    return {"recon": recon, "grad_loss": grad_loss, "layer_cosines": cosines, "latent": latent}


@pytest.fixture(scope="module")
def trained_vae():
    return trained_on_bars(gradcon_tf.GradConVAE)


def test_release_vae_shapes_and_parameter_count():
    model = gradcon_tf.GradConVAE()
    mean, log_variance = model.encoder(np.zeros((2, 28, 28, 1), "float32"))
    assert mean.shape == log_variance.shape == (2, 576)
    assert model.latent_projection(mean).shape == (2, 3, 3, 64)
    # CAE (230,721) + fc11, fc12, fc2 of the release: three 576 x 576 linear layers with bias.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 230_721 + 3 * (576 * 576 + 576)
    assert [k.shape for k in model.constrained_kernels] == [
        k.shape for k in gradcon_tf.GradCon().constrained_kernels
    ]


def test_bce_and_its_hand_written_gradient():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 4, 4, 2)).astype("float32")
    reconstructions = rng.uniform(0.01, 0.99, size=(3, 4, 4, 2)).astype("float32")
    ours = gradients.per_sample_reconstruction_error(images, reconstructions, "bce")
    np.testing.assert_allclose(ours, numpy_bce(images, reconstructions), rtol=1e-6)
    r = tf.constant(reconstructions)
    with tf.GradientTape() as tape:
        tape.watch(r)
        total = tf.reduce_sum(gradients.per_sample_reconstruction_error(images, r, "bce"))
    np.testing.assert_allclose(
        gradients.reconstruction_error_gradient(images, r, "bce"), tape.gradient(total, r), rtol=1e-5
    )


def test_scores_equal_batch_of_one_loop_on_both_paths(trained_vae):
    images = np.concatenate(
        [bar_images(5, "horizontal", seed=7), bar_images(5, "vertical", seed=8)]
    )
    expected = batch_of_one_vae_scores(trained_vae, images)
    ours = trained_vae.score(images)
    assert gradients.plan_decoder(trained_vae.decoder)  # the fast path
    for key in ("recon", "grad_loss", "layer_cosines", "latent"):
        np.testing.assert_allclose(ours[key], expected[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(ours["score"], ours["recon"] + 0.12 * ours["grad_loss"], atol=1e-6)
    network_input = trained_vae.preprocess(images)
    latents, _ = trained_vae.encode(network_input)
    references = [r.value for r in trained_vae.reference_gradients]
    recon, cosines, _ = gradients.generic_decoder_scores(
        trained_vae.decoder, latents, network_input, references, "bce"
    )
    np.testing.assert_allclose(recon, expected["recon"], atol=1e-5)
    np.testing.assert_allclose(cosines, expected["layer_cosines"], atol=1e-5)


def test_validation_loss_is_bce_plus_kl_plus_alpha_grad(trained_vae):
    images = bar_images(32, "horizontal", seed=3)
    logs = trained_vae.evaluate(images, batch_size=32, verbose=0, return_dict=True)
    x = trained_vae.preprocess(images).numpy()
    mean, log_variance = (t.numpy() for t in trained_vae.encoder(x))
    reconstructions = trained_vae.decoder(trained_vae.latent_projection(mean)).numpy()
    recon = numpy_bce(x, reconstructions).mean()
    latent = numpy_kl_per_pixel(mean, log_variance).mean()
    np.testing.assert_allclose(logs["recon_loss"], recon, rtol=1e-5)
    np.testing.assert_allclose(logs["latent_loss"], latent, rtol=1e-4)
    np.testing.assert_allclose(
        logs["loss"], recon + latent + 0.03 * logs["grad_loss"], rtol=1e-5
    )
    assert -1.0 <= logs["grad_loss"] < 0.0  # the batch gradient leans towards the average


def test_training_samples_the_latent_and_plain_vae_keeps_references():
    keras.utils.set_random_seed(1)
    model = experiment.build_model("vae", (28, 28, 1))
    assert isinstance(model, gradcon_tf.GradConVAE) and model.alpha == 0.0
    x = model.preprocess(bar_images(8, "horizontal", seed=2))
    mean_latent, _ = model.encode(x, training=False)
    sampled_a, _ = model.encode(x, training=True)
    sampled_b, _ = model.encode(x, training=True)
    assert not np.allclose(sampled_a, sampled_b)
    assert not np.allclose(sampled_a, mean_latent)
    model.compile()
    model.fit(bar_images(64, "horizontal", seed=4), epochs=1, batch_size=32, verbose=0)
    assert int(model.reference_count.numpy()) == 2
    assert all(np.linalg.norm(r.numpy()) > 0 for r in model.reference_gradients)


def test_vae_saves_and_loads_with_the_same_scores(trained_vae, tmp_path):
    images = bar_images(6, "vertical", seed=5)
    path = tmp_path / "vae.keras"
    trained_vae.save(path)
    loaded = gradcon_tf.load_model(path)
    assert isinstance(loaded, gradcon_tf.GradConVAE)
    before, after = trained_vae.score(images), loaded.score(images)
    for key in ("score", "latent", "layer_cosines"):
        np.testing.assert_allclose(after[key], before[key], atol=1e-6)



def test_vae_loads_in_a_fresh_process_without_naming_the_class_first(trained_vae, tmp_path):
    images = bar_images(4, "vertical", seed=6)
    path, expected = str(tmp_path / "vae.keras"), str(tmp_path / "expected.npy")
    trained_vae.save(path)
    np.save(tmp_path / "images.npy", images)
    np.save(expected, trained_vae.score(images)["score"])
    code = (
        "import numpy as np, gradcon_tf; m = gradcon_tf.load_model({p!r}); "
        "assert type(m).__name__ == 'GradConVAE', type(m); "
        "np.testing.assert_allclose(m.score(np.load({i!r}))['score'], np.load({e!r}), atol=1e-6)"
    ).format(p=path, i=str(tmp_path / "images.npy"), e=expected)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]

@pytest.mark.slow  # 10-30 s; run with `pytest -m slow`
def test_vae_training_resumed_from_a_saved_model_continues_exactly(tmp_path):
    """The latent sampling state is saved: the resumed run draws the same noise."""
    images = bar_images(32, "horizontal", seed=6)

    def fresh():
        keras.utils.set_random_seed(1)
        model = gradcon_tf.GradConVAE()
        model.compile()
        return model

    straight = fresh()
    straight.fit(images, epochs=2, batch_size=16, shuffle=False, verbose=0)
    first = fresh()
    first.fit(images, epochs=1, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "checkpoint.keras")
    resumed = gradcon_tf.load_model(tmp_path / "checkpoint.keras")
    saved_state = first.sampling_seed.state.numpy()
    np.testing.assert_array_equal(resumed.sampling_seed.state.numpy(), saved_state)
    resumed.fit(images, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


def test_vae_saved_without_sampling_state_still_loads(monkeypatch, tmp_path):
    """Files from before the sampling state was saved: same weights, a fresh sampling state."""
    model = gradcon_tf.GradConVAE()
    old_saving = gradcon_tf.GradCon.save_own_variables  # no sampling state
    monkeypatch.setattr(gradcon_tf.GradConVAE, "save_own_variables", old_saving)
    model.save(tmp_path / "old.keras")
    monkeypatch.undo()
    loaded = gradcon_tf.load_model(tmp_path / "old.keras")
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
