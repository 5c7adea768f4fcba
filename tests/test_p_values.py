"""Conformal p-values: the formula, their validity on fresh normal data, saved with the model."""

import warnings

import numpy as np
import pytest

import gradcon_tf
from tests.helpers import bar_images


@pytest.fixture(scope="module")
def calibrated():
    model = gradcon_tf.GradCon()  # validity needs no training: any fixed score function will do
    model.calibrate(bar_images(500, "horizontal", seed=10), fpr=0.1)
    return model


def test_p_value_is_the_share_of_calibration_scores_at_or_above(calibrated):
    reference = calibrated.calibration_scores
    assert np.all(np.diff(reference) >= 0) and len(reference) == 500
    probes = np.concatenate([reference[[0, 17, 250, 499]], [reference[0] - 1.0, reference[-1] + 1.0]])
    expected = [(1 + np.sum(reference >= s)) / (len(reference) + 1) for s in probes]
    np.testing.assert_allclose(calibrated.p_values(probes), expected, rtol=0, atol=1e-12)
    assert calibrated.p_values([reference[-1] + 1.0])[0] == pytest.approx(1 / 501)


def test_p_values_are_valid_on_fresh_normal_images(calibrated):
    fresh = bar_images(2000, "horizontal", seed=11)
    outputs = calibrated.score(fresh)
    assert np.all((outputs["p_value"] > 0) & (outputs["p_value"] <= 1))
    for level in (0.01, 0.05, 0.1, 0.2):
        share = np.mean(outputs["p_value"] <= level)
        # sampling error of the calibration set (500) and of the fresh set (2000), 3 sigma each
        error = 3 * np.sqrt(level * (1 - level) / 500) + 3 * np.sqrt(level * (1 - level) / 2000)
        assert share <= level + error, (level, share)
    # the threshold keeps its meaning: about fpr of normal images above it
    assert abs(np.mean(outputs["is_anomaly"]) - 0.1) < 3 * np.sqrt(0.09 / 500) + 3 * np.sqrt(0.09 / 2000)


def test_calibration_scores_are_saved_with_the_model(calibrated, tmp_path):
    path = tmp_path / "calibrated.keras"
    calibrated.save(path)
    loaded = gradcon_tf.load_model(path)
    np.testing.assert_array_equal(loaded.calibration_scores, calibrated.calibration_scores)
    images = bar_images(8, "vertical", seed=12)
    np.testing.assert_array_equal(loaded.score(images)["p_value"], calibrated.score(images)["p_value"])
    uncalibrated = gradcon_tf.GradCon()
    uncalibrated.save(tmp_path / "plain.keras")
    plain = gradcon_tf.load_model(tmp_path / "plain.keras")
    assert plain.calibration_scores is None and "p_value" not in plain.score(images)
    with pytest.raises(ValueError, match="calibrate"):
        plain.p_values([0.0])


@pytest.mark.parametrize(
    "count, fpr, warns, needed",
    [
        (12, 0.05, True, 200),  # 0 above the threshold, and p >= 1/13 > 0.05
        (120, 0.05, True, 200),  # 6 above
        (200, 0.05, False, None),  # 10 above
        (60, 0.2, False, None),  # 12 above
        (1000, 0.001, True, 10000),  # 1 above
    ],
)
def test_calibrate_warns_when_the_normal_images_are_too_few(count, fpr, warns, needed):
    model = gradcon_tf.GradCon()
    images = bar_images(count, "horizontal", seed=12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.calibrate(images, fpr=fpr)
    shown = [w for w in caught if issubclass(w.category, gradcon_tf.CalibrationWarning)]
    assert len(shown) == int(warns)
    if warns:
        assert f"on {count} normal images: {int(count * fpr)} score above" in str(shown[0].message)
        assert f"use at least {needed} images" in str(shown[0].message)
        assert ("p_value is never below" in str(shown[0].message)) == (1 / (count + 1) > fpr)
    # the threshold still leaves at most fpr of the calibration images above it
    assert np.mean(model.score(images)["score"] > model.threshold) <= fpr


def test_the_exported_graph_computes_the_same_p_values_as_numpy():
    """One definition in NumPy (calibration.py), one in builtin TF ops (scoring_graph.py): equal,
    ties with calibration scores and scores outside their range included."""
    from gradcon_tf import calibration, scoring_graph

    rng = np.random.default_rng(0)
    reference = np.sort(rng.normal(size=200).round(2))  # rounded: many ties
    scores = np.concatenate([reference[::7], rng.normal(size=50).round(2), [-9.0, 9.0]])
    by_hand = [(1 + np.sum(reference >= s)) / (len(reference) + 1) for s in scores]
    numpy_values = calibration.conformal_p_values(reference, scores)
    graph_values = scoring_graph._conformal_p_values(reference)(scores.astype(np.float32)).numpy()
    np.testing.assert_allclose(numpy_values, by_hand, rtol=0, atol=1e-12)
    np.testing.assert_allclose(graph_values, by_hand, rtol=0, atol=1e-6)
