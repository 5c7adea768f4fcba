"""Per-sample scores against a batch-of-one GradientTape loop; thresholds; save/load; the CLI."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

import gradcon_tf
from gradcon_tf import gradients


def batch_of_one_scores(model, images):
    """The obviously-correct reference: one sample at a time, its own loss, its own gradient."""
    kernels = [k.value for k in model.constrained_kernels]
    rows = []
    for image in images:
        x = model.preprocess(image[None])
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(image[None]) - x))
        grads = tape.gradient(loss, kernels)
        cosines = [
            float(np.sum(g.numpy() * r.numpy()) / (np.linalg.norm(g) * np.linalg.norm(r)))
            for g, r in zip(grads, model.reference_gradients)
        ]
        grad_loss = -np.mean(cosines)
        rows.append((float(loss) + model.beta * grad_loss, float(loss), grad_loss, cosines))
    score, recon, grad_loss, cosines = (np.array(c) for c in zip(*rows))
    return {"score": score, "recon": recon, "grad_loss": grad_loss, "layer_cosines": cosines}


def assert_scores_close(ours, expected, atol=1e-5):
    for key in ("score", "recon", "grad_loss", "layer_cosines"):
        np.testing.assert_allclose(ours[key], expected[key], atol=atol, err_msg=key)


def test_fast_path_equals_batch_of_one_loop(trained, normal_images, anomalous_images):
    images = np.concatenate([normal_images[:6], anomalous_images[:6]])
    assert gradients.plan_decoder(trained.decoder)  # the paper's decoder takes the fast path
    assert_scores_close(trained.score(images), batch_of_one_scores(trained, images))


def test_generic_path_equals_batch_of_one_loop(trained, normal_images):
    images = trained.preprocess(normal_images[:5])
    latents = trained.encoder(images)
    references = [r.value for r in trained.reference_gradients]
    recon, cosines, _ = gradients.generic_decoder_scores(trained.decoder, latents, images, references)
    expected = batch_of_one_scores(trained, normal_images[:5])
    np.testing.assert_allclose(recon, expected["recon"], atol=1e-6)
    np.testing.assert_allclose(cosines, expected["layer_cosines"], atol=1e-5)


def test_decoder_without_fast_path_scores_correctly(normal_images):
    decoder = keras.Sequential(
        [
            keras.Input((3, 3, 64)),
            keras.layers.Conv2DTranspose(16, 4, strides=2, padding="same", activation="relu"),
            keras.layers.UpSampling2D(2),  # not a fast-path layer
            keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Resizing(28, 28),
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ]
    )
    model = gradcon_tf.GradCon(decoder=decoder)
    assert gradients.plan_decoder(model.decoder) is None
    model.compile()
    model.fit(normal_images[:32], epochs=2, batch_size=16, verbose=0)
    assert_scores_close(model.score(normal_images[:4]), batch_of_one_scores(model, normal_images[:4]))


def test_scores_do_not_depend_on_batch_size_or_order(trained, normal_images):
    images = normal_images[:40]
    full = trained.score(images, batch_size=64)
    small = trained.score(images, batch_size=7)
    order = np.random.default_rng(0).permutation(len(images))
    shuffled = trained.score(images[order], batch_size=16)
    for key in ("score", "layer_cosines"):
        np.testing.assert_allclose(small[key], full[key], atol=1e-6)
        np.testing.assert_allclose(shuffled[key], full[key][order], atol=1e-6)


def test_scores_stream_from_tf_data(trained, normal_images):
    dataset = tf.data.Dataset.from_tensor_slices(normal_images[:40]).batch(16)
    streamed = trained.score(dataset)
    np.testing.assert_allclose(streamed["score"], trained.score(normal_images[:40])["score"], atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        trained.score(tf.data.Dataset.from_tensor_slices(normal_images[:4, :20]).batch(2))


def test_uint8_images_score_like_scaled_floats(trained, normal_images):
    as_uint8 = np.round(normal_images[:4] * 255).astype(np.uint8)
    np.testing.assert_allclose(
        trained.score(as_uint8)["score"], trained.score(as_uint8 / np.float32(255))["score"], atol=1e-6
    )


def test_rgb_resized_model_matches_batch_of_one_loop():
    rng = np.random.default_rng(0)
    model = gradcon_tf.GradCon(input_shape=(32, 32, 3))
    model.compile()
    images = rng.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)
    model.fit(images, epochs=1, batch_size=8, verbose=0)
    assert_scores_close(model.score(images[:4]), batch_of_one_scores(model, images[:4]))


def test_calibrated_threshold_and_decisions(trained, normal_images, anomalous_images):
    assert trained.threshold is None and "is_anomaly" not in trained.score(normal_images[:2])
    threshold = trained.calibrate(normal_images, fpr=0.1)
    normal_scores = trained.score(normal_images)["score"]
    false_positive_rate = np.mean(normal_scores > threshold)
    assert 0.1 - 1 / len(normal_scores) <= false_positive_rate <= 0.1
    out = trained.score(anomalous_images)
    np.testing.assert_array_equal(out["is_anomaly"], out["score"] > threshold)
    trained.threshold = float(np.max(out["score"]))  # a new threshold, no retraining
    assert not trained.score(anomalous_images)["is_anomaly"].any()
    with pytest.raises(ValueError, match="fpr"):
        trained.calibrate(normal_images, fpr=1.5)
    with pytest.raises(ValueError, match="finite"):
        trained.threshold = float("inf")
    trained.threshold = None


def test_save_and_load_give_identical_scores(trained, normal_images, tmp_path):
    trained.threshold = 0.01
    path = tmp_path / "model.keras"
    trained.save(path)
    loaded = keras.models.load_model(path)  # safe mode, no custom_objects
    assert isinstance(loaded, gradcon_tf.GradCon)
    assert loaded.threshold == pytest.approx(0.01)
    assert int(loaded.reference_count.numpy()) == int(trained.reference_count.numpy())
    for a, b in zip(trained.reference_gradients, loaded.reference_gradients):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(trained.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # Same weights bit for bit; scores agree to float32 rounding (a graph traced for another
    # batch shape may pick other CPU kernels).
    ours, theirs = trained.score(normal_images[:8]), loaded.score(normal_images[:8])
    for key in set(ours) - {"p_value"}:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-6, atol=1e-7)
    if "p_value" in ours:  # images that are calibration images tie: rounding may move one step
        np.testing.assert_array_equal(loaded.calibration_scores, trained.calibration_scores)
        step = 1.0 / (len(trained.calibration_scores) + 1)
        np.testing.assert_allclose(ours["p_value"], theirs["p_value"], rtol=0, atol=step + 1e-12)
    trained.threshold = None


def test_config_round_trip():
    model = gradcon_tf.GradCon(input_shape=(32, 32, 3), alpha=0.05, beta=0.3)
    config = model.get_config()
    clone = gradcon_tf.GradCon.from_config(config)
    assert clone.get_config() == config
    assert (clone.alpha, clone.beta, clone.image_shape) == (0.05, 0.3, (32, 32, 3))
    assert gradcon_tf.GradCon(alpha=0.05).beta == pytest.approx(0.2)  # beta = 4 alpha


@pytest.mark.slow  # kept out of the default run for its time
def test_training_resumed_from_a_saved_model_continues_exactly(normal_images, tmp_path):
    def fresh():
        keras.utils.set_random_seed(1)
        model = gradcon_tf.GradCon()
        model.compile()
        return model

    straight = fresh()
    straight.fit(normal_images[:64], epochs=3, batch_size=16, shuffle=False, verbose=0)
    first = fresh()
    first.fit(normal_images[:64], epochs=2, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "checkpoint.keras")
    resumed = keras.models.load_model(tmp_path / "checkpoint.keras")
    resumed.fit(normal_images[:64], epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


def test_standard_callbacks(normal_images, tmp_path):
    model = gradcon_tf.GradCon()
    model.compile()
    callbacks = [
        keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor="val_loss", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
        keras.callbacks.TensorBoard(tmp_path / "logs"),
        keras.callbacks.BackupAndRestore(tmp_path / "backup"),
    ]
    model.fit(normal_images[:48], validation_data=normal_images[48:64], epochs=2, batch_size=16,
              callbacks=callbacks, verbose=0)
    best = keras.models.load_model(tmp_path / "best.keras")
    assert int(best.reference_count.numpy()) in (3, 6)
    assert any((tmp_path / "logs").rglob("*.v2"))


@pytest.mark.slow  # 10-30 s; run with `pytest -m slow`
def test_scores_separate_a_synthetic_one_class_task():
    from tests.helpers import bar_images

    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon()
    model.compile()
    model.fit(bar_images(256, "horizontal", seed=10), epochs=30, batch_size=32, verbose=0)
    normal, abnormal = bar_images(100, "horizontal", seed=11), bar_images(100, "vertical", seed=12)
    scores = model.score(np.concatenate([normal, abnormal]))
    labels = np.r_[np.zeros(100), np.ones(100)]
    assert roc_auc_score(labels, scores["score"]) > 0.9
    assert roc_auc_score(labels, scores["grad_loss"]) > 0.8


def test_scoring_does_not_retrace_for_each_batch_size(trained, normal_images):
    for n in (5, 37, 64, 96):
        trained.score(normal_images[:n], batch_size=32)
    traced = trained._score_functions[False].experimental_get_tracing_count()
    for n in (3, 50, 70):
        trained.score(normal_images[:n], batch_size=32)
    # At most a specific and a batch-generic trace per input dtype, then no more.
    assert trained._score_functions[False].experimental_get_tracing_count() == traced <= 4
