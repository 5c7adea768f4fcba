"""The `gradcon` command: a thin layer over the library, checked end to end on small data."""

import argparse
import gzip
import os
import struct
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from edge_demo import cli as edge_cli
from gradcon_tf import cli
from gradcon_tf.cli import common, train
from gradcon_tf.data import load_digits


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x_train=digits["train"].images, y_train=digits["train"].labels,
             x_test=digits["test"].images, y_test=digits["test"].labels)
    return path


@pytest.fixture(scope="module")
def trained_model(digits_npz, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    assert cli.main(["train", "--data", f"npz:{digits_npz}", "--inlier-class", "3", "--epochs", "1",
                     "--out", str(path)]) == 0
    return path


def test_evaluate_prints_an_auroc_table(capsys):
    assert cli.main(["evaluate", "--data", "digits", "--classes", "0,1", "--epochs", "2"]) == 0
    out, err = capsys.readouterr()
    assert "AUROC on digits" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"]
    for row in rows:
        assert all(0.0 <= float(v) <= 1.0 for v in row[1:5])
    assert any(line.startswith(" mean") for line in out.splitlines())
    # stdout is not a terminal here: one plain line per epoch, no carriage returns or ANSI codes
    assert "epoch 2/2 loss" in out and "\r" not in out and "\x1b" not in out
    assert "test FPR: the share of the class's test images scoring above the threshold" in out
    # 12-13 validation images per class are too few for --fpr 0.05: a warning line per class
    warnings = [l for l in err.splitlines() if l.startswith("gradcon: warning:")]
    assert len(warnings) == 2 and all("use at least 200 images" in w for w in warnings)


def test_train_then_score_an_idx_file(trained_model, tmp_path):
    model = keras.models.load_model(trained_model)
    assert model.threshold is not None
    digits = load_digits()
    images = tmp_path / "images-idx3-ubyte.gz"
    write_idx(images, digits["test"].images[:5, ..., 0])
    scores = tmp_path / "scores.csv"
    assert cli.main(["score", "--model", str(trained_model), "--images", str(images),
                     "--out", str(scores)]) == 0
    lines = scores.read_text().splitlines()
    assert lines[0] == "index,score,recon,grad_loss,is_anomaly,p_value" and len(lines) == 6
    expected = model.score(digits["test"].images[:5])["score"]
    np.testing.assert_allclose([float(l.split(",")[1]) for l in lines[1:]], expected, rtol=1e-6)



def test_score_out_dash_is_stdout(trained_model, tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "x.npy", load_digits()["test"].images[:3])
    monkeypatch.chdir(tmp_path)
    assert cli.main(["score", "--model", str(trained_model), "--images", "x.npy", "--out", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("index,score,") and len(lines) == 4
    assert not (tmp_path / "-").exists()

def test_score_a_folder_and_a_glob_of_pngs(trained_model, tmp_path):
    model = keras.models.load_model(trained_model)
    images = load_digits()["test"].images[:4]
    folder = tmp_path / "shots"
    (folder / "later").mkdir(parents=True)  # a folder is read with its sub-folders
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / ("later" if i == 3 else "") / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden").mkdir()
    Image.fromarray(images[0, ..., 0]).save(folder / ".hidden" / "skipped.png")
    expected = model.score(images)["score"]
    for spec, count in ((str(folder), 4), (str(folder / "*.png"), 3)):
        out = tmp_path / "scores.csv"
        assert cli.main(["score", "--model", str(trained_model), "--images", spec, "--out", str(out)]) == 0
        lines = out.read_text().splitlines()
        assert lines[0].startswith("path,score")
        assert [os.path.relpath(l.split(",")[0], folder) for l in lines[1:]] == [
            "0.png", "1.png", "2.png", "later/3.png"][:count]
        np.testing.assert_allclose([float(l.split(",")[1]) for l in lines[1:]], expected[:count], rtol=1e-6)


@pytest.mark.parametrize("map_scale", ["image", "calibration"])
def test_score_writes_map_overlays(trained_model, tmp_path, map_scale):
    from gradcon_tf.portable import overlays

    model = keras.models.load_model(trained_model)
    assert sorted(model.map_scales) == sorted(n for n, _ in overlays.PANELS)  # kept by calibrate
    assert all(v > 0 for v in model.map_scales.values())
    images = load_digits()["test"].images[:3]
    np.save(tmp_path / "x.npy", images)
    maps = tmp_path / "maps"
    out = tmp_path / "scores.csv"
    assert cli.main(["score", "--model", str(trained_model), "--images", str(tmp_path / "x.npy"),
                     "--out", str(out), "--maps", str(maps), "--batch-size", "2",
                     "--map-scale", map_scale]) == 0
    assert sorted(os.listdir(maps)) == ["0.png", "1.png", "2.png"]
    expected = model.score(images, maps=True)
    lines = out.read_text().splitlines()
    np.testing.assert_allclose([float(l.split(",")[1]) for l in lines[1:]], expected["score"], rtol=1e-6)
    picture = np.asarray(Image.open(maps / "2.png"))
    rendered = np.asarray(overlays.overlay_image(
        images[2], {k: expected[k][2] for k, _ in overlays.PANELS}, "2", float(expected["score"][2]),
        float(expected["p_value"][2]), bool(expected["is_anomaly"][2]),
        model.map_scales if map_scale == "calibration" else None))
    assert picture.shape == rendered.shape
    assert np.mean(np.abs(picture.astype(int) - rendered.astype(int))) < 0.5


def test_map_scale_calibration_needs_a_model_that_kept_map_scales(trained_model, tmp_path, capsys):
    model = keras.models.load_model(trained_model)
    model.map_scales = None  # as models saved before map scales were kept
    older = tmp_path / "older.keras"
    model.save(older)
    assert keras.models.load_model(older).map_scales is None
    np.save(tmp_path / "x.npy", load_digits()["test"].images[:2])
    base = ["score", "--model", str(older), "--images", str(tmp_path / "x.npy")]
    line = one_error_line(capsys, base + ["--maps", str(tmp_path / "maps"), "--map-scale", "calibration"])
    assert "older.keras has no map scales" in line and "--map-scale image" in line
    assert "applies only with --maps" in one_error_line(capsys, base + ["--map-scale", "calibration"])
    assert cli.main(base + ["--maps", str(tmp_path / "maps")]) == 0  # the default: per image


def test_score_skips_unreadable_files_or_stops_at_the_first_with_strict(trained_model, tmp_path, capsys):
    folder = tmp_path / "shots"
    folder.mkdir()
    images = load_digits()["test"].images[:2]
    Image.fromarray(images[0, ..., 0]).save(folder / "a.png")
    (folder / "b_broken.png").write_bytes(b"not a png")
    Image.fromarray(images[1, ..., 0]).save(folder / "c.png")
    out = tmp_path / "scores.csv"
    argv = ["score", "--model", str(trained_model), "--images", str(folder), "--out", str(out)]
    assert cli.main(argv + ["--strict"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"gradcon: error: {folder / 'b_broken.png'}: cannot decode image "
                                f"(cannot identify image file '{folder / 'b_broken.png'}') (--strict)"]
    assert not out.exists()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("b_broken.png') (skipped)") and "1 of 3 image files could not be read" in err[-1]
    lines = out.read_text().splitlines()
    assert lines[0] == "path,score,recon,grad_loss,is_anomaly,p_value"
    assert [os.path.basename(l.split(",")[0]) for l in lines[1:]] == ["a.png", "c.png"]
    assert {l.split(",")[4] for l in lines[1:]} <= {"true", "false"}


def test_shared_image_module_imports_no_tensorflow():
    code = ("import sys; import gradcon_tf.portable.image_files, gradcon_tf.portable.overlays, "
            "gradcon_tf.portable.results, gradcon_tf.portable.signatures, "
            "gradcon_tf.portable.native_stderr; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


@pytest.mark.slow  # kept out of the default run for its time
def test_train_with_input_shape_and_tensorboard(digits_npz, tmp_path):
    path, logs = tmp_path / "big.keras", tmp_path / "logs"
    assert cli.main(["train", "--data", f"npz:{digits_npz}", "--inlier-class", "0", "--epochs", "1",
                     "--input-shape", "16,16,1", "--tensorboard", str(logs), "--out", str(path)]) == 0
    model = keras.models.load_model(path)
    assert model.image_shape == (16, 16, 1)
    assert model.score(np.zeros((2, 16, 16, 1), np.uint8))["score"].shape == (2,)
    events = [f for _, _, names in os.walk(logs) for f in names if f.startswith("events.out")]
    assert events


def one_error_line(capsys, argv):
    """Run the command; it must fail with status 2 and a single `gradcon: error:` line."""
    try:
        status = cli.main(argv)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("gradcon: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_user_errors_are_one_line(trained_model, tmp_path, capsys):
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(trained_model.read_bytes()[:2000])
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken-idx3-ubyte"
    broken.write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + b"\0" * 100)
    shots = tmp_path / "shots"
    shots.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(shots / "a.png")
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((2, 5, 5, 1), np.uint8))
    wrong_dtype = tmp_path / "strings.npy"
    np.save(wrong_dtype, np.full((2, 8, 8, 1), "a"))
    model = str(trained_model)
    cases = {
        ("score", "--model", str(tmp_path / "missing.keras"), "--images", "x.npy"): "missing.keras: no such file",
        ("score", "--model", str(text), "--images", "x.npy"): "notes.keras: not a .keras archive",
        ("score", "--model", str(truncated), "--images", "x.npy"): "truncated.keras: not a .keras archive",
        ("score", "--model", model, "--images", str(tmp_path / "none.npy")): "none.npy: No such file",
        ("score", "--model", model, "--images", str(empty)): "empty: no image files",
        ("score", "--model", model, "--images", str(tmp_path / "*.png")): r"\*\.png: no image files matched",
        ("score", "--model", model, "--images", str(broken)): "broken-idx3-ubyte.*truncated",
        ("score", "--model", model, "--images", str(shots), "--maps", str(shots)): "holds the input images",
        ("score", "--model", model, "--images", str(wrong_shape)): r"shape \(N, 8, 8, 1\)",
        ("score", "--model", model, "--images", str(wrong_dtype)): "uint8",
        ("train", "--data", f"npz:{tmp_path / 'none.npz'}", "--inlier-class", "0", "--out", "m.keras"): "none.npz",
        ("train", "--data", f"mnist:{empty}", "--inlier-class", "0", "--out", "m.keras"): "train-images-idx3-ubyte",
        ("train", "--data", "nonsense", "--inlier-class", "0", "--out", "m.keras"): "unknown dataset spec",
        ("evaluate", "--epochs", "0"): "--epochs: expected a positive integer",
        ("evaluate", "--classes", "one"): "--classes: expected integers",
        ("train", "--input-shape", "28,28", "--inlier-class", "0", "--out", "m.keras"): "expected H,W,C",
        ("export", str(text), "--out", str(tmp_path / "out")): "not a .keras archive",
        ("export", model, "--out", str(tmp_path / "out"), "--targets", "f64"): "unknown LiteRT targets",
        ("query", str(wrong_shape), "--url", "http://127.0.0.1:9"): "cannot reach TF Serving at http://127.0.0.1:9",
    }
    import re

    for argv, expected in cases.items():
        line = one_error_line(capsys, list(argv))
        assert re.search(expected, line), (argv, line)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        cli.main(["score", "--debug", "--model", str(tmp_path / "m.keras"), "--images", "x.npy"])


def test_help_does_not_import_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from gradcon_tf import cli\n"
        "for argv in ([], ['train'], ['score'], ['export'], ['reproduce']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try: cli.main([*argv, '--help'])\n"
        "        except SystemExit: pass\n"
        "    assert 'usage: gradcon' in out.getvalue()\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n"
        "print(out.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for kind in ("digits", "mnist:DIR", "fashion_mnist:DIR", "idx:DIR", "cifar10:PATH", "folder:DIR",
                 "npz:FILE", "tfds:NAME"):
        assert kind in result.stdout
    assert "(default: 3)" in result.stdout  # --seeds


def test_tensorflow_start_up_lines_are_hidden(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "gradcon_tf.cli", "score", "--model", str(tmp_path / "m.keras"), "--images", "x.npy"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"gradcon: error: {tmp_path / 'm.keras'}: no such file (expected a .keras model)"]


def test_file_and_argument_errors_come_before_tensorflow_loads(tmp_path):
    """Each mistake is one line, exit 2, found before TensorFlow is imported (so at once)."""
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    archive = tmp_path / "archive.keras"  # a zip: what is checked before TensorFlow loads
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("config.json", "{}")
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "broken.png").write_bytes(b"not a png")
    good = tmp_path / "good"  # 20 normal images of 16x16
    good.mkdir()
    for index in range(20):
        Image.fromarray(np.full((16, 16), index, np.uint8)).save(good / f"{index}.png")
    (tmp_path / "version").mkdir()
    (tmp_path / "version" / "saved_model" / "1").mkdir(parents=True)
    normal = ("train", "--normal", str(good), "--backbone", "none")
    cases = {
        ("score", "--model", str(tmp_path / "missing.keras"), "--images", "x.npy"): "no such file",
        ("score", "--model", str(archive), "--images", str(shots), "--strict"): "broken.png: cannot decode image",
        ("score", "--model", str(archive), "--images", str(shots), "--maps", str(shots)): "holds the input images",
        ("score", "--model", str(text), "--images", "x.npy"): "not a .keras archive",
        ("export", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "o")): "no such file",
        ("train", "--data", f"mnist:{tmp_path / 'none'}", "--inlier-class", "0", "--out", "m.keras"): "no such directory",
        ("train", "--data", "digits", "--inlier-class", "0", "--out", "m.keras", "--fpr", "2"): "--fpr: expected a number between 0 and 1",
        ("evaluate", "--data", "nonsense"): "unknown dataset spec",
        ("compare", str(tmp_path / "none")): "no such folder",
        (*normal, "--out", str(tmp_path / "m.h5")): "--out " + str(tmp_path / "m.h5") + ": a model file's name must end in .keras",
        (*normal, "--out", str(shots)): "a folder; give the model's file name",
        (*normal, "--out", str(text / "m.keras")): f"cannot be written, {text}: not a folder",
        (*normal, "--out", "m.keras", "--image-size", "3"): "--image-size 3,3: too small to train on (at least 8 px a side)",
        (*normal, "--out", "m.keras", "--image-size", "100000"): "--image-size 100000,100000: training on 20 such images needs about",
        ("export", str(archive), "--out", str(text)): "exists and is not a folder",
        ("export", str(archive), "--out", str(tmp_path / "version")): "saved_model/1 exists; pick another --version",
        ("score", "--model", str(archive), "--images", str(good), "--out", str(text / "s.csv")): f"cannot be written, {text}: not a folder",
    }
    program = (
        "import sys; from gradcon_tf import cli\n"
        "try:\n    status = cli.main(sys.argv[1:])\nexcept SystemExit as stop:\n    status = stop.code\n"
        "print('tensorflow' in sys.modules); sys.exit(status)"
    )
    for argv, expected in cases.items():
        done = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True,
                              text=True, timeout=60)
        errors = [l for l in done.stderr.splitlines() if l.startswith("gradcon: error:")]
        assert done.returncode == 2 and len(errors) == 1 and expected in errors[0], (argv, done.stderr)
        assert done.stdout.strip() == "False", argv  # TensorFlow was never imported


def test_version():
    done = subprocess.run([sys.executable, "-m", "gradcon_tf.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "gradcon 0.1.0"


def test_score_notes_resized_images_once_and_warns_once_of_other_channels(trained_model, tmp_path, capsys):
    folder = tmp_path / "shots"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / "a_same.png")
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(folder / "b_large.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "c_rgb.png")
    assert cli.main(["score", "--model", str(trained_model), "--images", str(folder),
                     "--out", str(tmp_path / "s.csv")]) == 0
    err = capsys.readouterr().err.splitlines()
    warnings = [l for l in err if l.startswith("gradcon: warning:")]
    assert warnings == [f"gradcon: warning: 1 of 3 images are not grayscale like the model (e.g. "
                        f"{folder / 'c_rgb.png'}): converted"]
    assert [l for l in err if l.startswith("gradcon: note:")] == [
        f"gradcon: note: 1 image resized to 8x8 (from 64x64; first {folder / 'b_large.png'})"]


@pytest.mark.parametrize("argv, expected", [
    (["train", "--normal", "x", "--out", "y", "--epochs", "abc"], "argument --epochs: expected a positive integer, got 'abc'"),
    (["train", "--normal", "x", "--out", "y", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["export", "m.keras", "--version", "abc"], "argument --version: expected a positive integer, got 'abc'"),
])
def test_option_errors_are_exactly_one_line_without_the_usage_block(capsys, argv, expected):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"gradcon: error: {expected}\n"


def test_a_missing_command_shows_the_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("usage: gradcon")
    assert err.endswith("gradcon: error: the following arguments are required: command\n")


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "--classes", "5-3"], "argument --classes: range 5-3 is empty (write 3-5)"),
    (["evaluate", "--classes", "0-10"], "--classes: class 10 not in the data (it has 0-9)"),
    (["train", "--inlier-class", "12", "--out", "m.keras"], "--inlier-class: class 12 not in the data (it has 0-9)"),
])
def test_classes_are_checked_against_the_data_before_any_run(capsys, argv, expected):
    assert one_error_line(capsys, argv) == f"gradcon: error: {expected}"


def test_a_model_file_already_there_is_named_before_training(tmp_path, capsys):
    existing = tmp_path / "model.keras"
    existing.write_bytes(b"an earlier model")
    common.check_output(argparse.Namespace(out=str(existing)), train._check_output)
    assert capsys.readouterr().err == (
        f"gradcon: warning: --out {existing} exists: it will be replaced when training ends\n")
    common.check_output(argparse.Namespace(out=str(tmp_path / "new.keras")), train._check_output)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("main, program", [(cli.main, "gradcon"), (edge_cli.main, "gradcon-edge")])
def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys, main, program):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if program == "gradcon":
        monkeypatch.setattr(cli.sample_images, "run", interrupted)
        argv = ["sample-images", "--data", "digits", "--out", "never"]
    else:
        monkeypatch.setattr(edge_cli, "run", interrupted)
        argv = ["--model", "m.tflite", "x.png"]
    monkeypatch.setattr(common, "import_tensorflow", lambda verbose: None)
    assert main(argv) == 130
    assert capsys.readouterr().err == f"{program}: interrupted\n"
