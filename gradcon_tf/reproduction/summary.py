"""What every protocol's ``summary.json`` is made of: mean and std over runs, the published
numbers, the hyperparameters and the compute spent. Each protocol assembles its own summary from
these (:mod:`gradcon_tf.reproduction.protocols`)."""

import functools
import importlib.resources
import json

import numpy as np

from gradcon_tf.loss_weights import PAPER_PIXEL_VARIANCE
from gradcon_tf.model import ADAM_EPSILON


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


def mean_and_std(values):
    """``{"mean", "std", "values"}`` of a list of numbers (:func:`mean_std`)."""
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "values": [float(v) for v in values]}


def aggregate(records, classes, seeds, pick):
    """Per-class lists over seeds, the per-seed class means and their mean/std over seeds, of
    ``pick(record)`` over the records {(class, seed): record}.

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


def head(settings, command, protocol, runs, missing):
    """The first entries of a summary: what ran, how to run it again, what is missing."""
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


def hyperparameters(settings):
    """The training recipe of ``settings`` (a :class:`~gradcon_tf.reproduction.store.Settings`)
    as the report shows it."""
    return {
        "alpha": settings.alpha,
        "beta": settings.beta,
        **({"loss_weights": "data: alpha and beta scaled by each run's training images' pixel "
            f"variance over the paper's ({PAPER_PIXEL_VARIANCE})"}
           if settings.loss_weights == "data" else {}),
        **({"image_score": settings.image_score} if settings.image_score != "mean" else {}),
        **({"remove_illumination": True} if settings.remove_illumination else {}),
        "optimizer": settings.optimizer,
        "output_bias_from_data": settings.output_bias_from_data,
        "redraw_collapsed": settings.redraw_collapsed,
        "initialization": settings.initialization,
        **({"restart_averages": settings.restart_averages}
           if settings.restart_averages != "kept" else {}),
        "loss_average": settings.loss_average,
        "learning_rate": settings.learning_rate,
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


def seconds(records):
    """The training and the training + scoring time of all runs."""
    return {
        "train_seconds_total": round(sum(r["train_seconds"] for r in records.values()), 1),
        "run_seconds_total": round(
            sum(r["train_seconds"] + r["score_seconds"] for r in records.values()), 1
        ),
    }
