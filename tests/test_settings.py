"""Settings changed on a built model take effect; empty inputs are errors; the decoder plan's
fallback warns; which decoder kernels the constraint covers."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradcon_tf
from gradcon_tf import gradients


def with_random_references(model, seed=0):
    """Non-zero reference gradients without training, so that grad_loss is not 0."""
    rng = np.random.default_rng(seed)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32) * 1e-3)
    model.reference_count.assign(1)
    return model


# ---------------------------------------------------------------------------- settings


def test_changed_beta_is_used_by_the_next_score_and_predict(normal_images):
    model = with_random_references(gradcon_tf.GradCon())
    images = normal_images[:8]
    before = model.score(images)
    model.predict(images, verbose=0)  # compiles Keras' predict_function with the old beta
    model.beta = 10.0
    after = model.score(images)
    np.testing.assert_allclose(after["recon"], before["recon"], rtol=1e-6)
    expected = after["recon"] + 10.0 * after["grad_loss"]  # recomputed with the new beta
    np.testing.assert_allclose(after["score"], expected, rtol=1e-6)
    assert np.abs(after["score"] - before["score"]).min() > 1e-4  # the check can tell
    predicted = model.predict(images, verbose=0)
    np.testing.assert_allclose(predicted["score"], after["score"], rtol=1e-5)
    assert model.get_config()["beta"] == 10.0


def _state(model):
    return [v.numpy().copy() for v in model.encoder.weights + model.decoder.weights] + [
        r.numpy().copy() for r in model.reference_gradients
    ]


def _fresh_model_one_step(state, images, alpha):
    """A new model built with ``alpha``, given ``state``, after one SGD(1) step on ``images``."""
    model = gradcon_tf.GradCon(alpha=alpha, initialization="release")
    targets = model.encoder.weights + model.decoder.weights + model.reference_gradients
    for variable, value in zip(targets, state):
        variable.assign(value)
    model.reference_count.assign(1)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    model.train_on_batch(images)
    return _state(model)


def test_changed_alpha_is_used_by_the_next_train_step(normal_images):
    model = with_random_references(gradcon_tf.GradCon(initialization="release"))
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    model.train_on_batch(normal_images[:4])  # compiles train_function with alpha = 0.03
    state, images = _state(model), normal_images[4:8]
    model.alpha = 0.5
    model.reference_count.assign(1)  # as in the fresh models (the running-mean count)
    model.train_on_batch(images)
    expected = _fresh_model_one_step(state, images, alpha=0.5)
    for ours, theirs in zip(_state(model), expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    stale = _fresh_model_one_step(state, images, alpha=0.03)
    assert max(np.abs(a - b).max() for a, b in zip(expected, stale)) > 1e-4  # the check can tell
    assert model.get_config()["alpha"] == 0.5


def test_alpha_changed_by_a_callback_during_fit_and_before_evaluate(normal_images):
    class RaiseAlpha(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.alpha = 0.5

    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon()
    model.compile()
    history = model.fit(
        normal_images[:32], epochs=2, batch_size=16, callbacks=[RaiseAlpha()], verbose=0
    ).history
    # Each epoch's mean loss is its mean recon_loss + alpha * its mean grad_loss.
    for epoch, alpha in ((0, 0.03), (1, 0.5)):
        expected = history["recon_loss"][epoch] + alpha * history["grad_loss"][epoch]
        assert history["loss"][epoch] == pytest.approx(expected, rel=1e-5)
    assert abs(history["grad_loss"][1]) > 1e-3  # so that alpha matters
    model.evaluate(normal_images[32:48], verbose=0)  # compiles test_function with alpha = 0.5
    model.alpha = 2.0
    logs = model.evaluate(normal_images[32:48], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["recon_loss"] + 2.0 * logs["grad_loss"], rel=1e-5)


def test_changed_threshold_is_used_by_the_next_score(normal_images):
    model = with_random_references(gradcon_tf.GradCon())
    images = normal_images[:16]
    assert "is_anomaly" not in model.score(images)
    model.threshold = -1e9
    assert model.score(images)["is_anomaly"].all()
    scores = model.score(images)["score"]
    model.threshold = float(np.median(scores))
    outputs = model.score(images)
    np.testing.assert_array_equal(outputs["is_anomaly"], outputs["score"] > model.threshold)
    assert 0 < outputs["is_anomaly"].sum() < len(images)
    model.threshold = None
    assert "is_anomaly" not in model.score(images)


# ---------------------------------------------------------------------------- empty inputs


def _empty_datasets():
    images = np.zeros((4, 28, 28, 1), np.float32)
    known = tf.data.Dataset.from_tensor_slices(images[:0]).batch(2)  # cardinality 0
    unknown = tf.data.Dataset.from_tensor_slices(images).filter(lambda x: False).batch(2)
    return {"known length": known, "unknown length": unknown}


@pytest.mark.parametrize("length", ["known length", "unknown length"])
@pytest.mark.parametrize("initialization", ["guarded", "data", "release"])
def test_empty_dataset_is_a_clear_error(length, initialization):
    dataset = _empty_datasets()[length]
    model = gradcon_tf.GradCon(initialization=initialization)
    model.compile()
    with pytest.raises(ValueError, match="x is empty: no batches"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' "Your input ran out of data"
        model.fit(dataset, verbose=0)
    with pytest.raises(ValueError, match="images is empty: no batches"):
        model.score(dataset)
    assert int(model.reference_count.numpy()) == 0


def test_empty_array_is_a_clear_error():
    model = gradcon_tf.GradCon()
    model.compile()
    empty = np.zeros((0, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="x is empty"):
        model.fit(empty, verbose=0)
    with pytest.raises(ValueError, match="images is empty"):
        model.score(empty)


# ---------------------------------------------------------------------------- decoder plan


def test_unreadable_decoder_graph_falls_back_to_generic_path_with_one_warning(
    normal_images, monkeypatch
):
    fast = with_random_references(gradcon_tf.GradCon())
    images = normal_images[:6]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the fast path: no warning
        expected = fast.score(images)
    slow = gradcon_tf.GradCon()
    slow.set_weights(fast.get_weights())
    for layer in slow.decoder.layers:  # Keras' private record of a layer's calls
        monkeypatch.delattr(layer, "_inbound_nodes")
    with pytest.warns(UserWarning, match="generic vectorized-tape path") as record:
        ours = slow.score(images)
        slow.score(images)
    assert sum("generic vectorized-tape" in str(w.message) for w in record) == 1  # plan made once
    assert gradients.plan_decoder(fast.decoder) and not slow._decoder_plan
    for key in ("score", "recon", "grad_loss", "layer_cosines"):
        np.testing.assert_allclose(ours[key], expected[key], atol=1e-5, err_msg=key)


def test_decoder_with_a_layer_called_twice_is_not_a_chain():
    inputs = keras.Input((3, 3, 4))
    relu = keras.layers.Activation("relu")
    x = relu(keras.layers.Conv2DTranspose(4, 2, strides=2)(inputs))
    x = relu(keras.layers.Conv2DTranspose(1, 2, strides=2)(x))  # the same layer again
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a known non-chain: refused silently
        assert gradients.plan_decoder(keras.Model(inputs, x)) is None


# ---------------------------------------------------------------------------- constrained kernels


def test_custom_decoder_constrains_dense_and_transposed_conv_kernels_only(normal_images):
    encoder = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(8, activation="relu")]
    )
    dense = keras.layers.Dense(7 * 7 * 4, activation="relu")
    deconv = keras.layers.Conv2DTranspose(1, 4, strides=4, padding="same", activation="sigmoid")
    decoder = keras.Sequential(
        [keras.Input((8,)), dense, keras.layers.Reshape((7, 7, 4)), deconv]
    )
    model = gradcon_tf.GradCon(encoder=encoder, decoder=decoder, initialization="release")
    # As documented: the trainable variables named "kernel", latent side first; no biases.
    assert [id(k) for k in gradients.constrained_kernels(decoder)] == [
        id(dense.kernel),
        id(deconv.kernel),
    ]
    assert [tuple(r.shape) for r in model.reference_gradients] == [(8, 196), (4, 4, 1, 4)]
    assert gradients.plan_decoder(decoder) is None  # a Dense layer: the generic path
    # After the first SGD(1) step each reference is that step's gradient of its own kernel.
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    before = [dense.kernel.numpy(), deconv.kernel.numpy()]
    model.train_on_batch(normal_images[:8])
    kernels = (dense.kernel, deconv.kernel)
    for reference, kernel, old in zip(model.reference_gradients, kernels, before):
        np.testing.assert_allclose(reference.numpy(), old - kernel.numpy(), atol=1e-6)
        assert np.abs(reference.numpy()).max() > 1e-5
    assert model.score(normal_images[:3])["layer_cosines"].shape == (3, 2)


def test_dataset_of_unknown_length_counts_only_real_steps(normal_images):
    """Keras calls the train step once more on the exhausted iterator at each epoch's end."""
    model = gradcon_tf.GradCon()
    model.compile()
    dataset = tf.data.Dataset.from_tensor_slices(normal_images[:8]).filter(lambda x: True).batch(4)
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' "Your input ran out of data"
        model.fit(dataset, epochs=2, verbose=0)
    assert int(model.reference_count.numpy()) == 4  # 2 epochs of 2 batches
