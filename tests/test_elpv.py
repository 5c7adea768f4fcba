"""The ELPV one-class split on a small fake copy of the dataset's layout (labels.csv + images)."""

import numpy as np
import pytest
from PIL import Image

from gradcon_tf.data import elpv


@pytest.fixture()
def fake_elpv(tmp_path):
    """24 cells: 8 functional mono, 8 functional poly, then defects of each probability."""
    (tmp_path / "images").mkdir()
    rows = [(0.0, "mono")] * 8 + [(0.0, "poly")] * 8
    rows += [(p, t) for p in (1 / 3, 2 / 3, 1.0) for t in ("mono",)] + [(1.0, "poly")] * 2
    rows += [(2 / 3, "poly"), (1 / 3, "poly"), (1.0, "mono")]
    lines = []
    for index, (probability, kind) in enumerate(rows):
        name = f"images/cell{index:04d}.png"
        Image.fromarray(np.full((30, 30), index, np.uint8)).save(tmp_path / name)
        lines.append(f"{name} {probability} {kind}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return elpv.load_elpv(size=10, labels_csv=str(tmp_path / "labels.csv")), rows


def test_cells_load_with_their_labels(fake_elpv):
    cells, rows = fake_elpv
    assert cells.images.shape == (len(rows), 10, 10, 1) and cells.images.dtype == np.uint8
    np.testing.assert_allclose(cells.defect_probability, [p for p, _ in rows])
    assert list(cells.module_type) == [t for _, t in rows]


@pytest.mark.parametrize("module_type", ["mono", "poly", "both"])
@pytest.mark.parametrize("defective", [">=2/3", ">0"])
def test_split_trains_on_functional_cells_and_tests_on_held_out_and_defective(fake_elpv, module_type, defective):
    cells, rows = fake_elpv
    split = elpv.elpv_one_class_split(cells, module_type, seed=3, defective=defective)
    index = {int(image[0, 0, 0]): i for i, image in enumerate(cells.images)}  # pixel value = row

    def rows_of(images):
        return [index[int(image[0, 0, 0])] for image in images]

    kinds = {"mono", "poly"} if module_type == "both" else {module_type}
    functional = [i for i, (p, t) in enumerate(rows) if p == 0 and t in kinds]
    limit = 2 / 3 - 1e-9 if defective == ">=2/3" else 0
    defects = [i for i, (p, t) in enumerate(rows) if p > limit and t in kinds]
    trained, validation, test = rows_of(split.train), rows_of(split.validation), rows_of(split.test)
    held_out = [i for i, bad in zip(test, split.test_is_anomaly) if not bad]
    assert sorted(trained + validation + held_out) == functional  # each functional cell once
    assert len(held_out) == round(0.25 * len(functional))
    assert sorted(i for i, bad in zip(test, split.test_is_anomaly) if bad) == defects
    same = elpv.elpv_one_class_split(cells, module_type, seed=3, defective=defective)
    np.testing.assert_array_equal(same.test, split.test)  # seeded


# ---------------------------------------------------------------------- gradcon reproduce --protocol elpv


def elpv_copy(root, seed=0):
    """An ELPV-like copy under ``root`` (labels.csv + images/): horizontal bars on functional
    cells, vertical on defective ones; 40 functional cells per module type and defects of every
    probability. Returns the labels file."""
    from tests.helpers import bar_images

    (root / "images").mkdir()
    rows = [(0.0, kind) for kind in ("mono", "poly") for _ in range(40)]
    rows += [(p, kind) for p in (1 / 3, 2 / 3, 1.0) for kind in ("mono", "poly") for _ in range(4)]
    functional = bar_images(80, "horizontal", seed, size=40)
    defective = bar_images(len(rows) - 80, "vertical", seed + 1, size=40)
    lines = []
    for index, ((probability, kind), image) in enumerate(zip(rows, [*functional, *defective])):
        name = f"images/cell{index:04d}.png"
        Image.fromarray((image[..., 0] * 255).astype(np.uint8)).save(root / name)
        lines.append(f"{name} {probability:.6f} {kind}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return str(root / "labels.csv")


def test_reproduce_elpv_scores_match_an_independent_computation_and_resume(tmp_path, capsys):
    import dataclasses
    import json

    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    from gradcon_tf import cli
    from gradcon_tf.reproduction import runner, store
    from gradcon_tf.reproduction.protocols.elpv import Elpv

    labels_csv = elpv_copy(tmp_path)
    out = str(tmp_path / "out")
    argv = ["reproduce", "--protocol", "elpv", "--data", f"elpv:{labels_csv}", "--cells", "mono",
            "--image-size", "32", "--seeds", "1", "--epochs", "1", "--out", out, "--progress", "0"]
    assert cli.main(argv) == 0
    summary = json.load(open(f"{out}/summary.json"))
    record = json.load(open(f"{out}/runs/cellsmono-size32-seed0.json"))
    stored = np.load(f"{out}/runs/cellsmono-size32-seed0.npz")
    assert summary["complete"] and "--classes" not in summary["command"]
    assert record["sizes"] == {"train": 27, "validation": 3, "test_functional": 10,
                               "test_defective >=2/3": 8, "test_defective >0": 12}

    cells = elpv.load_elpv(32, labels_csv)
    split = elpv.elpv_split_indices(cells, "mono", 0, defective=">0")
    np.testing.assert_allclose(stored["defect_probability"], cells.defect_probability[split.test], atol=1e-6)
    train = cells.images[split.train].reshape(27, -1) / 255.0
    # Loss weights "data": alpha = 0.03 * (pixel variance of the training cells) / 0.054.
    assert record["alpha"] == pytest.approx(0.03 * train.var(axis=0).mean() / 0.054, rel=1e-6)
    assert record["beta"] == pytest.approx(4 * record["alpha"], rel=1e-9)
    test = cells.images[split.test].reshape(len(split.test), -1) / 255.0
    pca = PCA(26).fit(train)
    expected_pca = np.mean((pca.inverse_transform(pca.transform(test)) - test) ** 2, axis=1)
    np.testing.assert_allclose(stored["pca"], expected_pca, rtol=1e-4, atol=1e-9)
    for criterion, lowest in ((">=2/3", 0.6), (">0", 0.3)):
        chosen = (stored["defect_probability"] == 0) | (stored["defect_probability"] > lowest)
        labels = stored["defect_probability"][chosen] > 0
        for kind, column in (("gradcon", "score"), ("recon", "recon"), ("grad", "grad_loss"), ("pca", "pca")):
            expected = roc_auc_score(labels, stored[column][chosen])
            assert record["auroc"][criterion][kind] == pytest.approx(expected, abs=1e-12)
            assert summary["auroc"][criterion][kind]["mono"]["values"] == [record["auroc"][criterion][kind]]
    assert "## Defective = probability >0" in open(f"{out}/README.md").read()

    capsys.readouterr()
    assert cli.main(argv) == 0  # resumed: nothing trains
    assert "1 of 1 runs already finished" in capsys.readouterr().out
    settings = runner.recipe_settings(f"elpv:{labels_csv}", 1, loss_weights="data")
    run = {"cells": "mono", "size": 32, "seed": 0}
    assert store.load_finished_run(out, run, settings, arrays=Elpv.arrays) is not None
    other = dataclasses.replace(settings, loss_weights="paper")  # another recipe: trained again
    assert store.load_finished_run(out, run, other, arrays=Elpv.arrays) is None
    other = dataclasses.replace(settings, learning_rate=3e-4)
    assert store.load_finished_run(out, run, other, arrays=Elpv.arrays) is None


def test_reproduce_elpv_rejects_other_data_in_one_line(capsys):
    from gradcon_tf import cli

    code = cli.main(["reproduce", "--protocol", "elpv", "--data", "digits", "--epochs", "1", "--out", "x"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "gradcon: error: ELPV data is elpv or elpv:LABELS_CSV, got 'digits'"


def test_reproduce_elpv_with_the_local_score_illumination_removal_and_a_learning_rate(tmp_path):
    import json

    from gradcon_tf import cli

    labels_csv = elpv_copy(tmp_path)
    out = str(tmp_path / "out")
    assert cli.main(["reproduce", "--protocol", "elpv", "--data", f"elpv:{labels_csv}", "--cells", "poly",
                     "--image-size", "32", "--seeds", "1", "--epochs", "1", "--out", out, "--progress", "0",
                     "--image-score", "local", "--remove-illumination", "--learning-rate", "5e-4"]) == 0
    summary = json.load(open(f"{out}/summary.json"))
    record = json.load(open(f"{out}/runs/cellspoly-size32-seed0.json"))
    assert summary["command"].endswith(
        "--image-score local --learning-rate 0.0005 --remove-illumination --protocol elpv")
    assert record["settings"]["image_score"] == "local" and record["settings"]["remove_illumination"]
    assert record["settings"]["learning_rate"] == 5e-4 == summary["hyperparameters"]["learning_rate"]
    stored = np.load(f"{out}/runs/cellspoly-size32-seed0.npz")
    assert np.abs(stored["score"] - (stored["recon"] + record["beta"] * stored["grad_loss"])).min() > 1e-6
    assert "GradCon, local" in open(f"{out}/README.md").read()
