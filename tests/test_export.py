"""Export: Keras scores vs the SavedModel (loaded without gradcon_tf) vs LiteRT, number for number.

One briefly trained model and one export are shared by the whole file (session fixtures); the
SavedModel is loaded in a subprocess that never imports gradcon_tf.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradcon_tf import GradCon, gradients

from gradcon_tf.export import export_model, litert, read_manifest, serving_client
from gradcon_tf.scoring_graph import MAP_NAMES, MAP_SCALES, OUTPUT_NAMES, ScoringModule

FLOAT_TOLERANCE = 1e-5  # float32 end to end: same ops, different kernels and summation orders
SCORE_KEYS = ("score", "recon", "grad_loss", "layer_cosines")
SIGNATURES = ["serving_default", "score_uint8", "maps", "maps_uint8"]


def blob_images(rng, count):
    """'Normal' images: one bright Gaussian blob near the centre, uint8."""
    grid = np.arange(28)[None, :, None]
    centres = rng.uniform(11, 17, size=(count, 2))
    rows = np.exp(-((grid - centres[:, 0, None, None]) ** 2) / 18.0)
    cols = np.exp(-((grid.transpose(0, 2, 1) - centres[:, 1, None, None]) ** 2) / 18.0)
    return np.round(255 * rows * cols)[..., None].astype(np.uint8)


def noise_images(rng, count):
    """'Anomalous' images: uniform noise, uint8."""
    return rng.integers(0, 256, size=(count, 28, 28, 1), dtype=np.uint8)


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(1)
    return np.concatenate([blob_images(rng, 6), noise_images(rng, 6)])


@pytest.fixture(scope="session")
def trained_model():
    keras.utils.set_random_seed(0)
    model = GradCon()
    model.compile()
    train = blob_images(np.random.default_rng(0), 64)
    model.fit(train, epochs=2, batch_size=32, verbose=0)  # 4 steps: non-zero reference gradients
    assert all(float(tf.norm(r.value)) > 0 for r in model.reference_gradients)
    return model


@pytest.fixture(scope="session")
def keras_scores(trained_model, images):
    return trained_model.score(images, maps=True)


@pytest.fixture(scope="session")
def threshold(keras_scores):
    return float(np.median(keras_scores["score"]))  # half the images above, half below


@pytest.fixture(scope="session")
def exported(trained_model, threshold, tmp_path_factory):
    """The model saved as .keras and exported by `gradcon export`, as users run it."""
    directory = tmp_path_factory.mktemp("export")
    model_path = str(directory / "model.keras")
    trained_model.save(model_path)
    out = directory / "out"
    result = subprocess.run(
        [sys.executable, "-m", "gradcon_tf.cli", "export", model_path, "--out", str(out),
         "--threshold", repr(threshold)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "export.json") as f:
        written = json.load(f)
    # the paths in export.json are relative to its folder, wherever the command ran
    assert written["litert"]["f32"]["path"] == "gradcon_f32.tflite"
    assert written["saved_model"] == os.path.join("saved_model", "1")
    return read_manifest(str(out))


def assert_scores_close(actual, expected, tolerance=FLOAT_TOLERANCE):
    """The scores to ``tolerance``; the maps (values up to ~50) to ``tolerance`` relative too."""
    for key in SCORE_KEYS:
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=tolerance, err_msg=key)
    for key in MAP_NAMES:
        if key in actual:
            np.testing.assert_allclose(
                actual[key], expected[key], rtol=tolerance, atol=tolerance, err_msg=key
            )


def expected_outputs(signature):
    return set(OUTPUT_NAMES) | ({*MAP_NAMES, MAP_SCALES} if signature.startswith("maps") else set())


def is_uint8(signature):
    return signature.endswith("uint8")


# ------------------------------------------------------------------------------------ SavedModel

SAVED_MODEL_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    path, images_path, out_path = sys.argv[1:]
    loaded = tf.saved_model.load(path)
    images = np.load(images_path)
    outputs = {}
    for key in ("serving_default", "score_uint8", "maps", "maps_uint8"):
        data = images if key.endswith("uint8") else images.astype(np.float32) / 255.0
        result = loaded.signatures[key](images=tf.constant(data))
        outputs.update({f"{key}/{name}": value.numpy() for name, value in result.items()})
    assert "gradcon_tf" not in sys.modules, "the SavedModel must load without gradcon_tf"
    np.savez(out_path, **outputs)
    """
)


@pytest.fixture(scope="session")
def saved_model_outputs(exported, images, tmp_path_factory):
    directory = tmp_path_factory.mktemp("saved_model_run")
    np.save(directory / "images.npy", images)
    env = dict(os.environ, PYTHONPATH="")  # nothing from the repository on the path
    result = subprocess.run(
        [sys.executable, "-c", SAVED_MODEL_SCRIPT, exported["saved_model"], str(directory / "images.npy"),
         str(directory / "out.npz")],
        cwd=str(directory),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(directory / "out.npz") as data:
        return {key: data[key] for key in data.files}


def signature_outputs(outputs, key):
    prefix = key + "/"
    return {name[len(prefix):]: value for name, value in outputs.items() if name.startswith(prefix)}


def test_saved_model_layout(exported):
    version_dir = exported["saved_model"]
    assert os.path.basename(version_dir) == "1"
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(version_dir, "variables"))


@pytest.mark.parametrize("signature", SIGNATURES)
def test_saved_model_matches_keras(saved_model_outputs, keras_scores, threshold, signature):
    outputs = signature_outputs(saved_model_outputs, signature)
    assert set(outputs) == expected_outputs(signature)
    assert_scores_close(outputs, keras_scores)
    np.testing.assert_array_equal(outputs["threshold"], np.full(len(outputs["score"]), threshold, np.float32))
    np.testing.assert_array_equal(outputs["is_anomaly"], outputs["score"] > np.float32(threshold))
    assert 0 < outputs["is_anomaly"].sum() < len(outputs["is_anomaly"])


@pytest.mark.slow  # kept out of the default run for its time
def test_saved_model_cli_lists_signatures(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    cli = cli if os.path.exists(cli) else shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli is not installed")
    result = subprocess.run(
        [cli, "show", "--dir", exported["saved_model"], "--all"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for signature in SIGNATURES:
        assert f"signature_def['{signature}']" in result.stdout
    for name in OUTPUT_NAMES + MAP_NAMES:
        assert f"outputs['{name}']" in result.stdout
    assert "DT_UINT8" in result.stdout and "(-1, 28, 28, 1)" in result.stdout


# ------------------------------------------------------------------------------------ LiteRT


def litert_outputs(path, images, signature="serving_default"):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    runner = interpreter.get_signature_runner(signature)
    data = images if is_uint8(signature) else images.astype(np.float32) / 255.0
    return runner(images=data)


def test_litert_models_use_builtin_ops_only(exported):
    assert set(exported["litert"]) == {"f32", "f16", "dynamic_int8"}
    for info in exported["litert"].values():
        assert "BATCH_MATMUL" in info["ops"] and "TRANSPOSE_CONV" in info["ops"]
        with open(info["path"], "rb") as f:
            assert litert.check_builtin_only(f.read()) == info["ops"]
    assert "f32" in os.path.basename(exported["litert"]["f32"]["path"])


@pytest.mark.parametrize("signature", SIGNATURES)
def test_litert_f32_matches_keras(exported, images, keras_scores, threshold, signature):
    outputs = litert_outputs(exported["litert"]["f32"]["path"], images, signature)
    assert set(outputs) == expected_outputs(signature)
    assert_scores_close(outputs, keras_scores)
    np.testing.assert_array_equal(outputs["is_anomaly"], outputs["score"] > np.float32(threshold))
    np.testing.assert_array_equal(outputs["threshold"], np.float32(threshold))


def test_litert_f32_batch_of_one_matches_batch(exported, images):
    batch = litert_outputs(exported["litert"]["f32"]["path"], images)
    single = [litert_outputs(exported["litert"]["f32"]["path"], images[i : i + 1]) for i in range(3)]
    for index, outputs in enumerate(single):
        np.testing.assert_allclose(outputs["score"][0], batch["score"][index], rtol=0, atol=FLOAT_TOLERANCE)


def test_quantized_litert_models_keep_the_ranking(exported, images, keras_scores):
    # Quantized weights change the scores slightly (f16: ~1e-3 relative; int8 more); what matters
    # for detection is the order of the scores. Noise images must still score above blobs.
    for tag in ("f16", "dynamic_int8"):
        scores = litert_outputs(exported["litert"][tag]["path"], images)["score"]
        np.testing.assert_allclose(scores, keras_scores["score"], rtol=0.05, atol=0.02, err_msg=tag)
        assert scores[6:].min() > scores[:6].max(), tag
    assert keras_scores["score"][6:].min() > keras_scores["score"][:6].max()
    sizes = {tag: info["bytes"] for tag, info in exported["litert"].items()}
    assert sizes["f16"] < 0.6 * sizes["f32"] and sizes["dynamic_int8"] < 0.6 * sizes["f32"]


def test_builtin_check_rejects_flex_ops():
    """A GradientTape graph needs Flex ops: converting it with Flex allowed must fail the check."""
    kernel = tf.Variable(tf.random.normal([4, 4, 1, 2]))

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
    def kernel_gradient(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.relu(tf.nn.conv2d(images, kernel, 2, "VALID")))
        return {"gradient": tape.gradient(loss, kernel)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [kernel_gradient.get_concrete_function()], kernel_gradient
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    content = converter.convert()
    assert any(n.startswith("CUSTOM:Flex") for n in litert.operator_names(content))
    with pytest.raises(litert.NonBuiltinOpError, match="Flex"):
        litert.check_builtin_only(content)


def exported_with_random_references(input_shape, tmp_path, seed, **options):
    """(an untrained model with random reference gradients, its f32 export's manifest, the rng)."""
    keras.utils.set_random_seed(seed)
    model = GradCon(input_shape=input_shape, **options)
    rng = np.random.default_rng(seed)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    return model, export_model(model, str(tmp_path / "export"), targets=("f32",)), rng


@pytest.mark.slow  # kept out of the default run for its time
def test_rgb_model_resizes_inside_the_litert_graph(tmp_path):
    """A 32x32 RGB model (the paper's CIFAR-10 setting) resizes to 28x28 in the exported graph."""
    model, manifest, rng = exported_with_random_references((32, 32, 3), tmp_path, seed=3)
    assert "RESIZE_BILINEAR" in manifest["litert"]["f32"]["ops"]
    images = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    outputs = litert_outputs(manifest["litert"]["f32"]["path"], images, "score_uint8")
    assert_scores_close(outputs, model.score(images))
    outputs = litert_outputs(manifest["litert"]["f32"]["path"], images, "maps_uint8")
    assert outputs["grad_map"].shape == (5, 32, 32)
    assert_scores_close(outputs, model.score(images, maps=True))


def test_staged_model_exports_builtin_only_with_parity(tmp_path):
    """A network above 32 px (the staged autoencoder, non-square) in the SavedModel, LiteRT and
    the edge scorer: the scores and the maps at the working resolution, to 1e-5."""
    import edge_demo.scorer

    model, manifest, rng = exported_with_random_references((48, 40, 1), tmp_path, seed=4)
    litert.check_builtin_only(open(manifest["litert"]["f32"]["path"], "rb").read())
    images = rng.integers(0, 256, size=(3, 48, 40, 1), dtype=np.uint8)
    expected = model.score(images, maps=True)
    assert_scores_close(litert_outputs(manifest["litert"]["f32"]["path"], images, "maps_uint8"), expected)
    served = tf.saved_model.load(manifest["saved_model"]).signatures["maps_uint8"](images=tf.constant(images))
    assert_scores_close({k: v.numpy() for k, v in served.items()}, expected)
    edge = edge_demo.scorer.Scorer(manifest["litert"]["f32"]["path"], maps=True).score(images)
    assert edge["score_map"].shape == (3, 48, 40)
    assert_scores_close(edge, expected)


@pytest.mark.slow
def test_full_int8_with_representative_images(trained_model, images, exported, tmp_path):
    normal = blob_images(np.random.default_rng(5), 32)
    manifest = export_model(trained_model, str(tmp_path / "int8"), targets=(), representative_images=normal)
    info = manifest["litert"]["full_int8"]
    with open(info["path"], "rb") as f:
        assert litert.check_builtin_only(f.read())
    assert "QUANTIZE" in info["ops"] and "DEQUANTIZE" in info["ops"]  # int8 inside, float outside
    assert info["bytes"] < 0.35 * exported["litert"]["f32"]["bytes"]  # int8 weights: about 1/4
    outputs = litert_outputs(info["path"], images)  # float signature only
    assert np.all(np.isfinite(outputs["score"])) and outputs["score"].shape == (len(images),)
    # No accuracy check here: activations are clipped to the ranges seen in calibration, and on
    # this barely trained model the noise images (far outside them) even rank below the blobs.
    # The accuracy of full int8 is measured on MNIST by benchmarks/quantization_report.py.


@pytest.mark.slow  # kept out of the default run for its time
def test_keras_export_writes_the_scoring_saved_model(trained_model, keras_scores, images, tmp_path):
    """``model.export(path)`` (Keras' API) writes the scoring SavedModel; other formats name
    ``gradcon export``."""
    path = str(tmp_path / "scorer")
    trained_model.export(path, verbose=False)
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["score_uint8"](images=tf.constant(images))
    assert_scores_close({k: outputs[k].numpy() for k in SCORE_KEYS}, keras_scores)
    with pytest.raises(ValueError, match="gradcon export"):
        trained_model.export(str(tmp_path / "m.tflite"), format="litert")


def test_calibrated_model_exports_its_p_values_and_map_scales(trained_model, images, tmp_path):
    """The calibration scores are frozen into the graph: SavedModel and LiteRT f32 p-values equal
    Keras' (one calibration step apart at most, where float32 scores straddle a tie); the map
    scales are in the map signatures and in export.json, NaN / null for an uncalibrated model."""
    model = GradCon.from_config(trained_model.get_config())
    model.set_weights(trained_model.get_weights())
    model.calibrate(images[::2])
    expected = model.score(images)["p_value"]
    step = 1.0 / (len(model.calibration_scores) + 1)
    manifest = export_model(model, str(tmp_path / "out"), targets=("f32",))  # builtin ops checked
    loaded = tf.saved_model.load(manifest["saved_model"])
    served = loaded.signatures["score_uint8"](images=tf.constant(images))["p_value"].numpy()
    np.testing.assert_allclose(served, expected, rtol=0, atol=step + 1e-6)
    lite = litert_outputs(manifest["litert"]["f32"]["path"], images, "score_uint8")["p_value"]
    np.testing.assert_allclose(lite, expected, rtol=0, atol=step + 1e-6)
    assert np.all(np.isnan(ScoringModule(trained_model).score_uint8(tf.constant(images))["p_value"]))
    scales = [model.map_scales[name] for name in MAP_NAMES]
    assert all(s > 0 for s in scales)
    assert read_manifest(str(tmp_path / "out"))["map_scales"] == model.map_scales
    lite = litert_outputs(manifest["litert"]["f32"]["path"], images[:2], "maps_uint8")[MAP_SCALES]
    np.testing.assert_allclose(lite, np.float32([scales, scales]), rtol=1e-6)
    uncalibrated = ScoringModule(trained_model).maps_uint8(tf.constant(images[:2]))[MAP_SCALES]
    assert uncalibrated.shape == (2, 3) and np.all(np.isnan(uncalibrated))


# ------------------------------------------------------------------------------------ threshold


def test_unset_threshold_gives_nan_and_no_anomalies(trained_model, images):
    assert trained_model.threshold is None
    module = ScoringModule(trained_model)
    outputs = module.score_uint8(tf.constant(images))
    assert np.all(np.isnan(outputs["threshold"].numpy()))
    assert not outputs["is_anomaly"].numpy().any()


def test_an_interrupted_export_leaves_its_folder_as_it_was(trained_model, tmp_path, monkeypatch):
    """Ctrl-C after the SavedModel is written: a new folder does not appear, and an existing
    one keeps its earlier version and files only; the next export adds its version."""
    def interrupted(saved_model_dir):
        assert os.path.isfile(os.path.join(saved_model_dir, "saved_model.pb"))  # written, not moved
        raise KeyboardInterrupt

    monkeypatch.setitem(litert.TARGETS, "f16", interrupted)
    new = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        export_model(trained_model, str(new), targets=("f16",))
    assert os.listdir(tmp_path) == []  # no folder, no temporary left
    existing = tmp_path / "existing"
    export_model(trained_model, str(existing), targets=())
    before = sorted(os.listdir(existing)), os.listdir(existing / "saved_model")
    with pytest.raises(KeyboardInterrupt):
        export_model(trained_model, str(existing), version=2, targets=("f16",))
    assert (sorted(os.listdir(existing)), os.listdir(existing / "saved_model")) == before
    assert os.listdir(tmp_path) == ["existing"]
    with pytest.raises(FileExistsError, match="pick another --version"):
        export_model(trained_model, str(existing), version=1, targets=())
    monkeypatch.undo()
    manifest = export_model(trained_model, str(existing), version=2, targets=())
    assert sorted(os.listdir(existing / "saved_model")) == ["1", "2"]
    assert manifest["saved_model"] == os.path.join(str(existing), "saved_model", "2")


@pytest.mark.slow  # kept out of the default run for its time
def test_generic_decoder_exports_saved_model_but_refuses_litert(tmp_path, images):
    """A decoder without the fast path (a Dense layer) falls back to the generic tape path."""
    decoder = keras.Sequential(
        [
            keras.Input((3, 3, 64)),
            keras.layers.Flatten(),
            keras.layers.Dense(28 * 28, activation="sigmoid"),
            keras.layers.Reshape((28, 28, 1)),
        ]
    )
    model = GradCon(decoder=decoder)
    assert gradients.plan_decoder(model.decoder) is None
    with pytest.raises(ValueError, match="LiteRT export needs a decoder"):
        export_model(model, str(tmp_path / "refused"), targets=("f32",))
    assert not os.path.exists(tmp_path / "refused")
    manifest = export_model(model, str(tmp_path / "generic"), targets=())
    loaded = tf.saved_model.load(manifest["saved_model"])
    outputs = loaded.signatures["score_uint8"](images=tf.constant(images[:4]))
    expected = model.score(images[:4])
    assert_scores_close({k: v.numpy() for k, v in outputs.items()}, expected)


# ------------------------------------------------------------------------------------ REST client


def test_rest_client_format():
    body = serving_client.request_body(np.zeros((2, 28, 28, 1), np.uint8))
    assert body["signature_name"] == "score_uint8"
    assert np.asarray(body["instances"]).shape == (2, 28, 28, 1)
    assert serving_client.request_body(np.zeros((1, 28, 28, 1)))["signature_name"] == "serving_default"
    parsed = serving_client.parse_predictions(
        {"predictions": [{"score": 0.5, "layer_cosines": [1, 2]}, {"score": 0.7, "layer_cosines": [3, 4]}]}
    )
    np.testing.assert_array_equal(parsed["score"], [0.5, 0.7])
    np.testing.assert_array_equal(parsed["layer_cosines"], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="bad input"):
        serving_client.parse_predictions({"error": "bad input"})


def test_rest_client_against_tensorflow_model_server(exported, images, keras_scores):
    server = shutil.which("tensorflow_model_server")
    if server is None:
        pytest.skip("tensorflow_model_server is not on PATH (it cannot be installed on this machine)")
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = os.path.dirname(exported["saved_model"])
    process = subprocess.Popen(
        [server, f"--rest_api_port={port}", "--port=0", "--model_name=gradcon", f"--model_base_path={base}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                outputs = serving_client.predict(images, url=url, model="gradcon", timeout=5)
                break
            except Exception:  # not up yet
                time.sleep(0.5)
        else:
            pytest.fail("tensorflow_model_server did not answer within 60 s")
        assert_scores_close(outputs, keras_scores)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_local_image_score_and_illumination_removal_export_builtin_only_with_parity(tmp_path):
    """``image_score="local"`` (the blurred score map's top 1 %) and ``remove_illumination`` in
    the SavedModel, LiteRT and the edge scorer, plain and map signatures, to 1e-5."""
    import edge_demo.scorer

    model, manifest, rng = exported_with_random_references(
        (48, 40, 1), tmp_path, seed=5, image_score="local", remove_illumination=True)
    path = manifest["litert"]["f32"]["path"]
    litert.check_builtin_only(open(path, "rb").read())
    assert {"MIRROR_PAD", "DEPTHWISE_CONV_2D", "TOPK_V2"} <= set(manifest["litert"]["f32"]["ops"])
    images = rng.integers(0, 256, size=(3, 48, 40, 1), dtype=np.uint8)
    expected = model.score(images, maps=True)
    mean_score = expected["recon"] + model.beta * expected["grad_loss"]
    assert np.abs(expected["score"] - mean_score).min() > 1e-4  # the local score, not the mean
    for signature in ("score_uint8", "maps_uint8"):
        assert_scores_close(litert_outputs(path, images, signature), expected)
        served = tf.saved_model.load(manifest["saved_model"]).signatures[signature](images=tf.constant(images))
        assert_scores_close({k: v.numpy() for k, v in served.items()}, expected)
    assert_scores_close(edge_demo.scorer.Scorer(path).score(images), expected)
