import keras
import numpy as np
import pytest

from gradcon_tf.model import GradCon
from gradcon_tf.optimizers import CorrectedEpsilonAdam


def _algorithm_one(gradients, start, lr, beta_1, beta_2, epsilon):
    """Kingma & Ba (2015), Algorithm 1, in float64 numpy: the parameters after each step."""
    theta, m, v, path = start.astype(np.float64), 0.0, 0.0, []
    for t, g in enumerate(gradients, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        m_hat, v_hat = m / (1 - beta_1**t), v / (1 - beta_2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + epsilon)
        path.append(theta)
    return path


def _keras_path(optimizer, gradients, start):
    variable = keras.Variable(start)
    path = []
    for g in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
        path.append(keras.ops.convert_to_numpy(variable).astype(np.float64))
    return path


@pytest.mark.parametrize("scale", [1e-8, 1.0])
def test_matches_algorithm_one(scale):
    """Gradients of 1e-8 (where epsilon's placement matters) and of 1; 30 steps."""
    rng = np.random.default_rng(0)
    gradients = [(rng.normal(size=5) * scale).astype("float32") for _ in range(30)]
    start = rng.normal(size=5).astype("float32")
    expected = _algorithm_one(gradients, start, 1e-3, 0.9, 0.999, 1e-8)
    actual = _keras_path(CorrectedEpsilonAdam(1e-3, epsilon=1e-8), gradients, start)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6)
    if scale < 1:  # Keras' epsilon-hat Adam takes visibly different steps here
        keras_adam = _keras_path(keras.optimizers.Adam(1e-3, epsilon=1e-8), gradients, start)
        assert np.max(np.abs(np.subtract(keras_adam, expected))) > 1e-4


def test_is_the_default_and_survives_save_load(tmp_path):
    model = GradCon()
    model.compile()
    assert isinstance(model.optimizer, CorrectedEpsilonAdam)
    assert model.optimizer.epsilon == pytest.approx(1e-8)
    images = np.random.default_rng(1).uniform(size=(8, 28, 28, 1)).astype("float32")
    model.fit(images, epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, CorrectedEpsilonAdam)
    assert int(loaded.optimizer.iterations.numpy()) == 2


def test_reproduce_records_the_default_optimizer():
    from gradcon_tf.reproduction import store

    model = GradCon()
    model.compile()
    settings = store.Settings(data="x", epochs=1, batch_size=64, alpha=0.03, beta=0.12)
    assert settings.optimizer == type(model.optimizer).__name__


def test_rejects_amsgrad():
    with pytest.raises(ValueError, match="amsgrad"):
        CorrectedEpsilonAdam(amsgrad=True)


def test_compile_sets_the_default_optimizer_learning_rate():
    model = GradCon()
    model.compile(learning_rate=3e-4)
    assert isinstance(model.optimizer, CorrectedEpsilonAdam)
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-4)
    assert model.optimizer.epsilon == pytest.approx(1e-8)
    model.compile()
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)  # the paper's
    with pytest.raises(ValueError, match="not both"):
        model.compile(optimizer=keras.optimizers.SGD(), learning_rate=1e-3)
    with pytest.raises(ValueError, match="positive"):
        model.compile(learning_rate=0.0)
