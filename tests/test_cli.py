"""The `gradcon` command: a thin layer over the library, checked end to end on small data."""

import gzip
import struct

import keras
import numpy as np
import pytest

from gradcon_tf import cli


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_evaluate_prints_an_auroc_table(capsys):
    assert cli.main(["evaluate", "--data", "digits", "--classes", "0,1", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "AUROC on digits" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"]
    for row in rows:
        assert all(0.0 <= float(v) <= 1.0 for v in row[1:5])
    assert any(line.startswith(" mean") for line in out.splitlines())


def test_train_then_score_an_idx_file(tmp_path, capsys):
    from gradcon_tf.data import load_digits

    digits = load_digits()
    npz = tmp_path / "digits.npz"
    np.savez(npz, x_train=digits["train"].images, y_train=digits["train"].labels,
             x_test=digits["test"].images, y_test=digits["test"].labels)
    model_path = tmp_path / "model.keras"
    assert cli.main(["train", "--data", f"npz:{npz}", "--inlier-class", "3", "--epochs", "1",
                     "--out", str(model_path)]) == 0
    model = keras.models.load_model(model_path)
    assert model.threshold is not None

    images = tmp_path / "images-idx3-ubyte.gz"
    write_idx(images, digits["test"].images[:5, ..., 0])
    scores = tmp_path / "scores.csv"
    assert cli.main(["score", "--model", str(model_path), "--images", str(images),
                     "--out", str(scores)]) == 0
    lines = scores.read_text().splitlines()
    assert lines[0] == "index,score,recon,grad_loss,is_anomaly" and len(lines) == 6
    expected = model.score(digits["test"].images[:5])["score"]
    np.testing.assert_allclose([float(l.split(",")[1]) for l in lines[1:]], expected, rtol=1e-6)


def test_bad_idx_file_names_the_file(tmp_path):
    broken = tmp_path / "broken-idx3-ubyte"
    broken.write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + b"\0" * 100)
    with pytest.raises(ValueError, match="broken-idx3-ubyte.*truncated"):
        cli.main(["score", "--model", "unused.keras", "--images", str(broken)])
