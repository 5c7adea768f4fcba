"""The collapse test (a dead decoder) and the guarded start inside GradCon.fit."""

import logging

import keras
import numpy as np
import pytest

import gradcon_tf
from gradcon_tf import callbacks, collapse, experiment, networks


class _Reconstructs:
    """A stand-in model whose reconstruction is ``transform(input)``."""

    def __init__(self, transform):
        self.transform = transform

    def preprocess(self, images):
        return np.asarray(images, np.float32)

    def __call__(self, images):
        return self.transform(self.preprocess(images))


def test_statistics_are_the_spread_and_the_sigmoid_slope(normal_images):
    """Chunked statistics equal the direct numpy computation over all images at once."""
    blurred = lambda x: 0.05 + 0.3 * (x + np.roll(x, 1, axis=1)) / 2  # noqa: E731
    found = collapse.decoder_statistics(_Reconstructs(blurred), normal_images, chunk=40)
    x = normal_images.astype(np.float64)
    y = blurred(x)
    assert found["variation"] == pytest.approx(y.std(axis=0).mean() / x.std(axis=0).mean())
    assert found["slope"] == pytest.approx(np.mean(y * (1 - y)))


@pytest.mark.parametrize(
    "transform, dead",
    [
        (lambda x: x, False),  # perfect reconstruction
        (lambda x: 1.0 - x, False),  # inverted
        (lambda x: 0.1 * x, False),  # dim: a tenth of the input's range (the old test: blank)
        (lambda x: 0.002 + 0.1 * x, False),  # faint and near black, still following the input
        (lambda x: np.full_like(x, 0.5), False),  # grey: not trained yet, not saturated
        (lambda x: np.full_like(x, 0.15), False),  # the mean image: a start, not saturated
        (lambda x: np.full_like(x, 1e-4), True),  # saturated black, whatever the input
        (lambda x: np.full_like(x, 1 - 1e-4), True),  # saturated white
        (lambda x: 1e-4 + 1e-5 * x, True),  # saturated, with a trace of the input
    ],
)
def test_dead_means_saturated_and_blind_to_the_input(normal_images, transform, dead):
    statistics = collapse.decoder_statistics(_Reconstructs(transform), normal_images, chunk=40)
    assert collapse.is_collapsed(statistics) is dead


class _StartsAndEnds(keras.callbacks.Callback):
    """The trainable weights, Eq. 6's averages and their count at each fit's start and end."""

    def __init__(self):
        super().__init__()
        self.starts, self.ends = [], []

    def _state(self):
        return {"weights": [w.numpy().copy() for w in self.model.trainable_weights],
                "averages": [r.numpy().copy() for r in self.model.reference_gradients],
                "count": int(self.model.reference_count.numpy())}

    def on_train_begin(self, logs=None):
        self.starts.append(self._state())

    def on_train_end(self, logs=None):
        self.ends.append(self._state())


def _guarded_fit(images, bias, epochs=3, restart_averages="kept", **kwargs):
    """A guarded GradCon whose output bias starts at ``bias`` (-30: saturated black), fitted."""
    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon(restart_averages=restart_averages)
    model.compile()
    networks.sigmoid_output_bias(model.decoder).assign([bias])
    history = model.fit(images, epochs=epochs, batch_size=32, verbose=0, **kwargs)
    return model, history


@pytest.mark.parametrize("bias", [-30.0, pytest.param(30.0, marks=pytest.mark.slow)])  # black, white
def test_fit_restarts_a_dead_start_in_place_from_the_mean_image(normal_images, bias, caplog):
    best, seen = callbacks.KeepBestWeights(), _StartsAndEnds()
    with caplog.at_level(logging.WARNING, logger="gradcon_tf"):
        model, history = _guarded_fit(
            normal_images, bias, validation_data=normal_images[:48], callbacks=[best, seen]
        )
    assert model.collapsed_starts == [{"draw": 0, "blank_after_epoch": 2}]  # judged after epoch 2
    assert model.starts_from_mean_image
    assert "collapsed after epoch 2" in caplog.text
    assert len(history.restarts) == 1 and history.restarts[0]["after_epoch"] == 2
    assert len(history.restarts[0]["history"]["loss"]) == 2  # the abandoned run
    restarted = history.restarts[0]["restarted_run"]
    losses = history.history["val_recon_loss"]
    assert restarted["epochs"] == 3 and restarted["collapsed_at"] is None
    assert restarted["recon_loss"] == [losses[0], losses[-1]]
    assert f"restart from the mean image trained 3 epochs (validation reconstruction loss " \
           f"{losses[0]:.4g} -> {losses[-1]:.4g})." in caplog.text
    assert "averages kept from the abandoned run" in caplog.text
    assert "With the averages cleared" not in caplog.text
    assert len(history.history["loss"]) == 3  # then the full budget
    assert model.selected_epoch == best.best_epoch
    assert not collapse.is_dead(model, normal_images)
    # The restart starts from the same draw with the bias from data, Eq. 6's averages going on
    # from those the abandoned run reached.
    keras.utils.set_random_seed(0)
    data = gradcon_tf.GradCon(initialization="data")
    data.compile()
    data_start = _StartsAndEnds()
    data.fit(normal_images, epochs=1, batch_size=32, verbose=0, callbacks=[data_start])
    (abandoned_start, restart), (abandoned_end, _) = seen.starts, seen.ends
    assert not any(np.any(a) for a in abandoned_start["averages"])
    for kept, reached in zip(restart["averages"], abandoned_end["averages"]):
        np.testing.assert_array_equal(kept, reached)
    assert restart["count"] == abandoned_end["count"] > 0
    for ours, theirs in zip(restart["weights"], data_start.starts[0]["weights"]):
        np.testing.assert_array_equal(ours, theirs)


def test_a_restart_with_cleared_averages_is_the_data_run_number_for_number(normal_images):
    model, history = _guarded_fit(normal_images, -30.0, restart_averages="cleared",
                                  validation_data=normal_images[:48])
    assert model.collapsed_starts == [{"draw": 0, "blank_after_epoch": 2}]
    keras.utils.set_random_seed(0)
    data = gradcon_tf.GradCon(initialization="data")
    data.compile()
    expected = data.fit(normal_images, validation_data=normal_images[:48], epochs=3,
                        batch_size=32, verbose=0)
    assert history.history["val_loss"] == expected.history["val_loss"]
    assert "With the averages cleared" in history.restarts[0]["restarted_run"]["summary"]
    restored = gradcon_tf.GradCon.from_config(model.get_config())
    assert restored.restart_averages == "cleared"
    with pytest.raises(ValueError, match="restart_averages"):
        gradcon_tf.GradCon(restart_averages="zeros")


@pytest.mark.slow  # kept out of the default run for its time
def test_a_healthy_start_is_the_release_run_number_for_number(normal_images):
    runs = {}
    for initialization in ("guarded", "release"):
        keras.utils.set_random_seed(0)
        model = gradcon_tf.GradCon(initialization=initialization)
        model.compile()
        runs[initialization] = model.fit(normal_images, epochs=2, batch_size=32, verbose=0)
        assert model.collapsed_starts == []
    assert runs["guarded"].history == runs["release"].history
    assert runs["guarded"].restarts == []


def test_the_release_initialization_is_never_restarted(normal_images):
    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon(initialization="release")
    model.compile()
    networks.sigmoid_output_bias(model.decoder).assign([-30.0])
    history = model.fit(normal_images, epochs=1, batch_size=32, verbose=0)
    assert model.collapsed_starts == [] and not hasattr(history, "restarts")
    assert collapse.is_dead(model, normal_images)


def test_fit_train_one_class_and_gradcon_train_give_the_same_run(tmp_path):
    """The Python path a user takes, the recipe, and the command line: the same weights."""
    from gradcon_tf import cli, data, splits

    digits = data.load("digits")
    split = splits.one_class_split(digits["train"], digits["test"], 3, seed=0)
    recipe = experiment.train_one_class(split, 2, seed=0, verbose=0)
    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon(input_shape=split.train.shape[1:])
    model.compile()
    history = model.fit(split.train, validation_data=split.validation, epochs=2, batch_size=64,
                        callbacks=[gradcon_tf.KeepBestWeights()], verbose=0)
    assert history.history == recipe.history.history
    assert model.selected_epoch == recipe.selected_epoch
    path = str(tmp_path / "three.keras")
    argv = ["train", "--data", "digits", "--inlier-class", "3", "--epochs", "2", "--out", path]
    assert cli.main(argv) == 0
    command_line = gradcon_tf.load_model(path)
    assert command_line.selected_epoch == model.selected_epoch
    for ours, theirs, saved in zip(model.get_weights(), recipe.get_weights(),
                                   command_line.get_weights()):
        if ours.shape:  # the threshold (a scalar) is set by calibrate() only in the recipe
            np.testing.assert_array_equal(ours, theirs)
            np.testing.assert_array_equal(ours, saved)


@pytest.mark.slow  # kept out of the default run for its time
def test_what_training_recorded_is_saved_with_the_model(normal_images, tmp_path):
    model, _ = _guarded_fit(normal_images, -30.0, validation_data=normal_images[:48],
                            callbacks=[callbacks.KeepBestWeights()])
    model.calibrate(normal_images, fpr=0.2)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = gradcon_tf.load_model(path)
    assert loaded.initialization == "guarded"
    assert loaded.collapsed_starts == [{"draw": 0, "blank_after_epoch": 2}]
    assert model.selected_epoch is not None
    assert loaded.selected_epoch == model.selected_epoch


def test_models_saved_before_initialization_existed_still_load():
    config = gradcon_tf.GradCon().get_config()
    del config["initialization"]
    for old, initialization in ((True, "data"), (False, "release")):
        model = gradcon_tf.GradCon.from_config({**config, "output_bias_from_data": old})
        assert model.initialization == initialization
    model = gradcon_tf.GradCon()
    store = {}
    keras.Model.save_own_variables(model, store)  # the variables alone, as older files hold
    model.load_own_variables(store)
    assert model.selected_epoch is None and model.collapsed_starts == []
    with pytest.raises(ValueError, match="initialization must be one of"):
        gradcon_tf.GradCon(initialization="pytorch")


def test_the_guard_judges_training_images_from_a_dataset_when_there_is_no_validation(normal_images):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(normal_images).batch(32)
    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon()
    model.compile()
    networks.sigmoid_output_bias(model.decoder).assign([-30.0])
    history = model.fit(dataset, epochs=1, verbose=0)  # one epoch: judged after it
    assert model.collapsed_starts == [{"draw": 0, "blank_after_epoch": 1}]
    assert len(history.history["loss"]) == 1 and history.restarts[0]["after_epoch"] == 1
