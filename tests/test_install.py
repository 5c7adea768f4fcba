"""The user's path from a wheel, outside the checkout (slow: two fresh virtual environments).

Build the wheel; install it with the `cpu` extra in a fresh venv; there, from a folder outside
the checkout, train one epoch on the built-in digits, export, write test images and reproduce
(without matplotlib: figures skipped); install the edge scorer alone in a second venv without
TensorFlow and score the exported `.tflite`: the same scores as `gradcon score` to 1e-5.
"""

import csv
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def run(argv, cwd, **kwargs):
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-3000:])
    return result


def venv(path):
    run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    return path / "bin"


def read_scores(path):
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return {os.path.basename(r["path"]): float(r["score"]) for r in rows}


def test_wheel_then_edge_scorer_without_tensorflow(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), REPO], cwd=tmp_path)
    (wheel,) = glob.glob(str(wheels / "gradcon_tf-*.whl"))

    user = venv(tmp_path / "user")
    run([str(user / "pip"), "install", "-q", f"{wheel}[cpu]"], cwd=tmp_path)
    site = run([str(user / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=tmp_path).stdout.strip()
    assert not {"export", "edge_demo"} & set(os.listdir(site))  # no generic top-level modules

    work = tmp_path / "work"  # outside the checkout
    work.mkdir()
    gradcon = str(user / "gradcon")
    assert run([gradcon, "--version"], work).stdout.strip() == "gradcon 0.1.0"
    run([gradcon, "train", "--data", "digits", "--inlier-class", "0", "--epochs", "1", "--out", "m.keras"], work)
    exported = run([gradcon, "export", "m.keras", "--out", "deploy"], work)
    assert "LiteRT f32" in exported.stdout and (work / "deploy" / "export.json").exists()
    run([gradcon, "sample-images", "--data", "digits", "--count", "8", "--out", "shots"], work)
    run([gradcon, "score", "--model", "m.keras", "--images", "shots", "--out", "keras.csv"], work)
    reproduced = run([gradcon, "reproduce", "--data", "digits", "--classes", "0", "--seeds", "1",
                      "--epochs", "1", "--progress", "0", "--out", "repro"], work)
    assert "figures skipped" in reproduced.stdout
    report = (work / "repro" / "README.md").read_text()
    assert ".png" not in report and not glob.glob(str(work / "repro" / "*.png"))

    device = venv(tmp_path / "device")
    run([str(device / "pip"), "install", "-q", os.path.join(REPO, "edge_demo")], tmp_path)
    no_tf = subprocess.run([str(device / "python"), "-c", "import tensorflow"], capture_output=True)
    assert no_tf.returncode != 0
    edge = run([str(device / "gradcon-edge"), "--model", "deploy/gradcon_f32.tflite", "shots",
                "--csv", "edge.csv"], work)
    assert "XNNPACK" not in edge.stderr  # LiteRT's INFO line is silenced
    assert run([str(device / "gradcon-edge"), "--version"], work).stdout.strip() == "gradcon-edge 0.1.0"
    keras_csv, edge_csv = (work / "keras.csv").read_text(), (work / "edge.csv").read_text()
    assert keras_csv.splitlines()[0] == edge_csv.splitlines()[0]  # one CSV format
    shared = run([str(user / "python"), "-c", "import gradcon_tf.portable.image_files as m; print(m.__file__)"],
                 work).stdout
    assert site in shared  # installed from the wheel as a file, not linked to the checkout
    keras_scores, edge_scores = read_scores(work / "keras.csv"), read_scores(work / "edge.csv")
    assert sorted(keras_scores) == sorted(edge_scores) and len(edge_scores) == 8
    names = sorted(keras_scores)
    np.testing.assert_allclose([edge_scores[n] for n in names], [keras_scores[n] for n in names],
                               rtol=0, atol=1e-5)
