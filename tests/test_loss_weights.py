"""alpha and beta for a dataset: the paper's constants, or scaled to the images' pixel variance."""

import numpy as np
import pytest

from gradcon_tf import loss_weights


def test_paper_weights_are_the_papers():
    assert loss_weights.loss_weights("paper") == {"alpha": 0.03, "beta": 0.12}


def test_data_weights_scale_with_the_pixel_variance():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 6, 5, 1), dtype=np.uint8)
    by_pixel = [np.var(images[:, r, c, 0] / 255.0) for r in range(6) for c in range(5)]
    variance = float(np.mean(by_pixel))
    assert loss_weights.pixel_variance(images) == pytest.approx(variance, rel=1e-12)
    assert loss_weights.pixel_variance(images / np.float32(255)) == pytest.approx(variance, rel=1e-6)
    weights = loss_weights.loss_weights("data", images)
    assert weights["alpha"] == pytest.approx(0.03 * variance / 0.054)
    assert weights["beta"] == pytest.approx(4 * weights["alpha"])
    # low contrast (a quarter of the range): a sixteenth of the variance, of alpha and beta
    dim = loss_weights.loss_weights("data", (images // 4).astype(np.uint8))
    assert dim["alpha"] == pytest.approx(weights["alpha"] / 16, rel=0.05)


def test_the_plain_cae_keeps_alpha_zero():
    images = np.full((4, 3, 3, 1), 0.5, np.float32)
    images[0] = 0.0
    weights = loss_weights.loss_weights("data", images, alpha=0.0)
    assert weights["alpha"] == 0.0 and weights["beta"] > 0


def test_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="paper"):
        loss_weights.loss_weights("mnist")


def test_train_one_class_and_the_cli_use_the_weights_asked_for():
    from gradcon_tf import cli, experiment
    from gradcon_tf.cli import training_options
    from gradcon_tf.splits import OneClassSplit

    rng = np.random.default_rng(1)
    images = (96 + rng.integers(0, 64, size=(24, 28, 28, 1))).astype(np.uint8)  # low contrast
    split = OneClassSplit(images[:16], images[16:], images[16:], np.zeros(8, bool))
    model = experiment.train_one_class(split, epochs=1, verbose=0, loss_weights="data")
    expected = loss_weights.loss_weights("data", images[:16])
    assert (model.alpha, model.beta) == pytest.approx((expected["alpha"], expected["beta"]))
    assert model.alpha < 0.03 / 10
    parser = cli.build_parser()
    folder = parser.parse_args(["train", "--normal", "good", "--out", "m.keras"])
    labelled = parser.parse_args(["train", "--inlier-class", "0", "--out", "m.keras"])
    chosen = parser.parse_args(["train", "--normal", "g", "--out", "m", "--loss-weights", "paper"])
    chosen_weights = [training_options.recipe_of(a, "train").loss_weights for a in (folder, labelled, chosen)]
    assert chosen_weights == ["data", "paper", "paper"]
