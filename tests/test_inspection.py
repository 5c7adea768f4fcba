"""Own images: train on a folder of normal images, evaluate on normal / abnormal / mask folders
(gradcon_tf.inspection, gradcon train --normal, gradcon evaluate --model), and the bad inputs."""

import json
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

import gradcon_tf
from gradcon_tf import cli, inspection, metrics
from gradcon_tf.data import anomaly_folders

SIZE = 32
SQUARES = {"small": 5, "large": 9}  # defect type -> side of its bright square


def smooth_image(rng, size=SIZE):
    """A smooth grayscale image: a random low-frequency wave on a gradient."""
    y, x = np.mgrid[0:size, 0:size] / size
    phase, angle = rng.uniform(0, 2 * np.pi, 2)
    wave = 0.5 + 0.25 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    return np.clip(255 * (0.3 * x + 0.7 * wave), 0, 255).astype(np.uint8)


def write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_folders(root, train=30, normal=10, per_type=5, seed=0):
    """root/train (normal), root/test/good, root/test/defects/<type>, root/masks/<type>
    (MVTec-style names: <stem>_mask.png)."""
    rng = np.random.default_rng(seed)
    for i in range(train):
        write_png(root / "train" / f"{i:03d}.png", smooth_image(rng))
    for i in range(normal):
        write_png(root / "test" / "good" / f"{i:03d}.png", smooth_image(rng))
    for kind, side in SQUARES.items():
        for i in range(per_type):
            image, mask = smooth_image(rng), np.zeros((SIZE, SIZE), np.uint8)
            top, left = rng.integers(2, SIZE - side - 2, 2)
            image[top : top + side, left : left + side] = 255
            mask[top : top + side, left : left + side] = 255
            write_png(root / "test" / "defects" / kind / f"{i:03d}.png", image)
            write_png(root / "masks" / kind / f"{i:03d}_mask.png", mask)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_folders(tmp_path_factory.mktemp("inspection"))


@pytest.fixture(scope="module")
def folder_model(folders):
    with warnings.catch_warnings():  # 10 held-out images are too few for fpr 0.05: expected
        warnings.simplefilter("ignore")
        return inspection.train_on_normal_folder(folders / "train", epochs=2, seed=0, verbose=0,
                                                 backbone="none")


# ---------------------------------------------------------------------- metrics


def test_aupro_of_a_hand_computed_case():
    # Regions: A = the two top-left pixels, B = the bottom-right pixel; 5 normal pixels.
    maps = np.array([[[0.9, 0.4, 0.5, 0.1], [0.3, 0.0, 0.4, 0.8]]])
    masks = np.array([[[1, 1, 0, 0], [0, 0, 0, 1]]], bool)
    # Curve (FPR, PRO) over the distinct values 0.9, 0.8, 0.5, 0.4 (one A pixel and one normal
    # pixel), ...: (0, 0), (0, 1/4), (0, 3/4), (1/5, 3/4), (2/5, 1), ...; at FPR 0.3 PRO is 7/8.
    area = 0.2 * 0.75 + 0.1 * (0.75 + 0.875) / 2
    assert metrics.aupro(maps, masks) == pytest.approx(area / 0.3)
    # With a normal image whose 8 pixels all score 0.45, the FPR counts 13 normal pixels:
    # (1/13, 3/4) after 0.5, (9/13, 3/4) after 0.45, so PRO is 3/4 all the way to FPR 0.3.
    pair_maps = np.concatenate([maps, np.full((1, 2, 4), 0.45)])
    pair_masks = np.concatenate([masks, np.zeros((1, 2, 4), bool)])
    assert metrics.aupro(pair_maps, pair_masks) == pytest.approx(0.75)
    assert metrics.aupro(masks * 1.0, masks) == pytest.approx(1.0)
    assert metrics.aupro(-(masks * 1.0), masks) == pytest.approx(0.0)


def test_rates_at_threshold():
    rates = metrics.rates_at_threshold([0.1, 0.6, 0.7, 0.2], [False, True, False, True], 0.5)
    assert rates == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


# ---------------------------------------------------------------------- data layer


def test_folder_scan_finds_defect_types_and_masks(folders):
    scanned = anomaly_folders.scan_inspection_folders(
        folders / "test" / "good", folders / "test" / "defects", folders / "masks"
    )
    assert len(scanned.normal) == 10 and len(scanned.abnormal) == 10
    assert sorted(set(scanned.abnormal.defect_types)) == sorted(SQUARES)
    assert scanned.masks_missing == 0 and scanned.masks_resized == 0
    assert all(m.endswith("_mask.png") and "/masks/" in m for m in scanned.masks)


def test_images_directly_in_the_abnormal_folder_and_masks_of_another_size(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "good" / "a.png", smooth_image(rng))
    for stem in ("s1", "s2"):
        write_png(tmp_path / "scratch" / f"{stem}.png", smooth_image(rng))
    mask = np.zeros((64, 64, 3), np.uint8)  # twice the image's size, RGB
    mask[10:14, 20:30, 1] = 1
    write_png(tmp_path / "masks" / "s1.png", mask)
    scanned = anomaly_folders.scan_inspection_folders(
        tmp_path / "good", tmp_path / "scratch", tmp_path / "masks"
    )
    assert scanned.abnormal.defect_types == ["scratch", "scratch"]  # the folder's name
    assert scanned.masks_missing == 1 and scanned.masks_resized == 1
    binary = anomaly_folders.read_mask(scanned.masks[0], (32, 32))
    assert binary.sum() == 2 * 5 and binary[5:7, 10:15].all()  # nearest: every other pixel


def test_mixed_sizes_and_modes_need_an_image_size(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "a.png", smooth_image(rng, 32))
    write_png(tmp_path / "b.png", smooth_image(rng, 40))
    write_png(tmp_path / "c.png", np.repeat(smooth_image(rng, 32)[..., None], 3, -1))  # RGB
    with pytest.raises(ValueError, match="--image-size"):
        inspection.load_normal_folder(tmp_path)
    images = inspection.load_normal_folder(tmp_path, image_size=(24, 28))
    assert images.shape == (3, 24, 28, 3) and images.dtype == np.uint8  # one RGB image: all RGB


def test_normal_split_holds_out_at_least_ten():
    images = np.zeros((25, 8, 8, 1), np.uint8)
    split = inspection.normal_split(images, validation_fraction=0.2, seed=0)
    assert (len(split.train), len(split.validation), len(split.test)) == (15, 10, 0)
    assert inspection.split_sizes(100, 0.2) == (80, 20)
    with pytest.raises(ValueError, match="too few"):
        inspection.split_sizes(19)


# ---------------------------------------------------------------------- Python path


def test_evaluate_folders_matches_an_independent_computation(folders, folder_model):
    model = folder_model
    assert model.image_shape == (SIZE, SIZE, 1) and model.threshold is not None
    result = inspection.evaluate_folders(
        model, folders / "test" / "good", folders / "test" / "defects", folders / "masks"
    )
    truth, scores = result.is_anomaly, result.scores["score"]
    assert truth.sum() == 10 and (~truth).sum() == 10
    assert result.image["auroc"] == pytest.approx(roc_auc_score(truth, scores))
    assert result.image["aupr"] == pytest.approx(average_precision_score(truth, scores))
    flagged = scores > model.threshold
    assert result.image["recall"] == pytest.approx(np.mean(flagged[truth]))
    types = np.asarray(result.defect_types)
    for kind in SQUARES:
        chosen = (types == "") | (types == kind)
        assert result.defects[kind]["images"] == 5
        assert result.defects[kind]["auroc"] == pytest.approx(
            roc_auc_score(types[chosen] == kind, scores[chosen])
        )
    assert result.pixel["images"] == 20 and 0.0 <= result.pixel["aupro"] <= 1.0
    _check_pixel_auroc(model, folders, result)
    assert [w["group"] for w in result.worst] == ["normal"] * 4 + ["abnormal"] * 4
    assert "| all |" in result.summary() and "AUPRO" in result.summary()


def _check_pixel_auroc(model, folders, result):
    """The pixel AUROC again, from the model's maps and the mask files read here."""
    paths = result.paths
    images = np.stack([np.asarray(Image.open(p))[..., None] for p in paths])
    maps = model.score(images, maps=True)["score_map"]
    masks = np.zeros(maps.shape, bool)
    for i, path in enumerate(paths[10:], start=10):
        kind, stem = path.split("/")[-2], path.split("/")[-1][:-4]
        masks[i] = np.asarray(Image.open(folders / "masks" / kind / f"{stem}_mask.png")) > 0
    assert result.pixel["auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-6)


def test_report_files(folders, folder_model, tmp_path):
    from gradcon_tf.inspection_report import write_inspection_report

    result = inspection.evaluate_folders(folder_model, folders / "test" / "good", folders / "test" / "defects")
    assert result.pixel == {}  # no masks, no pixel metrics
    path = write_inspection_report(result, tmp_path / "report")
    text = open(path).read()
    for name in ("roc.png", "histograms.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000 and f"]({name})" in text
    worst = sorted(p.name for p in (tmp_path / "report" / "worst").iterdir())
    assert len(worst) == 8 and worst[0].startswith("abnormal_") and worst[-1].startswith("normal_")
    write_inspection_report(result, tmp_path / "report")  # an earlier report is replaced


def test_report_overlays_at_the_images_resolution_scores_csv_and_permissions(
        folder_model, tmp_path, monkeypatch):
    """Images of 120 px scored by a 32 px model: the overlays show them at 120 px with their
    masks outlined; scores.csv holds every image with paths relative to its folder."""
    import csv
    import os

    from gradcon_tf.inspection_report import write_inspection_report
    from gradcon_tf.portable import overlays

    rng = np.random.default_rng(3)
    big = 120
    for i in range(6):
        write_png(tmp_path / "good" / f"{i}.png", smooth_image(rng, big))
        image, mask = smooth_image(rng, big), np.zeros((big, big), np.uint8)
        image[30:70, 40:80] = 255
        mask[30:70, 40:80] = 255
        write_png(tmp_path / "bad" / "square" / f"{i}.png", image)
        write_png(tmp_path / "masks" / "square" / f"{i}.png", mask)
    monkeypatch.chdir(tmp_path)  # the folders given as relative paths, as a user types them
    result = inspection.evaluate_folders(folder_model, "good", "bad", "masks", worst=2)
    assert [w["group"] for w in result.worst] == ["normal"] * 2 + ["abnormal"] * 2
    path = write_inspection_report(result, "report")
    assert (os.stat("report").st_mode & 0o777) == 0o777 & ~_umask()
    text = open(path).read()
    assert "`square/" in text and str(tmp_path) not in text

    shown = {p.name: np.asarray(Image.open(p)) for p in (tmp_path / "report" / "worst").iterdir()}
    assert len(shown) == 4
    top = overlays.MARGIN + overlays.TITLE
    for name, sheet in shown.items():
        panel = sheet[top : top + big, overlays.MARGIN : overlays.MARGIN + big]
        folder = "good" if name.startswith("normal") else "bad/square"
        original = np.asarray(Image.open(f"{folder}/{name.split('_', 2)[2]}"))[..., None].repeat(3, -1)
        if name.startswith("normal"):
            assert np.array_equal(panel, original)
        else:
            edge = overlays.outline(np.asarray(Image.open(f"masks/square/{name.split('_', 2)[2]}")) > 0)
            assert (panel[edge] == overlays.MASK_COLOUR).all()
            assert np.array_equal(panel[~edge], original[~edge])

    with open("report/scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows] == [f"{i}.png" for i in range(6)] + [
        f"square/{i}.png" for i in range(6)]
    assert [r["folder"] for r in rows] == ["normal"] * 6 + ["abnormal"] * 6
    assert [r["defect_type"] for r in rows] == [""] * 6 + ["square"] * 6
    for key in ("score", "recon", "grad_loss", "p_value"):
        assert np.allclose([float(r[key]) for r in rows], result.scores[key], rtol=0, atol=0)
    flagged = result.scores["score"] > folder_model.threshold
    assert [r["decision"] for r in rows] == ["anomaly" if f else "normal" for f in flagged]


def _umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_masks_missing_for_some_images_warn_once(folders, folder_model, tmp_path):
    masks = tmp_path / "masks"
    for path in sorted((folders / "masks").rglob("*.png"))[:7]:
        write_png(masks / path.parent.name / path.name, np.asarray(Image.open(path)))
    with pytest.warns(inspection.FolderWarning, match="3 of 10 abnormal images have no mask"):
        result = inspection.evaluate_folders(
            folder_model, folders / "test" / "good", folders / "test" / "defects", masks
        )
    assert result.pixel["images"] == 17 and result.masks_missing == 3
    for path in masks.rglob("*.png"):
        write_png(path, np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match="every one is empty"), warnings.catch_warnings():
        warnings.simplefilter("ignore", inspection.FolderWarning)
        inspection.evaluate_folders(folder_model, folders / "test" / "good", folders / "test" / "defects", masks)


# ---------------------------------------------------------------------- CLI path


def test_cli_train_on_a_normal_folder_then_evaluate_with_a_report(folders, tmp_path, capsys):
    model_path = tmp_path / "m.keras"
    assert cli.main(["train", "--normal", str(folders / "train"), "--out", str(model_path),
                     "--backbone", "none", "--epochs", "1", "--quiet", "--image-score", "local", "--learning-rate", "5e-4"]) == 0
    out = capsys.readouterr().out
    assert "training on 20 images, 10 held out" in out and model_path.exists()
    assert "local image score" in out and "learning rate 0.0005" in out
    loaded = gradcon_tf.load_model(str(model_path))
    assert float(loaded.optimizer.learning_rate) == pytest.approx(5e-4)
    assert cli.main(["evaluate", "--model", str(model_path), "--normal", str(folders / "test" / "good"),
                     "--abnormal", str(folders / "test" / "defects"), "--masks", str(folders / "masks"),
                     "--report", str(tmp_path / "report"), "--worst", "1"]) == 0
    out = capsys.readouterr().out
    assert "| all |" in out and "| small | 5 |" in out and "AUPRO" in out
    assert "local image score, threshold" in out
    assert "image AUROC of the local score and of its parts' image means (not local): " in out
    assert (tmp_path / "report" / "report.md").exists()
    assert len(list((tmp_path / "report" / "worst").iterdir())) == 2


def test_bad_inputs_are_one_line_before_tensorflow_loads(folders, tmp_path):
    bad = tmp_path / "bad"
    write_png(bad / "ok.png", smooth_image(np.random.default_rng(0)))
    (bad / "broken.png").write_bytes(b"not a png")
    mixed = tmp_path / "mixed"
    for i, size in enumerate((32, 32, 40)):
        write_png(mixed / f"{i}.png", smooth_image(np.random.default_rng(i), size))
    few = tmp_path / "few"
    for i in range(12):
        write_png(few / f"{i}.png", smooth_image(np.random.default_rng(i)))
    empty = tmp_path / "empty"
    (empty / "type").mkdir(parents=True)
    odd_masks = tmp_path / "odd_masks"
    write_png(odd_masks / "small" / "000_mask.png", np.zeros((16, 32), np.uint8))
    model = tmp_path / "model.keras"
    zipfile.ZipFile(model, "w").close()  # only the checks run: an empty archive is enough
    good, defects = str(folders / "test" / "good"), str(folders / "test" / "defects")
    train = ["train", "--out", str(tmp_path / "m.keras"), "--normal"]
    evaluate = ["evaluate", "--model", str(model), "--normal", good, "--abnormal"]
    cases = [
        (train + [str(bad)], "broken.png: cannot decode image"),
        (train + [str(mixed)], "images of 2 sizes"),
        (train + [str(few)], "12 normal images are too few"),
        (train + [str(folders / "train"), "--inlier-class", "0"], "not both"),
        (["train", "--out", "m.keras"], "--normal DIR"),
        (evaluate + [str(empty)], "no image files"),
        (evaluate + [str(bad)], "broken.png: cannot decode image"),
        (evaluate + [defects, "--masks", str(odd_masks)], "another aspect ratio"),
        (evaluate + [defects, "--masks", str(empty)], "no mask matches"),
        (["evaluate", "--model", str(model), "--normal", good], "--abnormal"),
        (evaluate + [defects, "--classes", "1"], "--classes"),
        (evaluate + [defects, "--epochs", "5", "--loss-weights", "data", "--learning-rate", "1e-4"],
         "--epochs --loss-weights --learning-rate: training options"),
        (evaluate + [defects, "--loss-weights", "paper"], "--loss-weights: training options"),
    ]
    program = (
        "import contextlib, io, json, sys; from gradcon_tf import cli\n"
        "results = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try:\n            status = cli.main(argv)\n"
        "        except SystemExit as stop:\n            status = stop.code\n"
        "    results.append((status, err.getvalue()))\n"
        "print(json.dumps({'results': results, 'tf': 'tensorflow' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", program, json.dumps([c[0] for c in cases])],
                          capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    for (argv, expected), (status, stderr) in zip(cases, report["results"]):
        errors = [line for line in stderr.splitlines() if line.startswith("gradcon: error:")]
        assert status == 2 and len(errors) == 1 and expected in errors[0], (argv, stderr)
    assert not report["tf"]  # every error came before TensorFlow loads


def test_a_truncated_image_is_one_line_and_nothing_is_written(folders, tmp_path, capsys):
    normal = tmp_path / "normal"
    for path in sorted((folders / "train").glob("*.png")):
        write_png(normal / path.name, np.asarray(Image.open(path)))
    data = (normal / "007.png").read_bytes()
    (normal / "007.png").write_bytes(data[: len(data) // 2])  # the header reads, the pixels do not
    out = tmp_path / "m.keras"
    assert cli.main(["train", "--normal", str(normal), "--out", str(out), "--epochs", "1"]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("gradcon: error:")]
    assert len(errors) == 1 and "007.png: cannot decode image" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normal"]  # no model, no stray file


def test_report_without_matplotlib_is_one_line(folders, tmp_path, monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name, *a)
    )
    model = tmp_path / "model.keras"
    zipfile.ZipFile(model, "w").close()
    status = cli.main(["evaluate", "--model", str(model), "--normal", str(folders / "test" / "good"),
                       "--abnormal", str(folders / "test" / "defects"), "--report", str(tmp_path / "r")])
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("gradcon: error:")]
    assert status == 2 and len(errors) == 1 and "pip install 'gradcon-tf[data]'" in errors[0]
    assert not (tmp_path / "r").exists()


def test_training_memory_bound_is_the_largest_side_that_fits():
    from gradcon_tf import training_memory as memory

    for count, channels, batch, available in [(40, 1, 64, 18e9), (1000, 3, 64, 8e9), (20, 3, 4, 2e9)]:
        side = memory.largest_square_side(count, channels, batch, available)
        assert memory.training_bytes(count, (side, side), channels, batch) <= available
        assert memory.training_bytes(count, (side + 1, side + 1), channels, batch) > available
        side = memory.largest_square_side(count, channels, batch, available, (224, 224))
        assert memory.training_bytes(count, (side, side), channels, batch, (224, 224)) <= available
        assert memory.training_bytes(count, (side + 1, side + 1), channels, batch, (224, 224)) > available
    # the measured point it was fitted to: 30 training images of 256x256, 1.61 GB peak RSS
    assert 1.5e9 < memory.training_bytes(30, (256, 256), 1, 64) < 1.8e9
