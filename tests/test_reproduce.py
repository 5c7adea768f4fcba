"""``gradcon reproduce`` end to end on tiny data, resume after a crash, and the report's numbers."""

import dataclasses
import json
import os

import numpy as np
import pytest

from gradcon_tf import cli
from gradcon_tf.reproduction import store
from gradcon_tf.reproduction.protocols.one_class import markdown_report, summarize


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


@pytest.mark.slow  # 10-30 s; run with `pytest -m slow`
def test_reproduce_end_to_end_and_resume_after_crash(tmp_path, capsys):
    out = str(tmp_path / "results")
    argv = [
        "reproduce",
        "--data",
        "digits",
        "--classes",
        "0-1",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--out",
        out,
        "--progress",
        "0",
        "--milestones",
        "1",
    ]
    assert cli.main(argv) == 0
    summary = read_json(os.path.join(out, "summary.json"))
    assert list(summary)[:2] == ["protocol_id", "headline"] and summary["protocol_id"] == "one-class"
    assert summary["headline"]["value"] == summary["mean_auroc"] is not None
    for key in (
        "dataset",
        "epochs",
        "seeds",
        "command",
        "mean_auroc",
        "std_auroc",
        "per_class_auroc",
        "recon",
        "grad",
        "layers",
        "overlap",
    ):
        assert key in summary
    assert summary["dataset"] == "digits" and summary["epochs"] == 2 and summary["seeds"] == [0]
    assert summary["command"] == (
        f"gradcon reproduce --data digits --classes 0-1 --seeds 1 --epochs 2 --out {out} "
        "--milestones 1"
    )
    assert summary["complete"] and summary["missing_runs"] == []
    runs = {c: read_json(os.path.join(out, "runs", f"class{c}-seed0.json")) for c in (0, 1)}
    assert summary["per_class_auroc"] == {str(c): [runs[c]["gradcon"]["auroc"]] for c in (0, 1)}
    assert summary["recon"]["per_class_auroc"]["1"] == [runs[1]["recon"]["auroc"]]
    assert summary["grad"]["per_class_auroc"]["0"] == [runs[0]["grad"]["auroc"]]
    assert summary["mean_auroc"] == pytest.approx(
        np.mean([runs[c]["gradcon"]["auroc"] for c in (0, 1)])
    )
    assert len(summary["layers"]) == 4
    # The 1-epoch budget is evaluated inside the same runs; the 2-epoch point is the final result.
    assert list(summary["epoch_curve"]) == ["1", "2"]
    assert summary["epoch_curve"]["2"]["gradcon"]["mean_auroc"] == summary["mean_auroc"]
    for c in (0, 1):
        milestone = runs[c]["milestones"]["1"]
        assert milestone["best_epoch"] == 1
        assert summary["epoch_curve"]["1"]["grad"]["per_class_auroc"][str(c)] == [
            milestone["grad"]["auroc"]
        ]
        if runs[c]["best_epoch"] == 1:  # the same weights give the same AUROC
            assert milestone["gradcon"]["auroc"] == pytest.approx(
                runs[c]["gradcon"]["auroc"], abs=1e-6
            )
    # The stored scores reproduce the recorded AUROC.
    from sklearn.metrics import roc_auc_score

    with np.load(os.path.join(out, "runs", "class1-seed0.npz")) as scores:
        assert roc_auc_score(scores["is_anomaly"], scores["score"]) == pytest.approx(
            runs[1]["gradcon"]["auroc"]
        )
        assert len(scores["score"]) == runs[1]["sizes"]["test_inliers"] * 2
    report = open(os.path.join(out, "README.md")).read()
    assert "| **mean** |" in report and summary["command"] in report
    for name in (
        "roc.png",
        "hist_gradcon.png",
        "hist_recon.png",
        "hist_grad.png",
        "auroc_vs_epochs.png",
    ):
        assert os.path.getsize(os.path.join(out, name)) > 1000
    assert not [n for n in os.listdir(os.path.join(out, "runs")) if n.startswith(".tmp")]

    # Simulated crash: class 1's record is half-written; class 0's is intact.
    finished = os.path.join(out, "runs", "class0-seed0.json")
    crashed = os.path.join(out, "runs", "class1-seed0.json")
    text = open(crashed).read()
    with open(crashed, "w") as handle:
        handle.write(text[: len(text) // 2])
    before = os.stat(finished).st_mtime_ns
    capsys.readouterr()
    assert cli.main(argv) == 0
    log = capsys.readouterr().out
    assert "1 of 2 runs already finished" in log and "class 1 seed 0" in log
    assert "class 0 seed 0" not in log
    assert os.stat(finished).st_mtime_ns == before  # not redone
    assert read_json(crashed)["complete"] is True

    # --report-only trains nothing and lists what is missing.
    os.remove(crashed)
    assert cli.main([*argv, "--report-only"]) == 0
    assert "class 1 seed 0" not in capsys.readouterr().out
    assert read_json(os.path.join(out, "summary.json"))["missing_runs"] == ["class1-seed0"]
    assert cli.main(argv) == 0  # and the plain command finishes the job
    capsys.readouterr()

    # Once all runs are done, a rerun trains nothing and rewrites the same summary numbers.
    assert cli.main(argv) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().out
    again = read_json(os.path.join(out, "summary.json"))
    assert again["per_class_auroc"]["0"] == summary["per_class_auroc"]["0"]


def _stored_scores():
    """The arrays a finished run's .npz must hold (two samples)."""
    return {
        "is_anomaly": np.array([0, 1], bool),
        "score": np.zeros(2),
        "recon": np.zeros(2),
        "grad_loss": np.zeros(2),
        "layer_cosines": np.zeros((2, 4)),
    }


def test_finished_run_is_not_trusted_when_incomplete_or_different(tmp_path):
    settings = store.Settings(data="digits", epochs=3, batch_size=64, alpha=0.03, beta=0.12)
    json_path, npz_path = store.run_paths(str(tmp_path), {"inlier_class": 3, "seed": 0})
    scores = _stored_scores()
    record = {
        "format": store.RUN_FORMAT,
        "inlier_class": 3,
        "seed": 0,
        "settings": settings.as_dict(),
        "complete": True,
    }
    store.write_npz(npz_path, scores)
    store.write_json(json_path, record)
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings) is not None
    other = store.Settings(data="digits", epochs=2, batch_size=64, alpha=0.03, beta=0.12)
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, other) is None
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings, milestones=[1]) is None
    store.write_json(json_path, {**record, "milestones": {"1": {}}})
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings, milestones=[1]) is not None
    store.write_json(json_path, {**record, "complete": False})
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings) is None
    store.write_json(json_path, record)
    with open(npz_path, "r+b") as handle:  # truncated scores
        handle.truncate(50)
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings) is None
    os.remove(npz_path)
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings) is None


def test_runs_made_with_another_optimizer_or_init_are_not_reused(tmp_path):
    settings = store.Settings(data="digits", epochs=3, batch_size=64, alpha=0.03, beta=0.12)
    json_path, npz_path = store.run_paths(str(tmp_path), {"inlier_class": 3, "seed": 0})
    store.write_npz(npz_path, _stored_scores())
    legacy = {  # written before the optimizer and the initialisation were recorded: Keras' Adam
        key: value
        for key, value in settings.as_dict().items()
        if key not in ("optimizer", "output_bias_from_data", "redraw_collapsed")
    }
    record = {"format": store.RUN_FORMAT, "inlier_class": 3, "seed": 0, "complete": True}
    store.write_json(json_path, {**record, "settings": legacy})
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings) is None
    keras_adam = dataclasses.replace(settings, optimizer="Adam")
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, keras_adam) is not None
    released = dataclasses.replace(settings, output_bias_from_data=False)
    store.write_json(json_path, {**record, "settings": released.as_dict()})
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, settings) is None
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, released) is not None
    redrawn = dataclasses.replace(released, redraw_collapsed=True)
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, redrawn) is None
    older = {key: value for key, value in released.as_dict().items() if key != "redraw_collapsed"}
    store.write_json(json_path, {**record, "settings": older})  # before redrawing existed
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, released) is not None
    assert store.load_finished_run(str(tmp_path), {"inlier_class": 3, "seed": 0}, redrawn) is None


def test_the_restart_averages_count_only_for_runs_the_guard_restarted(tmp_path):
    kept = store.Settings(data="digits", epochs=3, batch_size=64, alpha=0.03, beta=0.12,
                          output_bias_from_data=False, bias_from_data_on_collapse=True)
    cleared = dataclasses.replace(kept, restart_averages="cleared")
    run = {"inlier_class": 3, "seed": 0}
    json_path, npz_path = store.run_paths(str(tmp_path), run)
    store.write_npz(npz_path, _stored_scores())
    before = {key: value for key, value in kept.as_dict().items() if key != "restart_averages"}
    record = {"format": store.RUN_FORMAT, **run, "complete": True, "settings": before}
    restarted = {"draw": 1, "output_bias_from_data": True,
                 "collapsed": [{"draw": 0, "blank_after_epoch": 2}]}
    untouched = {"draw": 0, "output_bias_from_data": False, "collapsed": []}
    # Made before the field: a run the guard restarted cleared the averages, and is redone.
    store.write_json(json_path, {**record, "initialization": restarted})
    assert store.load_finished_run(str(tmp_path), run, kept) is None
    assert store.load_finished_run(str(tmp_path), run, cleared) is not None
    # A run it did not restart trained the same either way.
    store.write_json(json_path, {**record, "initialization": untouched})
    assert store.load_finished_run(str(tmp_path), run, kept) is not None
    assert store.load_finished_run(str(tmp_path), run, cleared) is not None
    # Reported as recorded: the restarted runs say which, the others do not count.
    records = [{**record, "initialization": untouched},
               {**record, "settings": kept.as_dict(), "initialization": restarted}]
    keys = store.REPORTED_AS_RECORDED
    assert store.recorded_settings(cleared, records, keys).restart_averages == "kept"
    assert store.recorded_settings(kept, records[:1], keys).restart_averages == "kept"
    records.append({**record, "initialization": restarted})
    with pytest.raises(ValueError, match="restart_averages"):
        store.recorded_settings(kept, records, keys)
    # Outside the guarded initialisation the field never counts.
    released = dataclasses.replace(kept, bias_from_data_on_collapse=False)
    store.write_json(json_path, {**record, "settings": {**before, "bias_from_data_on_collapse": False},
                                 "initialization": restarted})
    assert store.load_finished_run(str(tmp_path), run, released) is not None


@pytest.mark.parametrize("method", ["gradcon", "vae-grad"])
def test_models_keep_the_release_init_when_asked(method):
    from gradcon_tf import experiment

    assert experiment.build_model(method, (28, 28, 1)).initialization == "guarded"
    assert experiment.build_model(method, (28, 28, 1), "release").initialization == "release"


@pytest.mark.slow  # kept out of the default run for its time
def test_release_init_is_recorded(tmp_path):
    out = str(tmp_path / "release")
    argv = ["reproduce", "--data", "digits", "--classes", "3", "--seeds", "1", "--epochs", "1"]
    assert cli.main(argv + ["--out", out, "--progress", "0", "--release-init"]) == 0
    summary = read_json(os.path.join(out, "summary.json"))
    run = read_json(os.path.join(out, "runs", "class3-seed0.json"))
    assert summary["command"].endswith("--release-init")
    assert run["settings"]["output_bias_from_data"] is False
    assert run["settings"]["redraw_collapsed"] is False  # recorded; only old folders redrew
    assert summary["hyperparameters"]["output_bias_from_data"] is False
    assert summary["hyperparameters"]["redraw_collapsed"] is False
    assert summary["hyperparameters"]["optimizer"] == "CorrectedEpsilonAdam"


@pytest.mark.slow  # 10-20 s; run with `pytest -m slow`
def test_the_release_init_trains_a_blank_start_to_the_end(tmp_path, monkeypatch):
    """--release-init: the release's start whatever happens (the guarded default restarts it)."""
    from gradcon_tf import experiment, networks

    built = []
    original = experiment.build_model

    def blank(*args, **kwargs):
        model = original(*args, **kwargs)
        networks.sigmoid_output_bias(model.decoder).assign([-30.0])  # blank through epoch 2
        built.append(model)
        return model

    monkeypatch.setattr(experiment, "build_model", blank)
    argv = ["reproduce", "--data", "digits", "--classes", "3", "--seeds", "1", "--epochs", "3",
            "--progress", "0", "--milestones", "1"]
    runs = {}
    for name, extra in (("release", ["--release-init"]), ("guarded", [])):
        assert cli.main(argv + ["--out", str(tmp_path / name), *extra]) == 0
        runs[name] = read_json(os.path.join(tmp_path / name, "runs", "class3-seed0.json"))
    assert len(built) == 2  # one model each: no run draws new weights
    assert runs["release"]["initialization"] == {
        "draw": 0, "output_bias_from_data": False, "collapsed": []}
    assert runs["release"]["blank"] and len(runs["release"]["val_loss"]) == 3
    assert runs["guarded"]["initialization"]["collapsed"] == [{"draw": 0, "blank_after_epoch": 2}]
    assert not runs["guarded"]["blank"]
    summary = read_json(os.path.join(tmp_path / "release", "summary.json"))
    assert summary["redrawn_runs"] == {} and summary["command"].endswith("--release-init")


@pytest.mark.slow  # 10-30 s; run with `pytest -m slow`
def test_the_guarded_default_trains_as_the_release_unless_the_first_epoch_is_blank(monkeypatch):
    """A healthy start trains exactly as --init release; a blank one trains again from the same
    seed with the output bias from data (GradCon.fit; tests/test_collapse.py checks its start)."""
    from gradcon_tf import experiment, networks

    split = _digits_split(3, seed=0)

    def val_loss(model):
        return [float(v) for v in model.history.history["val_loss"]]

    def run(initialization):
        return experiment.train_one_class(split, 1, seed=0, verbose=0, initialization=initialization)

    guarded, release = run("guarded"), run("release")
    assert experiment.initialization_record(guarded) == {"draw": 0, "output_bias_from_data": False, "collapsed": []}
    assert val_loss(guarded) == val_loss(release)

    original = experiment.build_model
    built = []

    def first_run_blank(*args, **kwargs):
        model = original(*args, **kwargs)
        if not built:
            networks.sigmoid_output_bias(model.decoder).assign([-30.0])
        built.append(model)
        return model

    monkeypatch.setattr(experiment, "build_model", first_run_blank)
    rescued = run("guarded")
    monkeypatch.setattr(experiment, "build_model", original)
    record = experiment.initialization_record(rescued)
    restarted = record.pop("restarted_run")
    assert record == {
        "draw": 1, "output_bias_from_data": True, "collapsed": [{"draw": 0, "blank_after_epoch": 1}]
    }
    losses = rescued.history.history["val_recon_loss"]
    assert restarted == {"epochs": len(losses), "recon_loss": [losses[0], losses[-1]],
                         "collapsed_at": None}
    assert rescued.starts_from_mean_image and restarted["collapsed_at"] is None


@pytest.mark.slow  # kept out of the default run for its time
def test_guarded_is_the_recorded_default(tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = ["reproduce", "--data", "digits", "--classes", "3", "--seeds", "1", "--epochs", "1",
            "--progress", "0", "--out", out]
    assert cli.main(argv) == 0
    run = read_json(os.path.join(out, "runs", "class3-seed0.json"))
    assert run["settings"]["bias_from_data_on_collapse"] is True
    assert run["settings"]["output_bias_from_data"] is False
    assert run["settings"]["loss_average"] == "batch-size weighted"
    summary = read_json(os.path.join(out, "summary.json"))
    assert summary["hyperparameters"]["initialization"] == "guarded"
    assert summary["command"].endswith(f"--out {out}")
    capsys.readouterr()
    assert cli.main(argv[:-2] + ["--out", out, "--init", "data", "--report-only"]) == 0
    reported = read_json(os.path.join(out, "summary.json"))  # the runs, as they were trained
    assert reported["mean_auroc"] == summary["mean_auroc"] is not None
    assert reported["hyperparameters"]["initialization"] == "guarded"
    assert "trained with output_bias_from_data False (asked: True)" in capsys.readouterr().out


def _digits_split(inlier, seed):
    from gradcon_tf import data
    from gradcon_tf.splits import one_class_split

    splits = data.load("digits")
    return one_class_split(splits["train"], splits["test"], inlier, seed=seed)


def test_summary_mean_and_std_over_seeds():
    settings = store.Settings(data="mnist:x", epochs=20, batch_size=64, alpha=0.03, beta=0.12)

    def record(value):
        part = {"auroc": value, "overlap": 0.1}
        return {
            "gradcon": part,
            "recon": part,
            "grad": part,
            "layers": [part],
            "best_epoch": 1,
            "train_seconds": 1.0,
            "score_seconds": 0.5,
        }

    values = {(0, 0): 0.9, (1, 0): 0.7, (0, 1): 1.0, (1, 1): 0.8, (0, 2): 0.95}
    records = {key: record(v) for key, v in values.items()}
    summary = summarize(records, [0, 1], [0, 1, 2], settings, "cmd", "mnist")
    # Seed 2 lacks class 1, so only seeds 0 (mean 0.8) and 1 (mean 0.9) count.
    assert summary["per_seed_mean_auroc"] == {"0": pytest.approx(0.8), "1": pytest.approx(0.9)}
    assert summary["mean_auroc"] == pytest.approx(0.85)
    assert summary["std_auroc"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert summary["per_class_auroc"] == {"0": [0.9, 1.0, 0.95], "1": [0.7, 0.8]}
    assert not summary["complete"] and summary["missing_runs"] == ["class1-seed2"]
    report = markdown_report(summary)
    assert "0.995" in report and "release, 20 epochs" in report and "Partial" in report


@pytest.mark.slow  # 10-30 s; run with `pytest -m slow`
def test_reproduce_a_table1_baseline_reports_the_latent_loss(tmp_path):
    out = str(tmp_path / "vae")
    argv = ["reproduce", "--data", "digits", "--classes", "3", "--seeds", "1", "--epochs", "1"]
    argv += ["--out", out, "--progress", "0", "--method", "vae-grad"]
    assert cli.main(argv) == 0
    summary = read_json(os.path.join(out, "summary.json"))
    run = read_json(os.path.join(out, "runs", "class3-seed0.json"))
    assert summary["method"] == "vae-grad" and run["settings"]["method"] == "vae-grad"
    assert summary["command"].endswith("--method vae-grad")
    assert summary["latent"]["per_class_auroc"] == {"3": [run["latent"]["auroc"]]}
    from sklearn.metrics import roc_auc_score

    with np.load(os.path.join(out, "runs", "class3-seed0.npz")) as scores:
        assert roc_auc_score(scores["is_anomaly"], scores["latent"]) == pytest.approx(
            run["latent"]["auroc"]
        )
    report = open(os.path.join(out, "README.md")).read()
    assert report.startswith("# VAE + Grad on") and "latent only (ours)" in report
    assert os.path.getsize(os.path.join(out, "hist_latent.png")) > 1000
    # A GradCon command on the same folder does not take the VAE's run as its own.
    settings = store.Settings(data="digits", epochs=1, batch_size=64, alpha=0.03, beta=0.12)
    assert store.load_finished_run(out, {"inlier_class": 3, "seed": 0}, settings) is None


@pytest.mark.slow  # 10-20 s; run with `pytest -m slow`
def test_compare_methods_table_from_result_folders(tmp_path, capsys):
    folders = []
    for method in ("cae", "vae-grad"):
        out = str(tmp_path / method)
        argv = ["reproduce", "--data", "digits", "--classes", "1", "--seeds", "1", "--epochs", "1"]
        assert cli.main([*argv, "--out", out, "--progress", "0", "--method", method]) == 0
        folders.append(out)
    capsys.readouterr()
    assert cli.main(["compare", *folders]) == 0
    table = capsys.readouterr().out
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in table.splitlines()
            if line.startswith("| CAE") or line.startswith("| VAE")}
    assert set(rows) == {
        ("CAE", "recon + beta * grad"), ("CAE", "recon"), ("CAE", "grad"),
        ("VAE + Grad", "recon + beta * grad"), ("VAE + Grad", "recon"), ("VAE + Grad", "grad"),
        ("VAE + Grad", "latent"),
    }
    vae = read_json(os.path.join(folders[1], "runs", "class1-seed0.json"))
    assert f"| {vae['latent']['auroc']:.3f} |" in rows[("VAE + Grad", "latent")]
    overlap = 100 * vae["latent"]["overlap"]
    assert rows[("VAE + Grad", "latent")].rstrip(" |").endswith(f"{overlap:.1f}")
