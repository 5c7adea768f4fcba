"""``summary.json``: the finished runs' records aggregated over classes, seeds and folds."""

import functools
import importlib.resources
import json
import os
import platform

import keras
import numpy as np
import tensorflow as tf

from gradcon_tf import metrics
from gradcon_tf.evaluation import score_kinds
from gradcon_tf.model import ADAM_EPSILON, DEFAULT_LEARNING_RATE

ONE_CLASS_PROTOCOL = (
    "one-class (OCGAN/paper): inlier class of the train split, 10% held out for "
    "validation; test = all inlier test images + as many outliers drawn at random from the "
    "other classes; the seed draws the hold-out and the outliers and initialises the network"
)
GPND_PROTOCOL = (
    "GPND (fMNIST): train + test pooled, 5 class-stratified folds, 60/20/20 train/validation/"
    "test; one model per (inlier class, fold), selected by the loss on the validation fold's "
    "inliers; validation and test sets with 10..50% outliers; F1 of the inliers at the "
    "threshold that maximises it on validation"
)
LOCALISATION_PROTOCOL = (
    "localisation: one model per (inlier class, seed) trained as in the one-class protocol; "
    "each inlier test image gets a square of a test image of another class pasted at a random "
    "place (the seed draws both); pixel AUROC of each anomaly map over all pixels of the pasted "
    "images, the mask being the pixels the paste changed"
)
CONDITIONS_PROTOCOL = (
    "abnormal conditions (CURE-TSR): one model per seed trained on challenge-free images, 10% "
    "held out for validation; test = the challenge-free test images (inliers) + the test "
    "images under one challenge type at one level (outliers)"
)


@functools.cache
def references():
    """The paper's and the release's numbers, by protocol and dataset name."""
    text = importlib.resources.files("gradcon_tf.reproduction").joinpath("references.json")
    return json.loads(text.read_text())


def mean_std(values):
    """Mean and sample std (ddof=1; None for a single value) of a list of numbers."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None, None
    std = float(np.std(values, ddof=1)) if values.size > 1 else None
    return float(np.mean(values)), std


def _aggregate(records, classes, seeds, pick):
    """Per-class lists over seeds, the per-seed class means and their mean/std over seeds.

    Only seeds with every class finished count towards ``mean_auroc``/``std_auroc``.
    """
    per_class = {
        str(c): [pick(records[(c, s)]) for s in seeds if (c, s) in records] for c in classes
    }
    seed_means = {
        str(s): float(np.mean([pick(records[(c, s)]) for c in classes]))
        for s in seeds
        if all((c, s) in records for c in classes)
    }
    mean, std = mean_std(list(seed_means.values()))
    return {
        "mean_auroc": mean,
        "std_auroc": std,
        "per_seed_mean_auroc": seed_means,
        "per_class_auroc": per_class,
    }


def _epoch_curve(records, classes, seeds, epochs):
    """{budget: {score kind: aggregate}} for every milestone all records have, plus ``epochs``."""
    common = None
    for record in records.values():
        have = set(record.get("milestones", {}))
        common = have if common is None else common & have
    if not common:
        return {}
    kinds = score_kinds(next(iter(records.values())))
    curve = {}
    for budget in sorted(common, key=int):
        curve[budget] = {
            name: _aggregate(
                records, classes, seeds, lambda r, b=budget, n=name: r["milestones"][b][n]["auroc"]
            )
            for name in kinds
        }
    curve[str(epochs)] = {
        name: _aggregate(records, classes, seeds, lambda r, n=name: r[n]["auroc"])
        for name in kinds
    }
    return curve


def _hyperparameters(settings):
    return {
        "alpha": settings.alpha,
        "beta": settings.beta,
        "optimizer": settings.optimizer,
        "output_bias_from_data": settings.output_bias_from_data,
        "redraw_collapsed": settings.redraw_collapsed,
        "initialization": settings.initialization,
        "loss_average": settings.loss_average,
        "learning_rate": DEFAULT_LEARNING_RATE,
        "adam_epsilon": ADAM_EPSILON,
        "batch_size": settings.batch_size,
        "validation_fraction": settings.validation_fraction,
        "model_selection": "weights of the epoch with the lowest validation loss"
        + (
            f", among epochs 1, {1 + settings.checkpoint_every}, ... and the last (the "
            "release's checkpoints)"
            if settings.checkpoint_every > 1
            else ""
        ),
        "checkpoint_every": settings.checkpoint_every,
    }


def _seconds(records):
    return {
        "train_seconds_total": round(sum(r["train_seconds"] for r in records.values()), 1),
        "run_seconds_total": round(
            sum(r["train_seconds"] + r["score_seconds"] for r in records.values()), 1
        ),
    }


def _environment():
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def summarize(records, classes, seeds, settings, command, dataset_name):
    """The one-class ``summary.json`` dict from the records {(class, seed): record}."""
    gradcon = _aggregate(records, classes, seeds, lambda r: r["gradcon"]["auroc"])
    n_layers = max((len(r["layers"]) for r in records.values()), default=0)
    missing = [f"class{c}-seed{s}" for c in classes for s in seeds if (c, s) not in records]
    kinds = score_kinds(next(iter(records.values()), {}))
    reference = references()["one-class"].get(dataset_name, {})
    summary = {
        "dataset": settings.data,
        "method": settings.method,
        "protocol": ONE_CLASS_PROTOCOL,
        "epochs": settings.epochs,
        "seeds": list(seeds),
        "classes": list(classes),
        "command": command,
        "complete": not missing,
        "missing_runs": missing,
        "mean_auroc": gradcon["mean_auroc"],
        "std_auroc": gradcon["std_auroc"],
        "per_seed_mean_auroc": gradcon["per_seed_mean_auroc"],
        "per_class_auroc": gradcon["per_class_auroc"],
        "std_note": "std_auroc is the sample standard deviation (ddof=1) over seeds of the "
        "per-seed means over classes; only seeds with every class finished count; null when "
        "fewer than two seeds count",
        "recon": _aggregate(records, classes, seeds, lambda r: r["recon"]["auroc"]),
        "grad": _aggregate(records, classes, seeds, lambda r: r["grad"]["auroc"]),
        "layers": [
            _aggregate(records, classes, seeds, lambda r, i=i: r["layers"][i]["auroc"])
            for i in range(n_layers)
        ],
        "overlap": {
            name: {
                str(c): [records[(c, s)][name]["overlap"] for s in seeds if (c, s) in records]
                for c in classes
            }
            for name in kinds
        },
        "overlap_note": "Fig. 5 histogram overlap, fraction of test samples in the overlapped "
        f"region of the inlier and outlier histograms ({metrics.OVERLAP_BINS} bins over the "
        "1st..99th percentile of the scores)",
        "hyperparameters": _hyperparameters(settings),
        "epoch_curve": _epoch_curve(records, classes, seeds, settings.epochs),
        "best_epochs": {
            f"class{c}-seed{s}": records[(c, s)]["best_epoch"]
            for c in classes
            for s in seeds
            if (c, s) in records
        },
        # Runs whose first draw(s) of initial weights collapsed and were drawn again.
        "redrawn_runs": {
            f"class{c}-seed{s}": records[(c, s)]["initialization"]
            for c in classes
            for s in seeds
            if records.get((c, s), {}).get("initialization", {}).get("collapsed")
        },
        **_seconds(records),
        "environment": _environment(),
        "reference": reference if settings.method == "gradcon" else {},
    }
    if "latent" in kinds:
        summary["latent"] = _aggregate(records, classes, seeds, lambda r: r["latent"]["auroc"])
    return summary


def _common(settings, command, protocol, runs, missing):
    return {
        "dataset": settings.data,
        "method": settings.method,
        "protocol": protocol,
        "epochs": settings.epochs,
        "runs": runs,
        "command": command,
        "complete": not missing,
        "missing_runs": missing,
    }


def _mean_and_std(values):
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "values": [float(v) for v in values]}


def summarize_gpnd(records, classes, folds, settings, command, dataset_name):
    """The GPND ``summary.json`` dict from the records {(class, fold): record}: AUROC and F1 of
    each score kind at each outlier percentage, mean and std over the (class, fold) runs."""
    missing = [f"class{c}-fold{f}" for c in classes for f in folds if (c, f) not in records]
    first = next(iter(records.values()), {})
    percentages = list(first.get("outlier_percentages", {}))
    table = {
        p: {
            name: {
                metric: _mean_and_std([r["outlier_percentages"][p][name][metric]
                                       for r in records.values()])
                for metric in ("auroc", "f1")
            }
            for name in score_kinds(first["outlier_percentages"][p])
        }
        for p in percentages
    }
    return {
        **_common(settings, command, GPND_PROTOCOL, {"classes": list(classes),
                                                             "folds": list(folds)}, missing),
        "outlier_percentages": table,
        "std_note": "mean and sample standard deviation (ddof=1) over the (class, fold) runs",
        "hyperparameters": _hyperparameters(settings),
        **_seconds(records),
        "environment": _environment(),
        "reference": references()["gpnd"].get(dataset_name, {})
        if settings.method == "gradcon" else {},
    }


def summarize_conditions(records, seeds, settings, command, dataset_name):
    """The abnormal-conditions ``summary.json`` dict from the records {seed: record}: AUROC of
    each score kind and each decoder layer per (challenge, level), mean and std over seeds."""
    missing = [f"conditions-seed{s}" for s in seeds if s not in records]
    first = next(iter(records.values()), {})
    conditions = first.get("conditions", {})
    table = {
        challenge: {
            level: {
                **{
                    name: _mean_and_std([r["conditions"][challenge][level][name]["auroc"]
                                         for r in records.values()])
                    for name in score_kinds(result)
                },
                "layers": [
                    _mean_and_std([r["conditions"][challenge][level]["layers"][i]["auroc"]
                                   for r in records.values()])
                    for i in range(len(result["layers"]))
                ],
            }
            for level, result in levels.items()
        }
        for challenge, levels in conditions.items()
    }
    return {
        **_common(settings, command, CONDITIONS_PROTOCOL, {"seeds": list(seeds)},
                  missing),
        "challenges": first.get("challenges", "synthesised"),
        "auroc": table,
        "std_note": "mean and sample standard deviation (ddof=1) over seeds",
        "hyperparameters": _hyperparameters(settings),
        **_seconds(records),
        "environment": _environment(),
        "reference": references()["conditions"].get(dataset_name, {}),
    }


def summarize_localisation(records, classes, seeds, settings, command):
    """The localisation ``summary.json`` dict from the records {(class, seed): record}: the pixel
    AUROC of each map kind and the image-level AUROC of each score kind, per class over seeds
    and as the mean over seeds of the per-seed class means."""
    missing = [f"class{c}-seed{s}" for c in classes for s in seeds if (c, s) not in records]
    first = next(iter(records.values()), {}).get("localisation", {})
    return {
        **_common(settings, command, LOCALISATION_PROTOCOL,
                  {"classes": list(classes), "seeds": list(seeds)}, missing),
        "pixel_auroc": {
            kind: _aggregate(records, classes, seeds,
                             lambda r, k=kind: r["localisation"]["pixel_auroc"][k])
            for kind in first.get("pixel_auroc", {})
        },
        "image_auroc": {
            name: _aggregate(records, classes, seeds,
                             lambda r, n=name: r["localisation"]["images"][n]["auroc"])
            for name in score_kinds(first.get("images", {}))
        },
        "std_note": "std is the sample standard deviation (ddof=1) over seeds of the per-seed "
        "means over classes; per class, the values of each seed",
        "hyperparameters": _hyperparameters(settings),
        **_seconds(records),
        "environment": _environment(),
    }
