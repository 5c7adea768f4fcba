"""The edge demo: same scores as Keras from PNG files, no TensorFlow, clear errors, stream mode."""

import os
import re
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from PIL import Image

from gradcon_tf import GradCon

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # `export` and `edge_demo` live at the repository root

from export.exporter import export_model  # noqa: E402

FLOAT_TOLERANCE = 1e-5
LINE = re.compile(r"^(?P<path>\S+)\tscore=(?P<score>-?[0-9.]+)\t(?P<decision>\S+)$")

# Runs the demo in this interpreter after forbidding the heavy frameworks: any attempt to import
# them (even one that would be caught) is recorded, and sys.modules is checked at the end.
RUNNER = textwrap.dedent(
    """
    import runpy, sys
    FORBIDDEN = ("tensorflow", "keras", "gradcon_tf", "export", "jax", "torch")
    attempts = []

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                attempts.append(name)
                raise ImportError(f"edge demo must not import {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    sys.argv = ["edge_demo", *sys.argv[1:]]
    try:
        runpy.run_module("edge_demo", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    assert not attempts and not loaded, (attempts, loaded)
    assert "ai_edge_litert" in sys.modules and "PIL" in sys.modules
    sys.exit(code)
    """
)


def run_demo(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def parse_lines(stdout):
    rows = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            rows[os.path.basename(match["path"])] = (float(match["score"]), match["decision"])
    return rows


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    smooth = np.repeat(np.linspace(0, 255, 28)[None, :, None], 28, axis=0).astype(np.uint8)
    normal = np.stack([np.roll(smooth, shift, axis=1) for shift in range(0, 24, 4)])[..., None][:, :, :, 0]
    noise = rng.integers(0, 256, size=(6, 28, 28, 1), dtype=np.uint8)
    return np.concatenate([normal, noise])


@pytest.fixture(scope="module")
def setup(images, tmp_path_factory):
    """A paper CAE with non-zero references and a threshold, exported to f32 LiteRT; PNG folder."""
    keras.utils.set_random_seed(2)
    model = GradCon()
    rng = np.random.default_rng(0)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    scores = model.score(images)
    model.threshold = float(np.median(scores["score"]))
    directory = tmp_path_factory.mktemp("edge")
    manifest = export_model(model, str(directory / "out"), targets=("f32",))
    folder = directory / "images"
    folder.mkdir()
    names = []
    for index, image in enumerate(images):
        names.append(f"img_{index:02d}.png")
        Image.fromarray(image[..., 0]).save(folder / names[-1])
    return {
        "model": manifest["litert"]["f32"]["path"],
        "folder": folder,
        "names": names,
        "scores": scores["score"],
        "threshold": model.threshold,
    }


def expected_decisions(setup):
    return ["ANOMALY" if s > np.float32(setup["threshold"]) else "normal" for s in setup["scores"]]


@pytest.mark.parametrize("batch_size,threads", [(1, 1), (4, 2)])
def test_folder_scores_match_keras_without_tensorflow(setup, batch_size, threads):
    result = run_demo(
        "--model", setup["model"], "--images", str(setup["folder"]),
        "--batch-size", str(batch_size), "--threads", str(threads),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = parse_lines(result.stdout)
    assert list(rows) == setup["names"]
    scores = np.array([rows[n][0] for n in setup["names"]])
    np.testing.assert_allclose(scores, setup["scores"], rtol=0, atol=FLOAT_TOLERANCE)
    assert [rows[n][1] for n in setup["names"]] == expected_decisions(setup)
    mode = "single-image" if batch_size == 1 else f"batch size {batch_size}"
    assert f"summary: {len(setup['names'])} images scored, 0 failed; {mode}, {threads} thread(s)" in result.stdout
    assert re.search(r"latency per call: p50 [0-9.]+ ms, p99 [0-9.]+ ms", result.stdout)
    assert re.search(r"throughput: [0-9.]+ images/s", result.stdout)


def test_threshold_option_overrides_the_exported_one(setup):
    result = run_demo("--model", setup["model"], "--images", str(setup["folder"]), "--threshold=-1e9")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {d for _, d in parse_lines(result.stdout).values()} == {"ANOMALY"}


def test_bad_images_are_named_and_the_rest_scored(setup, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    original = Image.open(setup["folder"] / setup["names"][0])
    original.save(folder / "a_good.png")
    (folder / "b_broken.png").write_bytes(b"not a png at all")
    big = original.resize((56, 56), Image.Resampling.BILINEAR)
    big.save(folder / "c_big.png")

    result = run_demo("--model", setup["model"], "--images", str(folder), "--no-resize")
    assert result.returncode == 1
    assert "b_broken.png: cannot decode image" in result.stderr
    assert "c_big.png: image is 56x56, the model expects 28x28" in result.stderr
    assert list(parse_lines(result.stdout)) == ["a_good.png"]
    assert "1 images scored, 2 failed" in result.stdout

    result = run_demo("--model", setup["model"], "--images", str(folder))  # resize allowed
    assert result.returncode == 1
    rows = parse_lines(result.stdout)
    assert list(rows) == ["a_good.png", "c_big.png"]
    assert "c_big.png: resized 56x56 -> 28x28" in result.stderr
    assert abs(rows["a_good.png"][0] - setup["scores"][0]) <= FLOAT_TOLERANCE
    # The demo resizes on the host with Pillow (bilinear): score those pixels directly.
    from ai_edge_litert.interpreter import Interpreter

    resized = np.asarray(big.convert("L").resize((28, 28), Image.Resampling.BILINEAR))[None, ..., None]
    runner = Interpreter(model_path=setup["model"]).get_signature_runner("score_uint8")
    assert abs(rows["c_big.png"][0] - runner(images=resized)["score"][0]) <= FLOAT_TOLERANCE


def test_usage_errors(setup, tmp_path):
    result = run_demo("--model", str(tmp_path / "missing.tflite"), "--images", str(setup["folder"]))
    assert result.returncode == 2 and "missing.tflite: no such model file" in result.stderr
    result = run_demo("--model", setup["model"], "--images", str(tmp_path))
    assert result.returncode == 2 and "no image files" in result.stderr


def test_watch_mode_scores_images_as_they_arrive(setup, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--model", setup["model"], "--images", str(inbox), "--watch",
         "--max-images", "3", "--timeout", "60", "--poll-interval", "0.05", "--batch-size", "2"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1.0)
    for index in (0, 6, 7):  # one normal image, then two noise images; atomic renames
        temporary = inbox / f".incoming_{index}"
        Image.open(setup["folder"] / setup["names"][index]).save(temporary, format="PNG")
        os.rename(temporary, inbox / setup["names"][index])
        time.sleep(0.2)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    rows = parse_lines(stdout)
    assert sorted(rows) == sorted(setup["names"][i] for i in (0, 6, 7))
    for index in (0, 6, 7):
        assert abs(rows[setup["names"][index]][0] - setup["scores"][index]) <= FLOAT_TOLERANCE
    assert "summary: 3 images scored, 0 failed" in stdout


def test_watch_mode_stops_at_the_timeout(setup, tmp_path):
    started = time.monotonic()
    result = run_demo("--model", setup["model"], "--images", str(tmp_path), "--watch", "--timeout", "0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "summary: 0 images scored, 0 failed" in result.stdout
    assert time.monotonic() - started < 30
