"""One run of ``gradcon reproduce``: the model trained with the settings' recipe (checked
against them), the per-sample scores it stores, and the record around a protocol's results."""

import dataclasses
import math
import time

import numpy as np

from gradcon_tf import collapse, experiment
from gradcon_tf.reproduction import store


@dataclasses.dataclass
class TrainedRun:
    """What training a run gives: the selected model and what its training recorded."""

    model: object  # the trained and selected model (GradCon or GradConVAE)
    val_loss: list  # the validation loss of every epoch
    train_seconds: float
    blank: bool  # whether the selected weights leave a blank reconstruction (validation images)
    finished_at: float  # time.perf_counter() when training ended: scoring time counts from it


@dataclasses.dataclass
class Outcome:
    """What a protocol's run gives: the trained run and what was measured on it."""

    trained: TrainedRun
    sizes: dict  # how many images each set had
    results: dict  # the protocol's numbers, recorded as they are
    scores: dict  # per-sample arrays, stored in the run's .npz


def train(split, seed, settings, verbose=1, callbacks=()):
    """Train and select a model on ``split`` with ``settings``' recipe
    (:func:`gradcon_tf.experiment.train_one_class`, which seeds the process's random generators
    with ``seed``); the model (its alpha, beta and optimizer) is checked against the settings."""
    started = time.perf_counter()
    model = experiment.train_one_class(split, seed=seed, verbose=verbose, callbacks=callbacks,
                                       recipe=settings.recipe())
    train_seconds = time.perf_counter() - started
    expected = (settings.alpha, settings.beta)
    if settings.loss_weights != "paper":
        expected = tuple(
            experiment.method_arguments(
                settings.method, settings.loss_weights,
                experiment.as_the_network_sees(split.train, settings.remove_illumination),
            ).values()
        )
    if (model.alpha, model.beta) != expected:
        raise RuntimeError(
            f"the trained model has alpha={model.alpha}, beta={model.beta}; the settings "
            f"({settings.loss_weights} loss weights) say alpha={expected[0]}, beta={expected[1]}."
        )
    rate = float(model.optimizer.learning_rate)  # a float32 variable
    if (type(model.optimizer).__name__ != settings.optimizer
            or not math.isclose(rate, settings.learning_rate, rel_tol=1e-6)):
        raise RuntimeError(
            f"the model trained with {type(model.optimizer).__name__} at learning rate {rate:g}; "
            f"the settings say {settings.optimizer} at {settings.learning_rate:g}."
        )
    history = getattr(model.history, "history", {}) or {}
    val_loss = [float(v) for v in history.get("val_loss", [])]
    blank = collapse.is_dead(model, split.validation)  # the selected weights
    return TrainedRun(model, val_loss, train_seconds, blank, time.perf_counter())


def stored_scores(model, split):
    """The per-sample test scores a run stores: labels, score, recon, grad_loss, layer cosines
    (and the latent loss of a model that has one)."""
    outputs = model.score(split.test)
    scores = {"is_anomaly": np.asarray(split.test_is_anomaly, bool)}
    for key in ("score", "recon", "grad_loss", "layer_cosines", "latent"):
        if key in outputs:
            scores[key] = outputs[key].astype(np.float32)
    return scores


def record(run, settings, outcome, code):
    """A run's record: its identity ``run``, settings, sizes, the protocol's results, then the
    selection (best epoch, blank, validation losses), times, code version and the start that
    trained."""
    trained = outcome.trained
    return {
        "format": store.RUN_FORMAT,
        **run,
        "settings": settings.as_dict(),
        "alpha": trained.model.alpha,
        "beta": trained.model.beta,
        "sizes": outcome.sizes,
        **outcome.results,
        "best_epoch": trained.model.selected_epoch,
        "blank": trained.blank,
        "val_loss": trained.val_loss,
        "train_seconds": round(trained.train_seconds, 2),
        "score_seconds": round(time.perf_counter() - trained.finished_at, 2),
        "code": code,
        "complete": True,
        "initialization": experiment.initialization_record(trained.model),  # which draw trained
    }
