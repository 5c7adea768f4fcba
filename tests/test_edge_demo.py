"""gradcon-edge (edge_demo/): same scores as Keras from PNG files, no TensorFlow, file / folder /
glob / watch inputs, CSV and PNG sheet outputs, one-line usage errors, installs on its own."""

import csv
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time

import keras
import numpy as np
import pytest
from PIL import Image

from gradcon_tf import GradCon

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # `edge_demo` is run from the repository root here (installed: gradcon_edge)

from edge_demo import cli, sheet  # noqa: E402
from gradcon_tf.export import export_model  # noqa: E402

FLOAT_TOLERANCE = 1e-5
LINE = re.compile(r"^(?P<path>\S+)\tscore=(?P<score>-?[0-9.]+)\t(?P<decision>\S+)$")
CSV_COLUMNS = ["path", "score", "recon", "grad_loss", "is_anomaly", "p_value"]  # as gradcon score

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


def read_csv(path):
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == CSV_COLUMNS
        return list(reader)


def check_csv_against_keras(rows, setup, indices):
    assert [os.path.basename(r["path"]) for r in rows] == [setup["names"][i] for i in indices]
    for column in ("score", "recon", "grad_loss"):
        got = np.array([float(r[column]) for r in rows])
        np.testing.assert_allclose(got, setup[column][indices], rtol=0, atol=FLOAT_TOLERANCE, err_msg=column)
    expected = [d == "ANOMALY" for d in np.array(expected_decisions(setup))[indices]]
    assert [r["is_anomaly"] for r in rows] == [str(e).lower() for e in expected]
    # p-values count calibration scores at or above: LiteRT's float32 scores may straddle one
    got = np.array([float(r["p_value"]) for r in rows])
    step = 1.0 / (setup["calibration_count"] + 1)
    np.testing.assert_allclose(got, setup["p_value"][indices], rtol=0, atol=step + 1e-6)


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
    model.calibrate(images[::2])  # calibration scores for the p-values
    scores = model.score(images, maps=True)
    model.threshold = float(np.median(scores["score"]))
    directory = tmp_path_factory.mktemp("edge")
    manifest = export_model(model, str(directory / "out"), targets=("f32",))
    model.save(directory / "model.keras")
    folder = directory / "images"
    folder.mkdir()
    names = []
    for index, image in enumerate(images):
        names.append(f"img_{index:02d}.png")
        Image.fromarray(image[..., 0]).save(folder / names[-1])
    return {
        "map_scales": model.map_scales,
        "model": manifest["litert"]["f32"]["path"],
        "keras_model": str(directory / "model.keras"),
        "folder": folder,
        "names": names,
        "images": images,
        "score": scores["score"],
        "recon": scores["recon"],
        "grad_loss": scores["grad_loss"],
        "p_value": scores["p_value"],
        **{name: scores[name] for name in ("recon_map", "grad_map", "score_map")},
        "calibration_count": len(model.calibration_scores),
        "threshold": model.threshold,
    }


@pytest.fixture(scope="module")
def rgb_setup(images, tmp_path_factory):
    """An RGB paper CAE, calibrated and exported to f32 LiteRT."""
    keras.utils.set_random_seed(3)
    model = GradCon(input_shape=(28, 28, 3))
    rng = np.random.default_rng(1)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    colour = np.concatenate([images, images[:, ::-1], images[:, :, ::-1]], axis=-1)
    model.calibrate(colour[::2], maps=False)
    model.threshold = float(np.median(model.score(colour)["score"]))
    directory = tmp_path_factory.mktemp("edge_rgb")
    manifest = export_model(model, str(directory / "out"), targets=("f32",))
    model.save(directory / "model.keras")
    return {"model": manifest["litert"]["f32"]["path"], "keras_model": str(directory / "model.keras"),
            "calibration_count": len(model.calibration_scores)}


def expected_decisions(setup):
    return ["ANOMALY" if s > np.float32(setup["threshold"]) else "normal" for s in setup["score"]]


@pytest.mark.parametrize("batch_size,threads", [(1, 1), (4, 2)])
def test_folder_scores_match_keras_without_tensorflow(setup, batch_size, threads):
    result = run_demo(
        "--model", setup["model"], str(setup["folder"]),
        "--batch-size", str(batch_size), "--threads", str(threads),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = parse_lines(result.stdout)
    assert list(rows) == setup["names"]
    scores = np.array([rows[n][0] for n in setup["names"]])
    np.testing.assert_allclose(scores, setup["score"], rtol=0, atol=FLOAT_TOLERANCE)
    assert [rows[n][1] for n in setup["names"]] == expected_decisions(setup)
    mode = "single-image" if batch_size == 1 else f"batch size {batch_size}"
    summary = f"summary: {len(setup['names'])} images scored, 0 failed; {mode}, {threads} thread(s)"
    assert summary in result.stdout
    assert re.search(r"latency per call: p50 [0-9.]+ ms, p99 [0-9.]+ ms", result.stdout)
    assert re.search(r"throughput: [0-9.]+ images/s", result.stdout)


def write_mixed_files(folder, images):
    """Each image as a grey PNG, a grey JPEG, a colour PNG and a colour JPEG."""
    folder.mkdir()
    for index, image in enumerate(images):
        grey = image[..., 0].astype(np.int64) if image.shape[-1] == 1 else image.mean(-1).astype(np.int64)
        rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1).astype(np.uint8)
        for suffix in (".png", ".jpg"):
            Image.fromarray(grey.astype(np.uint8)).save(folder / f"grey_{index}{suffix}")
            Image.fromarray(rgb).save(folder / f"rgb_{index}{suffix}")


@pytest.mark.parametrize("model_kind", ["grey", "rgb"])
def test_both_scorers_give_the_same_csv_for_grey_and_colour_png_and_jpeg(
        setup, rgb_setup, tmp_path, model_kind):
    """The same files (grey into an RGB model, RGB into a grey one; PNG and JPEG) through
    `gradcon score` (TensorFlow) and `gradcon-edge` (LiteRT): same header, same values."""
    from gradcon_tf import cli as gradcon_cli

    models = setup if model_kind == "grey" else rgb_setup
    folder = tmp_path / "mixed"
    write_mixed_files(folder, setup["images"][5:8])
    result = run_demo("--model", models["model"], str(folder), "--csv", str(tmp_path / "edge.csv"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert gradcon_cli.main(["score", "--model", models["keras_model"], "--images", str(folder),
                             "--out", str(tmp_path / "keras.csv")]) == 0
    edge, keras_rows = read_csv(tmp_path / "edge.csv"), read_csv(tmp_path / "keras.csv")
    assert [r["path"] for r in edge] == [r["path"] for r in keras_rows] and len(edge) == 12
    for column in ("score", "recon", "grad_loss"):
        np.testing.assert_allclose([float(r[column]) for r in edge], [float(r[column]) for r in keras_rows],
                                   rtol=0, atol=FLOAT_TOLERANCE, err_msg=column)
    assert [r["is_anomaly"] for r in edge] == [r["is_anomaly"] for r in keras_rows]
    assert {r["is_anomaly"] for r in edge} <= {"true", "false"}
    step = 1.0 / (models["calibration_count"] + 1)  # float32 scores may straddle a calibration score
    np.testing.assert_allclose([float(r["p_value"]) for r in edge],
                               [float(r["p_value"]) for r in keras_rows], rtol=0, atol=step + 1e-6)


def test_files_globs_and_folders_in_order_each_once(setup, tmp_path):
    folder = str(setup["folder"])
    inputs = [os.path.join(folder, "img_03.png"), os.path.join(folder, "img_1[01].png"), folder]
    csv_path = tmp_path / "scores.csv"
    result = run_demo("--model", setup["model"], *inputs, "--csv", str(csv_path), "--batch-size", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    order = [3, 10, 11] + [i for i in range(12) if i not in (3, 10, 11)]
    check_csv_against_keras(read_csv(csv_path), setup, order)
    assert not parse_lines(result.stdout)  # the rows went to the CSV file
    assert f"csv: 12 rows written to {csv_path}" in result.stdout
    assert "summary: 12 images scored, 0 failed" in result.stdout


def test_recursive_glob_and_csv_dash(setup, tmp_path):
    for index, sub in ((0, "a"), (7, "b/c")):
        os.makedirs(tmp_path / sub)
        Image.open(setup["folder"] / setup["names"][index]).save(tmp_path / sub / setup["names"][index])
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    result = run_demo("--model", setup["model"], str(tmp_path / "**" / "*"), "--csv", "-")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = parse_lines(result.stdout)  # `-`: the per-line output
    assert list(rows) == [setup["names"][0], setup["names"][7]]
    for index in (0, 7):
        assert abs(rows[setup["names"][index]][0] - setup["score"][index]) <= FLOAT_TOLERANCE


def test_sheet_shows_the_top_images_by_score(setup, tmp_path):
    top, path = 5, tmp_path / "top.png"
    options = ("--sheet", str(path), "--top", str(top))
    result = run_demo("--model", setup["model"], str(setup["folder"]), *options)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"sheet: top {top} images written to {path}" in result.stdout
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picture = Image.open(path)
    scale, columns, cell_width, cell_height, size = sheet.layout(top, (28, 28, 1))
    assert (scale, columns) == (4, 5)  # 28x28 drawn at 112x112, one row
    assert picture.format == "PNG" and picture.mode == "RGB" and picture.size == size == (608, 158)
    pixels = np.asarray(picture)
    for rank, index in enumerate(np.argsort(-setup["score"], kind="stable")[:top]):
        x, y = sheet.MARGIN + rank * cell_width, sheet.MARGIN
        tile = pixels[y : y + 112, x : x + 112]
        expected = np.repeat(np.repeat(setup["images"][index], 4, axis=0), 4, axis=1)
        np.testing.assert_array_equal(tile, np.repeat(expected, 3, axis=-1), err_msg=f"rank {rank + 1}")
        caption = pixels[y + 112 : y + cell_height - sheet.MARGIN, x : x + 112]
        assert caption.min() < 128  # some text under each image


@pytest.mark.parametrize("map_scale", ["image", "calibration"])
def test_maps_writes_one_overlay_per_image_as_keras_draws_it(setup, tmp_path, map_scale):
    from edge_demo.portable import overlays

    folder = tmp_path / "overlays"
    result = run_demo("--model", setup["model"], str(setup["folder"]), "--maps", str(folder),
                      "--map-scale", map_scale)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"maps: {len(setup['names'])} overlays written to {folder}" in result.stdout
    assert "signature maps_uint8" in result.stdout
    names = sorted(os.listdir(folder))
    assert names == setup["names"]  # img_07.png: the image's name, no index before it
    index = 7  # a noise image
    picture = np.asarray(Image.open(folder / names[index]))
    path = os.path.join(str(setup["folder"]), setup["names"][index])
    rendered = np.asarray(overlays.overlay_image(
        setup["images"][index], {k: setup[k][index] for k, _ in overlays.PANELS}, path,
        float(setup["score"][index]), float(setup["p_value"][index]),
        bool(setup["score"][index] > np.float32(setup["threshold"])),
        setup["map_scales"] if map_scale == "calibration" else None))
    assert picture.shape == rendered.shape
    assert np.mean(np.abs(picture.astype(int) - rendered.astype(int))) < 0.5


def test_map_scale_calibration_needs_map_scales_in_the_model():
    from edge_demo.scorer import map_scales

    assert map_scales({"score": np.zeros(2)}) is None  # exported before map scales
    assert map_scales({"map_scales": np.full((2, 3), np.nan)}) is None  # calibrated without
    scales = map_scales({"map_scales": np.array([[1.0, 2.0, 3.0]] * 2)})
    assert scales == {"recon_map": 1.0, "grad_map": 2.0, "score_map": 3.0}


def test_threshold_option_overrides_the_exported_one(setup):
    result = run_demo("--model", setup["model"], str(setup["folder"]), "--threshold=-1e9")
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

    result = run_demo("--model", setup["model"], str(folder), "--no-resize")
    assert result.returncode == 1
    assert "b_broken.png: cannot decode image" in result.stderr
    assert "c_big.png: image is 56x56, the model expects 28x28" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(parse_lines(result.stdout)) == ["a_good.png"]
    assert "1 images scored, 2 failed" in result.stdout

    result = run_demo("--model", setup["model"], str(folder))  # resize allowed
    assert result.returncode == 1
    rows = parse_lines(result.stdout)
    assert list(rows) == ["a_good.png", "c_big.png"]
    assert "note: 1 image resized to 28x28 (from 56x56; first " in result.stderr
    assert result.stderr.count("resized") == 1
    assert abs(rows["a_good.png"][0] - setup["score"][0]) <= FLOAT_TOLERANCE
    # The demo resizes on the host with Pillow (bilinear): score those pixels directly.
    from ai_edge_litert.interpreter import Interpreter

    resized = np.asarray(big.convert("L").resize((28, 28), Image.Resampling.BILINEAR))[None, ..., None]
    runner = Interpreter(model_path=setup["model"]).get_signature_runner("score_uint8")
    assert abs(rows["c_big.png"][0] - runner(images=resized)["score"][0]) <= FLOAT_TOLERANCE


def test_strict_stops_at_the_first_unreadable_image_writing_nothing(setup, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.open(setup["folder"] / setup["names"][0]).save(folder / "a_good.png")
    (folder / "b_broken.png").write_bytes(b"not a png at all")
    (folder / "c_truncated.png").write_bytes((setup["folder"] / setup["names"][1]).read_bytes()[:60])
    csv_path, maps = tmp_path / "s.csv", tmp_path / "maps"
    result = run_demo("--model", setup["model"], str(folder), "--csv", str(csv_path), "--strict",
                      "--maps", str(maps))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"gradcon-edge: error: {folder / 'b_broken.png'}: cannot decode image "
        f"(cannot identify image file '{folder / 'b_broken.png'}') (--strict)"]
    assert not csv_path.exists() and not (maps.exists() and os.listdir(maps))

    result = run_demo("--model", setup["model"], str(folder), "--csv", str(csv_path))  # default: skip
    assert result.returncode == 1
    skipped = [l for l in result.stderr.splitlines() if l.endswith("(skipped)")]
    assert len(skipped) == 2 and "b_broken.png" in skipped[0] and "c_truncated.png" in skipped[1]
    assert [os.path.basename(r["path"]) for r in read_csv(csv_path)] == ["a_good.png"]


def test_usage_error_through_the_command_is_one_line(setup, tmp_path):
    result = run_demo("--model", str(tmp_path / "missing.tflite"), str(setup["folder"]))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"gradcon-edge: error: {tmp_path / 'missing.tflite'}: no such model file "
        "(expected a .tflite written by `gradcon export`)"
    ]


USAGE_ERRORS = {  # case: (arguments after --model, fragment of the one error line)
    "corrupt model": ("--model {corrupt} {folder}", "corrupt.tflite: not a LiteRT model"),
    "saved model folder": ("--model {saved_model} {folder}", "saved_model: a SavedModel folder (for TF Serving)"),
    "empty folder": ("{empty}", "empty: no image files matched"),
    "glob matches nothing": ("{folder}/*.jpg", "*.jpg: no image files matched"),
    "no such path": ("{tmp}/nowhere.png", "nowhere.png: no such file or folder"),
    "named file not an image": ("{folder}/img_00.png {tmp}/notes.png", "notes.png: not an image: its contents are in no format Pillow reads"),
    "no inputs": ("", "give INPUT files, folders or patterns, or --watch DIR"),
    "inputs and watch": ("{folder} --watch {tmp}", "or --watch DIR (one of the two)"),
    "watch not a folder": ("--watch {tmp}/nowhere", "--watch {tmp}/nowhere: not a folder"),
    "batch size 0": ("{folder} --batch-size 0", "argument --batch-size: expected int >= 1, got '0'"),
    "threads not a number": ("{folder} --threads two", "argument --threads: expected int >= 1, got 'two'"),
    "negative timeout": ("--watch {tmp} --timeout -1", "argument --timeout: expected seconds > 0, got '-1'"),
    "timeout without watch": ("{folder} --timeout 5", "apply only with --watch DIR"),
    "bad threshold": ("{folder} --threshold high", "argument --threshold: expected a finite number, got 'high'"),
    "nan threshold": ("{folder} --threshold nan", "argument --threshold: expected a finite number, got 'nan'"),
    "infinite threshold": ("{folder} --threshold=-inf", "argument --threshold: expected a finite number, got '-inf'"),
    "top 0": ("{folder} --sheet {tmp}/s.png --top 0", "argument --top: expected int >= 1, got '0'"),
    "top without sheet": ("{folder} --top 3", "--top needs --sheet FILE.png"),
    "sheet not png": ("{folder} --sheet {tmp}/s.jpg", "--sheet {tmp}/s.jpg: expected a file name ending in"),
    "csv folder missing": ("{folder} --csv {tmp}/no/s.csv", "--csv {tmp}/no/s.csv: folder"),
    "unknown option": ("{folder} --colour", "unrecognized arguments: --colour"),
    "maps into the input folder": ("{folder} --maps {folder}", "holds the input images"),
    "maps into the watched folder": ("--watch {tmp} --maps {tmp}", "holds the input images"),
    "map scale without maps": ("{folder} --map-scale calibration", "--map-scale applies only with --maps"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_are_one_line(setup, tmp_path, capsys, case):
    (tmp_path / "corrupt.tflite").write_bytes(b"\x00" * 64)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.png").write_text("this is text")
    (tmp_path / "saved_model" / "1").mkdir(parents=True)  # TF Serving's layout: a version folder
    (tmp_path / "saved_model" / "1" / "saved_model.pb").write_bytes(b"")
    names = {"corrupt": tmp_path / "corrupt.tflite", "empty": tmp_path / "empty",
             "saved_model": tmp_path / "saved_model"}
    names.update(folder=setup["folder"], tmp=tmp_path)
    arguments, fragment = USAGE_ERRORS[case]
    argv = arguments.format(**names).split()
    if "--model" not in argv:
        argv = ["--model", setup["model"], *argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradcon-edge: error: "), captured.err
    assert fragment.format(**names) in lines[0]
    assert captured.out == ""


def test_watch_mode_scores_images_as_they_arrive(setup, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    csv_path = tmp_path / "stream.csv"
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--model", setup["model"], "--watch", str(inbox),
         "--csv", str(csv_path), "--max-images", "3", "--timeout", "60", "--poll-interval", "0.05", "--batch-size", "2"],
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
    rows = sorted(read_csv(csv_path), key=lambda r: r["path"])
    check_csv_against_keras(rows, setup, [0, 6, 7])
    assert "summary: 3 images scored, 0 failed" in stdout


def test_watch_mode_stops_at_the_timeout(setup, tmp_path):
    started = time.monotonic()
    result = run_demo("--model", setup["model"], "--watch", str(tmp_path), "--timeout", "0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "summary: 0 images scored, 0 failed" in result.stdout
    assert time.monotonic() - started < 30


def venv_program(venv, name):
    return str(venv / ("Scripts" if os.name == "nt" else "bin") / name)


@pytest.mark.slow
def test_installs_in_a_fresh_venv_without_tensorflow(setup, tmp_path):
    """`pip install ./edge_demo` into a bare venv: package gradcon_edge only, no TensorFlow, same scores."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv_program(venv, "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", os.path.join(REPO, "edge_demo")],
        capture_output=True, text=True, timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    def in_venv(code):
        return subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert in_venv("import tensorflow").returncode != 0
    assert in_venv("import edge_demo").returncode != 0
    listing = in_venv(
        "import importlib.metadata as m; files = m.files('gradcon-edge'); "
        "print(sorted({str(f).split('/')[0] for f in files if not str(f).startswith('..')}))"
    )
    assert listing.stdout.split() == ["['gradcon_edge',", "'gradcon_edge-0.1.0.dist-info']"], listing

    def score_in_venv():
        csv_path = tmp_path / "scores.csv"
        command = [venv_program(venv, "gradcon-edge"), "--model", setup["model"], str(setup["folder"])]
        result = subprocess.run([*command, "--csv", str(csv_path)], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        check_csv_against_keras(read_csv(csv_path), setup, list(range(12)))
        assert "summary: 12 images scored, 0 failed" in result.stdout

    score_in_venv()
    # The sdist carries the shared modules (portable/) as files: built from it, the same scores.
    source = tmp_path / "source"
    shutil.copytree(os.path.join(REPO, "edge_demo"), source, ignore=shutil.ignore_patterns("*.egg-info"))
    built = subprocess.run(
        [python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=600)  # pip installs setuptools to build with
    assert built.returncode == 0, built.stderr[-3000:]
    sdist = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
         "print(b.build_sdist(sys.argv[1]))", str(tmp_path / "sdist")],
        cwd=source, capture_output=True, text=True, timeout=300)
    assert sdist.returncode == 0, sdist.stderr[-3000:]
    archive = tmp_path / "sdist" / sdist.stdout.split()[-1]
    with tarfile.open(archive) as tar:
        assert any(n.endswith("portable/image_files.py") for n in tar.getnames())
    reinstall = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(archive)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert reinstall.returncode == 0, reinstall.stderr[-3000:]
    assert "image_files.py" in in_venv("import gradcon_edge.portable.image_files as m; print(m.__file__)").stdout
    score_in_venv()


def test_16_bit_png_reads_as_the_same_image_at_8_bits(tmp_path):
    """A 16-bit grey PNG (values x 257) decodes to the 8-bit file's pixels, not clipped white."""
    from PIL import Image

    from edge_demo.portable.image_files import read_image

    eight = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    for channels in (1, 3):
        np.testing.assert_array_equal(read_image(tmp_path / "sixteen.png", channels).pixels,
                                      read_image(tmp_path / "eight.png", channels).pixels)


def test_resized_images_are_one_note(tmp_path):
    """Many resized files: one line with their sizes (commonest first), not one per file."""
    import types

    from PIL import Image

    from edge_demo.cli import ImageScorer

    paths = []
    for index, side in enumerate((56, 56, 40, 28)):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.new("L", (side, side), 128).save(paths[-1])
    scorer = ImageScorer(types.SimpleNamespace(image_shape=(28, 28, 1)), 4, True, math.nan, None)
    for path in paths:
        assert scorer.load(path).shape == (28, 28, 1)
    assert scorer.reader.notes() == [
        f"gradcon-edge: note: 3 images resized to 28x28 (from 56x56 (2), 40x40 (1); first {paths[0]})"]
