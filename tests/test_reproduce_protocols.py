"""``gradcon reproduce --protocol gpnd|conditions|localisation`` end to end on tiny data, resumable."""

import json
import os

import numpy as np
import pytest

from gradcon_tf import cli
from gradcon_tf.reproduction import runner


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def reproduce_command(out, protocol, classes):
    """``gradcon reproduce`` on the built-in digits, 1 seed, 1 epoch; returns (argv, summary)."""
    argv = ["reproduce", "--data", "digits", "--classes", classes, "--seeds", "1", "--epochs", "1",
            "--out", out, "--progress", "0", "--protocol", protocol]
    assert cli.main(argv) == 0
    summary = read_json(os.path.join(out, "summary.json"))
    assert summary["complete"] and summary["command"].endswith(f"--protocol {protocol}")
    return argv, summary


@pytest.mark.slow  # kept out of the default run for its time
def test_gpnd_protocol_end_to_end_and_resume(tmp_path, capsys):
    out = str(tmp_path / "gpnd")
    argv, summary = reproduce_command(out, "gpnd", "0")
    run = read_json(os.path.join(out, "runs", "class0-fold0.json"))
    assert list(summary["outlier_percentages"]) == ["10", "20", "30", "40", "50"]
    for p, result in summary["outlier_percentages"].items():
        for kind in ("gradcon", "recon", "grad"):
            assert result[kind]["auroc"]["values"] == [run["outlier_percentages"][p][kind]["auroc"]]
            assert result[kind]["f1"]["mean"] == pytest.approx(run["outlier_percentages"][p][kind]["f1"])
        assert len(run["outlier_percentages"][p]["layers"]) == 4
    text = open(os.path.join(out, "README.md")).read()
    assert "| F1 |" in text and "| AUC |" in text and "| 10% | 20% | 30% | 40% | 50% |" in text
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "1 of 1 runs already finished" in capsys.readouterr().out


@pytest.mark.slow  # kept out of the default run for its time
def test_conditions_protocol_end_to_end_and_resume(tmp_path):
    out = str(tmp_path / "conditions")
    logs = []
    kwargs = dict(verbose=0, log=logs.append, protocol="conditions",
                  challenges=("rain", "haze"), levels=(1, 5))
    runner.reproduce("digits", [], 1, 1, out, **kwargs)
    summary = read_json(os.path.join(out, "summary.json"))
    run = read_json(os.path.join(out, "runs", "synthesised-seed0.json"))
    assert summary["complete"] and summary["challenges"] == "synthesised"
    assert set(summary["auroc"]) == {"rain", "haze"}
    assert list(summary["auroc"]["haze"]) == ["1", "5"]
    assert summary["auroc"]["rain"]["5"]["grad"]["values"] == [
        run["conditions"]["rain"]["5"]["grad"]["auroc"]
    ]
    text = open(os.path.join(out, "README.md")).read()
    assert "| challenge | level 1 | level 5 | mean |" in text and "| rain |" in text
    runner.reproduce("digits", [], 1, 1, out, **kwargs)
    assert "1 of 1 runs already finished" in logs[-2]


@pytest.mark.slow  # 10-30 s; run with `pytest -m slow`
def test_localisation_protocol_end_to_end_and_resume(tmp_path, capsys):
    out = str(tmp_path / "localisation")
    argv, summary = reproduce_command(out, "localisation", "0,1")
    run = read_json(os.path.join(out, "runs", "class1-seed0.json"))
    assert set(summary["pixel_auroc"]) == {"recon_map", "grad_map", "score_map"}
    for kind, aggregate in summary["pixel_auroc"].items():
        assert aggregate["per_class_auroc"]["1"] == [run["localisation"]["pixel_auroc"][kind]]
        assert aggregate["mean_auroc"] == pytest.approx(
            np.mean([np.mean(values) for values in aggregate["per_class_auroc"].values()]))
    assert set(summary["image_auroc"]) == {"gradcon", "recon", "grad"}
    assert 0.0 < run["localisation"]["mask_pixels"] < 0.2
    text = open(os.path.join(out, "README.md")).read()
    assert "| recon error (baseline) |" in text and "| class 0 | class 1 |" in text
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().out
