"""The network, the training step (Eq. 6) and the running averages, against independent code."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradcon_tf
from tests import reference


def model_weights(model):
    return [np.array(w.numpy()) for w in model.encoder.weights + model.decoder.weights]  # copies


def test_parameter_count_matches_paper_table_6():
    model = gradcon_tf.GradCon()
    count = lambda ws: int(sum(np.prod(w.shape) for w in ws))  # noqa: E731
    assert count(model.trainable_weights) == 230_721
    assert count(model.encoder.trainable_weights) == 115_392
    assert count(model.decoder.trainable_weights) == 115_329


def test_layer_output_shapes_follow_the_release():
    model = gradcon_tf.GradCon()
    encoder_sizes = [l.output.shape[1] for l in model.encoder.layers if "conv" in l.name]
    decoder_sizes = [l.output.shape[1] for l in model.decoder.layers if "crop" in l.name]
    assert encoder_sizes == [15, 8, 5, 3]
    assert decoder_sizes == [4, 8, 14, 28]
    assert model.encoder.output.shape[1:] == (3, 3, 64)
    assert [r.shape for r in model.reference_gradients] == [
        k.shape for k in model.constrained_kernels
    ]


@pytest.mark.parametrize("cropping", [1, 2, ((1, 2), (0, 3))])
def test_slice_cropping_equals_keras_cropping_to_second_order(cropping):
    """The decoder's crop layer: Keras' outputs, gradients and gradients of gradients."""
    from gradcon_tf.networks import SliceCropping2D

    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 8, 3)), tf.float32)
    weights = tf.constant(np.random.default_rng(1).normal(size=(2, 9, 8, 3)), tf.float32)
    results = []
    for layer in (SliceCropping2D(cropping), keras.layers.Cropping2D(cropping)):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = layer(x * weights)
                loss = tf.reduce_sum(tf.sin(y))
            first = inner.gradient(loss, x)
            second_objective = tf.reduce_sum(first * first)
        results.append((y, first, outer.gradient(second_objective, x)))
    for ours, expected in zip(*results):
        np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_rgb_and_resized_input():
    model = gradcon_tf.GradCon(input_shape=(32, 32, 3))
    images = np.full((2, 32, 32, 3), 0.25, np.float32)
    assert model(images).shape == (2, 28, 28, 3)
    # Bilinear resizing keeps a constant image constant (the documented preprocessing step).
    np.testing.assert_allclose(model.preprocess(images), np.full((2, 28, 28, 3), 0.25), atol=1e-7)
    uint8 = np.full((1, 32, 32, 3), 51, np.uint8)
    np.testing.assert_allclose(model.preprocess(uint8), np.full((1, 28, 28, 3), 0.2), atol=1e-7)


def test_network_matches_independent_implementation():
    model = gradcon_tf.GradCon()
    images = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
    expected = reference.cae_forward(model_weights(model), images)
    np.testing.assert_allclose(model(images), expected, atol=1e-6)


def test_first_step_has_zero_gradient_loss(normal_images):
    model = gradcon_tf.GradCon()
    model.compile()
    logs = model.train_on_batch(normal_images[:16], return_dict=True)
    assert logs["grad_loss"] == 0.0
    assert int(model.reference_count.numpy()) == 1
    second = model.train_on_batch(normal_images[16:32], return_dict=True)
    assert second["grad_loss"] < 0.0  # the average now exists and the cosine is non-zero


def _independent_sgd_run(weights, batches, alpha, learning_rate):
    """Hand-written GradCon training with plain SGD; returns the per-step decoder dJ/dphi."""
    weights = reference.as_float64(weights)
    references = [np.zeros_like(weights[8 + 2 * i]) for i in range(4)]
    recorded = []
    for step, batch in enumerate(batches, start=1):
        _, grads = reference.objective_and_gradient(weights, references, batch.astype(np.float64), alpha)
        recorded.append([grads[8 + 2 * i] for i in range(4)])
        references = [np.mean([r[i] for r in recorded], axis=0) for i in range(4)]
        weights = [w - learning_rate * g for w, g in zip(weights, grads)]
    return weights, references


def test_running_averages_equal_mean_of_total_loss_gradients(normal_images):
    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon()
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    initial = model_weights(model)
    batches = [normal_images[i : i + 8] for i in range(0, 32, 8)]
    for batch in batches:
        model.train_on_batch(batch)
    weights, references = _independent_sgd_run(initial, batches, alpha=0.03, learning_rate=0.05)
    assert int(model.reference_count.numpy()) == len(batches)
    # float32 training against a float64 reference: 1e-5 of each average's largest entry.
    for ours, theirs in zip(model.reference_gradients, references):
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5 * np.abs(theirs).max(), rtol=0)
    for ours, theirs in zip(model_weights(model), weights):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.fixture(scope="module")
def state_with_history():
    """Weights, non-trivial reference gradients and a tiny batch (2 images)."""
    rng = np.random.default_rng(3)
    model = gradcon_tf.GradCon()
    references = [rng.normal(size=k.shape).astype(np.float32) * 1e-3 for k in model.constrained_kernels]
    images = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
    return model_weights(model), references, images


def _one_sgd_step(weights, references, images, jit_compile=False, alpha=0.03):
    model = gradcon_tf.GradCon(alpha=alpha)
    for variable, value in zip(model.encoder.weights + model.decoder.weights, weights):
        variable.assign(value)
    for variable, value in zip(model.reference_gradients, references):
        variable.assign(value)
    model.reference_count.assign(1)
    model.compile(optimizer=keras.optimizers.SGD(1.0), jit_compile=jit_compile)
    model.train_on_batch(images)
    return [w - u for w, u in zip(weights, model_weights(model))]  # = dJ/dW with lr = 1


def test_one_step_update_is_the_full_second_order_gradient(state_with_history):
    weights, references, images = state_with_history
    update = _one_sgd_step(weights, references, images)
    w64, r64, x64 = reference.as_float64(weights), reference.as_float64(references), images.astype(np.float64)
    _, expected = reference.objective_and_gradient(w64, r64, x64, alpha=0.03)
    for ours, theirs in zip(update, expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-5 * max(1.0, np.abs(theirs).max()))
    # The check can tell: without the second-order term the decoder gradients differ.
    _, first_order = reference.objective_and_gradient(w64, r64, x64, alpha=0.03, second_order=False)
    assert max(np.abs(a - b).max() for a, b in zip(update, first_order)) > 1e-4


def test_independent_gradient_matches_finite_differences(state_with_history):
    weights, references, images = state_with_history
    w64, r64, x64 = reference.as_float64(weights), reference.as_float64(references), images.astype(np.float64)
    _, analytic = reference.objective_and_gradient(w64, r64, x64, alpha=1.0)
    rng = np.random.default_rng(0)
    for layer in (0, 8, 10, 14):  # an encoder kernel and three decoder kernels
        for flat in rng.choice(w64[layer].size, 3, replace=False):
            index = np.unravel_index(flat, w64[layer].shape)
            step = 1e-5
            values = []
            for sign in (1, -1):
                shifted = [w.copy() for w in w64]
                shifted[layer][index] += sign * step
                values.append(reference.objective_and_gradient(shifted, r64, x64, alpha=1.0)[0])
            numeric = (values[0] - values[1]) / (2 * step)
            assert numeric == pytest.approx(analytic[layer][index], rel=1e-4, abs=1e-8)


@pytest.mark.slow  # kept out of the default run for its time
def test_xla_step_matches_graph_step(state_with_history):
    weights, references, images = state_with_history
    graph = _one_sgd_step(weights, references, images, jit_compile=False)
    xla = _one_sgd_step(weights, references, images, jit_compile=True)
    for a, b in zip(graph, xla):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_fit_reports_losses_and_validation_metrics(normal_images):
    model = gradcon_tf.GradCon()
    model.compile()
    history = model.fit(
        normal_images[:64], validation_data=normal_images[64:], epochs=2, batch_size=32, verbose=0
    )
    for name in ("loss", "recon_loss", "grad_loss", "val_loss", "val_recon_loss", "val_grad_loss"):
        assert len(history.history[name]) == 2 and np.isfinite(history.history[name]).all()
    references = [r.numpy() for r in model.reference_gradients]
    model.evaluate(normal_images[64:], verbose=0)  # test_step leaves the averages alone
    for before, after in zip(references, model.reference_gradients):
        np.testing.assert_array_equal(before, after.numpy())
    assert int(model.reference_count.numpy()) == 4


@pytest.mark.slow  # kept out of the default run for its time
def test_tf_data_and_numpy_give_the_same_training(normal_images):
    results = []
    for as_dataset in (False, True):
        keras.utils.set_random_seed(5)
        model = gradcon_tf.GradCon()
        model.compile()
        x = normal_images[:64]
        if as_dataset:
            x = tf.data.Dataset.from_tensor_slices(x).batch(32)
        model.fit(x, epochs=1, batch_size=32, shuffle=False, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_custom_encoder_and_decoder_are_constrained():
    encoder = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")]
    )
    decoder = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(7 * 7 * 8, activation="relu"),
            keras.layers.Reshape((7, 7, 8)),
            keras.layers.UpSampling2D(4),
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ]
    )
    model = gradcon_tf.GradCon(encoder=encoder, decoder=decoder)
    assert [r.shape for r in model.reference_gradients] == [(16, 392), (3, 3, 8, 1)]
    model.compile()
    model.fit(np.random.default_rng(0).uniform(size=(16, 28, 28, 1)), epochs=2, batch_size=8, verbose=0)
    assert int(model.reference_count.numpy()) == 4


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 28, 28, 3), np.float32), "shape"),
        (np.zeros((2, 32, 32, 1), np.float32), "shape"),
        (np.zeros((2, 28, 28, 1), np.int32), "dtype"),
        (np.full((2, 28, 28, 1), np.nan, np.float32), "NaN"),
        (np.full((2, 28, 28, 1), 2.0, np.float32), r"\[0, 1\]"),
        (np.zeros((0, 28, 28, 1), np.float32), "empty"),
    ],
)
def test_bad_images_are_rejected_with_a_clear_error(images, message):
    model = gradcon_tf.GradCon()
    model.compile()
    with pytest.raises(ValueError, match=message):
        model.score(images)
    with pytest.raises(ValueError, match=message):
        model.fit(images, verbose=0)


def test_output_bias_starts_at_the_mean_intensity(normal_images):
    model = gradcon_tf.GradCon(initialization="data")
    model.compile()
    model.fit(normal_images[:32], epochs=1, batch_size=32, verbose=0)
    bias = model.decoder.get_layer("decoder_deconv_4").bias
    # one Adam step (lr 1e-3) moves the bias at most ~1e-3 from logit(mean)
    expected = np.log(normal_images[:32].mean() / (1 - normal_images[:32].mean()))
    assert float(bias.numpy()[0]) == pytest.approx(expected, abs=2e-3)
    before = bias.numpy().copy()
    model.fit(normal_images[:32] * 0.1, epochs=1, batch_size=32, verbose=0)  # trained: no re-init
    assert abs(float(bias.numpy()[0] - before[0])) < 2e-3
    untouched = gradcon_tf.GradCon(initialization="release")
    initial = untouched.decoder.get_layer("decoder_deconv_4").bias.numpy().copy()
    untouched.compile(optimizer=keras.optimizers.SGD(0.0))
    untouched.fit(normal_images[:32], epochs=1, batch_size=32, verbose=0)
    np.testing.assert_array_equal(untouched.decoder.get_layer("decoder_deconv_4").bias.numpy(), initial)
