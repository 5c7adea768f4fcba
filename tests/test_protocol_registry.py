"""A protocol added outside the package, in this file alone: one class, registered, run through
``gradcon reproduce`` (train, resume, report) like the paper's protocols."""

import json
import os

import numpy as np

from gradcon_tf import cli, metrics
from gradcon_tf import splits
from gradcon_tf.reproduction import protocols, provenance, report, summary, training
from gradcon_tf.reproduction.protocols import base


@protocols.register
class NoisyCopies(base.Protocol):
    """One model per seed on class 0; test = its test images (inliers) + noisy copies."""

    name = "toy-noise"
    description = "toy: one model per seed on class 0; test = class-0 test images + noisy copies"
    arrays = ("is_anomaly", "score")

    def runs(self):
        return {seed: {"seed": seed} for seed in self.request.seeds}

    def run(self, loaded, seed, train):
        split = splits.one_class_split(loaded["train"], loaded["test"], 0, seed=seed)
        inliers = split.test[~split.test_is_anomaly]
        noise = np.random.default_rng(seed).integers(0, 128, inliers.shape)
        noisy = np.clip(inliers + noise, 0, 255).astype(inliers.dtype)
        labels = np.repeat([False, True], len(inliers))
        split = splits.OneClassSplit(split.train, split.validation, np.concatenate([inliers, noisy]), labels)
        trained = train(split, seed)
        scores = training.stored_scores(trained.model, split)
        results = {"auroc": metrics.auroc(scores["score"], labels)}
        return training.Outcome(trained, {"train": len(split.train), "test": len(labels)}, results, scores)

    def summarize(self, records, settings):
        seeds = self.request.seeds
        missing = [f"seed{s}" for s in seeds if s not in records]
        return {
            **summary.head(settings, self.request.command, self.description, {"seeds": seeds}, missing),
            "auroc": summary.mean_and_std([records[s]["auroc"] for s in seeds if s in records]),
            "hyperparameters": summary.hyperparameters(settings),
            **summary.seconds(records),
            "environment": provenance.environment(),
        }

    def report(self, summary, figures=()):
        rows = [[str(s), report.format_mean(v)] for s, v in zip(summary["runs"]["seeds"], summary["auroc"]["values"])]
        body = [*report.table(["seed", "AUROC"], rows), ""]
        return report.Report(self.title(summary, "noisy copies"), body, protocol=summary["protocol"])


def read(path):
    with open(path) as handle:
        return handle.read()


def test_a_registered_protocol_runs_through_gradcon_reproduce(tmp_path, capsys):
    out = str(tmp_path / "toy")
    argv = ["reproduce", "--data", "digits", "--seeds", "2", "--epochs", "1", "--out", out,
            "--progress", "0", "--protocol", "toy-noise"]
    assert "toy-noise" in protocols.names()
    assert cli.main(argv) == 0
    result = json.loads(read(os.path.join(out, "summary.json")))
    runs = [json.loads(read(os.path.join(out, "runs", f"seed{s}.json"))) for s in (0, 1)]
    assert result["complete"] and result["command"].endswith("--out " + out + " --protocol toy-noise")
    assert result["auroc"]["values"] == [run["auroc"] for run in runs]
    assert all(run["best_epoch"] == 1 and run["settings"]["epochs"] == 1 for run in runs)
    text = read(os.path.join(out, "README.md"))
    assert text.startswith("# GradCon on `digits`, noisy copies: 1 epochs per model\n")
    assert f"| seed | AUROC |\n|---|---|\n| 0 | {runs[0]['auroc']:.3f} |\n" in text
    assert "Protocol: toy: one model per seed" in text and "Hyperparameters (the paper's):" in text

    capsys.readouterr()
    assert cli.main(argv + ["--report-only"]) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().out
    assert read(os.path.join(out, "README.md")) == text

    assert cli.main(argv + ["--milestones", "1"]) == 2  # an option the protocol does not take
    assert "the toy-noise protocol takes no option milestones" in capsys.readouterr().err
