"""Crash safety, NaN guards, safe loading and property-based checks of the input paths."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradcon_tf
from gradcon_tf import _files as files
from gradcon_tf import preprocessing
from gradcon_tf.callbacks import NonFiniteLossError
from gradcon_tf.data.idx import DataFileError, read_idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "resumable_fit.py")


def run(args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)


@pytest.mark.slow  # 10-20 s; run with `pytest -m slow`
def test_sigkill_mid_epoch_then_the_same_command_resumes_exactly(tmp_path):
    crashed, straight = tmp_path / "crashed", tmp_path / "straight"
    first = run([str(crashed), "--kill-at-batch", "2"])
    assert first.returncode == -9  # killed by SIGKILL in epoch 3
    assert not (crashed / "final.keras").exists()
    assert (crashed / "backup").is_dir()
    assert run([str(crashed)]).returncode == 0  # the same command, restarted
    assert run([str(straight)]).returncode == 0  # never interrupted
    resumed = keras.models.load_model(crashed / "final.keras")
    reference = keras.models.load_model(straight / "final.keras")
    assert int(resumed.reference_count.numpy()) == int(reference.reference_count.numpy()) == 24
    for a, b in zip(resumed.weights, reference.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
    assert not [p for p in os.listdir(crashed) if p.startswith(".tmp-")]


def test_nan_loss_stops_training_with_a_clear_error_and_keeps_the_checkpoint(tmp_path, normal_images):
    model = gradcon_tf.GradCon()
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    checkpoint = tmp_path / "best.keras"
    callback = keras.callbacks.ModelCheckpoint(checkpoint, monitor="loss")
    model.fit(normal_images[:32], epochs=1, batch_size=16, callbacks=[callback], verbose=0)
    saved = checkpoint.read_bytes()
    good = [w.numpy().copy() for w in model.weights]
    model.compile(optimizer=keras.optimizers.SGD(1e12))  # diverges within a few steps
    with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf).*epoch 1.*restored"):
        model.fit(normal_images[:64], epochs=3, batch_size=16, callbacks=[callback], verbose=0)
    assert checkpoint.read_bytes() == saved
    for before, after in zip(good, model.weights):  # weights put back to the last good state
        np.testing.assert_array_equal(before, after.numpy())


def test_atomic_output_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "report.json"
    files.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with files.atomic_output(target) as temporary:
            with open(temporary, "w") as handle:
                handle.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]


def test_loading_is_safe_mode_and_refuses_code(tmp_path):
    lambda_model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "lambda.keras"
    lambda_model.save(path)
    with pytest.raises(ValueError, match="(?i)unsafe|lambda"):
        keras.models.load_model(path)  # Keras' default safe_mode=True refuses the lambda
    model = gradcon_tf.GradCon()
    assert not any(isinstance(l, keras.layers.Lambda) for l in model.encoder.layers + model.decoder.layers)


def test_loading_something_that_is_not_gradcon_is_a_clear_error(tmp_path):
    plain = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="not a GradCon model"):
        gradcon_tf.load_model(tmp_path / "plain.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.keras"):
        gradcon_tf.load_model(tmp_path / "junk.keras")


# ------------------------------------------------------------------------- property-based


image_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int32, np.float16]),
    shape=hnp.array_shapes(min_dims=2, max_dims=5, min_side=0, max_side=30),
    elements={"allow_nan": True, "allow_infinity": True} ,
)


@settings(max_examples=150, deadline=None)
@given(images=image_arrays)
def test_image_check_accepts_exactly_the_documented_inputs(images):
    shape = (28, 28, 1)
    try:
        checked = preprocessing.check_images(images, shape)
    except ValueError as error:
        assert str(error)  # a message, not a crash of another kind
        return
    assert checked.shape[1:] == shape and len(checked) > 0
    if checked.dtype == np.uint8:
        return
    assert checked.dtype == np.float32 and np.isfinite(checked).all()
    assert checked.min() >= 0.0 and checked.max() <= 1.0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), batch_size=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_scores_are_finite_and_per_sample_for_any_batching(trained, n, batch_size, seed):
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)
    out = trained.score(images, batch_size=batch_size)
    assert out["score"].shape == (n,) and out["layer_cosines"].shape == (n, 4)
    assert np.isfinite(out["score"]).all() and (np.abs(out["layer_cosines"]) <= 1 + 1e-6).all()
    single = trained.score(images[:1])["score"][0]
    assert out["score"][0] == pytest.approx(single, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_idx_reader_rejects_any_malformed_bytes_with_the_file_name(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("idx") / "random-idx-ubyte"
    path.write_bytes(data)
    try:
        array = read_idx(path)
    except DataFileError as error:
        assert str(path) in str(error)
        return
    assert array.size * array.itemsize == len(data) - 4 - 4 * array.ndim
