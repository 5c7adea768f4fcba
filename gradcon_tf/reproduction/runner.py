"""The runner of ``gradcon reproduce``: one run (train, select, score, record), the milestones
within it, and the resumable loop over every run of a protocol, which rewrites the report after
each run.

Protocols (``protocol=``): ``one-class`` (MNIST, CIFAR-10: one model per inlier class and seed),
``gpnd`` (Fashion-MNIST: one model per inlier class and fold, ``seeds`` folds, at most 5,
evaluated at 10..50 % outliers) and ``conditions`` (CURE-TSR: one model per seed trained on
clean images, evaluated per challenge type and level; ``classes`` unused) and ``localisation``
(one model per inlier class and seed as ``one-class``, evaluated by the pixel AUROC of its anomaly
maps on inlier test images with a pasted patch of another class: :mod:`gradcon_tf.localisation`). Several processes
may share one folder; rerun the full command at the end to write the report over all runs.
"""

import dataclasses
import os
import subprocess
import time

import keras
import numpy as np

from gradcon_tf import callbacks as callbacks_module
from gradcon_tf import _files as files
from gradcon_tf import collapse, conditions, evaluation, experiment, gpnd, localisation, protocols
from gradcon_tf import data as datasets
from gradcon_tf.reproduction import figures as figures_module
from gradcon_tf.reproduction import report, store, summary

PROTOCOLS = ("one-class", "gpnd", "conditions", "localisation")


def _milestone_callback(split, milestones, checkpoint_every=1):
    """A callback that, at each epoch in ``milestones``, scores the test split with the weights
    model selection would keep if training ended there (the same rule as the final selection,
    :class:`~gradcon_tf.callbacks.KeepBestWeights`): the result a shorter budget would have
    given, from the same training run."""

    class Milestones(callbacks_module.KeepBestWeights):
        def on_train_begin(self, logs=None):  # again for each initialisation drawn
            super().on_train_begin(logs)
            self.results = {}

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch + 1 not in milestones:
                return
            best_epoch, best_weights = self.selected()
            if best_weights is not None:
                current = self.model.get_weights()
                self.model.set_weights(best_weights)
                scores = _test_scores(self.model, split)
                blank = collapse.is_dead(self.model, split.validation)
                self.model.set_weights(current)
                record = evaluation.evaluate(scores, scores["is_anomaly"])
                self.results[str(epoch + 1)] = {
                    **{name: record[name] for name in evaluation.score_kinds(record)},
                    "layers": record["layers"],
                    "best_epoch": best_epoch,
                    "blank": blank,
                }

    return Milestones(every=checkpoint_every, restore=False)


def _test_scores(model, split):
    outputs = model.score(split.test)
    scores = {"is_anomaly": np.asarray(split.test_is_anomaly, bool)}
    for key in ("score", "recon", "grad_loss", "layer_cosines", "latent"):
        if key in outputs:
            scores[key] = outputs[key].astype(np.float32)
    return scores


def _train(split, seed, settings, verbose, callbacks=()):
    """The model trained and selected on ``split`` with ``settings``, its history's validation
    losses and the training time, checked against the settings."""
    started = time.perf_counter()
    model = experiment.train_one_class(
        split,
        settings.epochs,
        seed=seed,
        batch_size=settings.batch_size,
        verbose=verbose,
        callbacks=callbacks,
        method=settings.method,
        initialization=settings.initialization,
        redraw_collapsed=settings.redraw_collapsed,
        checkpoint_every=settings.checkpoint_every,
    )
    train_seconds = time.perf_counter() - started
    if (model.alpha, model.beta) != (settings.alpha, settings.beta):
        raise RuntimeError(
            f"the trained model has alpha={model.alpha}, beta={model.beta}; the settings say "
            f"alpha={settings.alpha}, beta={settings.beta}."
        )
    if type(model.optimizer).__name__ != settings.optimizer:
        raise RuntimeError(
            f"the model trained with {type(model.optimizer).__name__}; the settings say "
            f"{settings.optimizer}."
        )
    history = getattr(model.history, "history", {}) or {}
    val_losses = [float(v) for v in history.get("val_loss", [])]
    return model, val_losses, train_seconds


def _record(run, settings, sizes, model, split, val_losses, train_seconds, score_seconds, code):
    """A run's record around its results: identity, settings, selection, times."""
    return {
        "format": store.RUN_FORMAT,
        **run,
        "settings": settings.as_dict(),
        "sizes": sizes,
        "best_epoch": model.selected_epoch,
        "blank": collapse.is_dead(model, split.validation),  # the selected weights
        "val_loss": val_losses,
        "train_seconds": round(train_seconds, 2),
        "score_seconds": round(score_seconds, 2),
        "code": code,
        "complete": True,
        "initialization": experiment.initialization_record(model),  # which draw trained
    }


def run_one(splits, inlier, seed, settings, verbose=1, milestones=(), code=None):
    """Train and score one one-class (inlier class, seed); returns (record, per-sample scores).

    ``milestones``: epochs (< settings.epochs) at which to also record the test AUROCs of the
    best-validation-loss weights so far, i.e. what a budget of that many epochs would give.
    ``code``: the code version to record (default: the checkout's state now).
    """
    code = _code_version() if code is None else code
    split = protocols.one_class_split(
        splits["train"],
        splits["test"],
        inlier,
        seed=seed,
        validation_fraction=settings.validation_fraction,
    )
    milestones = sorted({int(m) for m in milestones if 0 < int(m) < settings.epochs})
    callbacks = (
        [_milestone_callback(split, milestones, settings.checkpoint_every)] if milestones else []
    )
    model, val_losses, train_seconds = _train(split, seed, settings, verbose, callbacks)
    blank = collapse.is_dead(model, split.validation)  # the selected weights
    started = time.perf_counter()
    scores = _test_scores(model, split)
    score_seconds = time.perf_counter() - started
    labels = scores["is_anomaly"]
    record = {
        "format": store.RUN_FORMAT,
        "inlier_class": inlier,
        "seed": seed,
        "settings": settings.as_dict(),
        "sizes": {
            "train": int(len(split.train)),
            "validation": int(len(split.validation)),
            "test_inliers": int(np.sum(~labels)),
            "test_outliers": int(np.sum(labels)),
        },
        **evaluation.evaluate(scores, labels),
        "best_epoch": model.selected_epoch,
        "blank": blank,
        "val_loss": val_losses,
        "train_seconds": round(train_seconds, 2),
        "score_seconds": round(score_seconds, 2),
        "code": code,
        "complete": True,
    }
    record["initialization"] = experiment.initialization_record(model)  # which draw trained
    if milestones:
        record["milestones"] = callbacks[0].results
    keras.backend.clear_session()
    return record, scores


def run_gpnd(pooled, inlier, fold, settings, verbose=1, code=None):
    """Train one GPND model (inlier class, fold; the fold seeds the network too) and evaluate it
    at every outlier percentage; returns (record, the test scores of each percentage)."""
    code = _code_version() if code is None else code
    splits, training = gpnd.gpnd_splits(pooled, inlier, fold, seed=0)
    model, val_losses, train_seconds = _train(training, fold, settings, verbose)
    started = time.perf_counter()
    results = gpnd.evaluate_gpnd(model, splits)
    scores = {}
    for percentage, split in splits.items():
        for key, values in _test_scores(model, split).items():
            scores[f"p{percentage}_{key}"] = values
    sizes = {"train": int(len(training.train)), "validation_inliers": int(len(training.validation))}
    record = _record(
        {"inlier_class": inlier, "fold": fold}, settings, sizes, model, training, val_losses,
        train_seconds, time.perf_counter() - started, code,
    )
    record["outlier_percentages"] = {str(p): result for p, result in results.items()}
    keras.backend.clear_session()
    return record, scores


def run_conditions(loaded, seed, settings, verbose=1, code=None, names=None, levels=None):
    """Train one model on clean images (seed ``seed``) and evaluate it on each challenge type at
    each level; returns (record, the clean test images' scores)."""
    code = _code_version() if code is None else code
    splits = conditions.condition_splits(
        loaded, settings.data, seed, names, levels, settings.validation_fraction
    )
    first = next(splits)
    training = first[1]
    model, val_losses, train_seconds = _train(training, seed, settings, verbose)
    started = time.perf_counter()
    results = conditions.evaluate_conditions(model, [first, *splits])
    clean = protocols.OneClassSplit(
        training.train, training.validation, training.test[~training.test_is_anomaly],
        training.test_is_anomaly[~training.test_is_anomaly],
    )
    scores = {f"clean_{k}": v for k, v in _test_scores(model, clean).items()}
    sizes = {"train": int(len(training.train)), "validation": int(len(training.validation)),
             "test_clean": int(np.sum(~training.test_is_anomaly))}
    run = {"challenges": conditions.source(settings.data), "seed": seed}
    record = _record(run, settings, sizes, model, training, val_losses, train_seconds,
                     time.perf_counter() - started, code)
    record["conditions"] = results
    keras.backend.clear_session()
    return record, scores


def run_localisation(splits, inlier, seed, settings, verbose=1, code=None):
    """Train one one-class model (inlier class, seed) and evaluate its anomaly maps on the inlier
    test images with pasted patches; returns (record, the image-level scores)."""
    code = _code_version() if code is None else code
    split = protocols.one_class_split(
        splits["train"], splits["test"], inlier, seed=seed,
        validation_fraction=settings.validation_fraction,
    )
    model, val_losses, train_seconds = _train(split, seed, settings, verbose)
    started = time.perf_counter()
    results, scores = localisation.evaluate_localisation(model, split, seed)
    sizes = {"train": int(len(split.train)), "validation": int(len(split.validation)),
             "test_images": int(np.sum(~split.test_is_anomaly))}
    record = _record({"inlier_class": inlier, "seed": seed}, settings, sizes, model, split,
                     val_losses, train_seconds, time.perf_counter() - started, code)
    record["localisation"] = results
    keras.backend.clear_session()
    return record, scores


def _ranges(numbers):
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8" (as ``--classes`` takes them)."""
    parts, numbers = [], list(numbers)
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            low, high = numbers[start], numbers[i - 1]
            parts.append(str(low) if low == high else f"{low}-{high}")
            start = i
    return ",".join(parts)


def _code_version():
    """The git commit of this checkout and whether gradcon_tf/ had uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "gradcon_tf"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit or None, "gradcon_tf_modified": bool(dirty)}




_FIGURES_SKIPPED = []  # the notice is given once per process


def write_report(
    out, records, all_scores, classes, seeds, settings, command, dataset_name, figures=True,
    log=print,
):
    """Write the one-class ``summary.json``, ``README.md`` and, with ``figures``, the figures
    (when matplotlib is installed); returns the summary. The report lists the figures written
    now, or without ``figures`` those already in ``out``."""
    result = summary.summarize(records, classes, seeds, settings, command, dataset_name)
    store.write_json(os.path.join(out, "summary.json"), result)
    names = ["roc.png"] + [f"hist_{name}.png" for name in evaluation.score_kinds(result)]
    if not figures:
        shown = [name for name in names if os.path.exists(os.path.join(out, name))]
    elif figures_module.available():
        written = figures_module.write_figures(
            out, all_scores, classes, seeds, records, settings.epochs
        )
        shown = [name for name in names if os.path.join(out, name) in written]
    else:
        if not _FIGURES_SKIPPED:
            log("figures skipped: matplotlib is not installed (pip install 'gradcon-tf[data]')")
            _FIGURES_SKIPPED.append(True)
        shown = []
    files.write_text(os.path.join(out, "README.md"), report.markdown_report(result, shown))
    return result


def _write_protocol_report(out, protocol, records, classes, seeds, settings, command, dataset):
    """summary.json and README.md of a GPND or abnormal-conditions folder."""
    if protocol == "gpnd":
        result = summary.summarize_gpnd(records, classes, seeds, settings, command, dataset)
        text = report.markdown_gpnd(result)
    elif protocol == "localisation":
        result = summary.summarize_localisation(records, classes, seeds, settings, command)
        text = report.markdown_localisation(result)
    else:
        result = summary.summarize_conditions(records, seeds, settings, command, dataset)
        text = report.markdown_conditions(result)
    store.write_json(os.path.join(out, "summary.json"), result)
    files.write_text(os.path.join(out, "README.md"), text)
    return result


def _runs(protocol, data, classes, seeds):
    """{key in the records dict: the fields that identify the run}, in running order."""
    if protocol in ("one-class", "localisation"):
        return {(c, s): {"inlier_class": c, "seed": s} for s in seeds for c in classes}
    if protocol == "gpnd":
        return {(c, f): {"inlier_class": c, "fold": f} for f in seeds for c in classes}
    return {s: {"challenges": conditions.source(data), "seed": s} for s in seeds}


def reproduce(
    data,
    classes,
    seeds,
    epochs,
    out,
    batch_size=64,
    command=None,
    verbose=1,
    log=print,
    milestones=(),
    report_only=False,
    method="gradcon",
    initialization="guarded",
    redraw_collapsed=None,
    checkpoint_every=1,
    protocol="one-class",
    challenges=None,
    levels=None,
):
    """Train and score every run of ``protocol`` not finished yet under ``out``; write the report.

    ``seeds`` is a list of seeds or a count (``3`` -> seeds 0, 1, 2); with ``gpnd`` they are the
    folds. ``milestones`` (one-class only): shorter budgets (epochs) to also evaluate within each
    run (see :func:`run_one`). ``report_only``: train nothing, write the report over the runs
    already finished. ``method``: the autoencoder of Table 1 (``experiment.METHODS``).
    ``initialization``: ``guarded`` (default), ``release`` or ``data``
    (``experiment.INITIALIZATIONS``). ``redraw_collapsed``: start a run again from new weights
    when its first epoch collapses (default: with ``release``). ``checkpoint_every``: select
    among the epochs the release writes (5), not every epoch. ``challenges``, ``levels``
    (conditions only): a subset of the paper's 8 types and 5 levels. Returns the summary.
    Runs go seed by seed, so that an interrupted command leaves whole seeds.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if milestones and protocol != "one-class":
        raise ValueError("milestones apply to the one-class protocol")
    if initialization not in experiment.INITIALIZATIONS:
        raise ValueError(f"initialization must be one of {experiment.INITIALIZATIONS}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if protocol == "gpnd" and not set(seeds) <= set(range(protocols.GPND_FOLDS)):
        raise ValueError(f"the GPND protocol has folds 0..{protocols.GPND_FOLDS - 1}")
    classes = list(classes)
    release = initialization == "release"
    settings = store.Settings(
        data=data,
        epochs=int(epochs),
        batch_size=int(batch_size),
        **experiment.method_arguments(method),
        method=method,
        output_bias_from_data=initialization == "data",
        redraw_collapsed=release if redraw_collapsed is None else bool(redraw_collapsed),
        checkpoint_every=int(checkpoint_every),
        bias_from_data_on_collapse=initialization == "guarded",
    )
    if settings.redraw_collapsed and initialization == "guarded":
        raise ValueError("redraw_collapsed applies to the release and data initialisations")
    dataset_name = data.partition(":")[0]
    if dataset_name == "tfds":
        dataset_name = data.partition(":")[2].split("/")[0]
    command = command or (
        f"gradcon reproduce --data {data} --classes {_ranges(classes)} "
        f"--seeds {len(seeds)} --epochs {epochs} --out {out}"
        + (f" --batch-size {batch_size}" if int(batch_size) != 64 else "")
        + (f" --milestones {_ranges(milestones)}" if milestones else "")
        + (f" --method {method}" if method != "gradcon" else "")
        + (" --release-init" if release else f" --init {initialization}" if initialization != "guarded" else "")
        + (" --no-redraw-collapsed" if release and not settings.redraw_collapsed else "")
        + (" --redraw-collapsed" if settings.redraw_collapsed and not release else "")
        + (f" --checkpoint-every {checkpoint_every}" if settings.checkpoint_every != 1 else "")
        + (f" --protocol {protocol}" if protocol != "one-class" else "")
    )
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)

    runs = _runs(protocol, data, classes, seeds)
    arrays = {"one-class": store.ONE_CLASS_ARRAYS, "localisation": store.LOCALISATION_ARRAYS}.get(
        protocol, ()
    )
    records, all_scores, todo = {}, {}, []
    ignore = store.REPORTED_AS_RECORDED if report_only else ()
    for key, run in runs.items():
        finished = store.load_finished_run(out, run, settings, milestones, ignore, arrays)
        if finished is None:
            todo.append(key)
        else:
            records[key], all_scores[key] = finished
    total = len(runs)
    log(f"{total - len(todo)} of {total} runs already finished in {out}; {len(todo)} to run.")
    if report_only:
        todo = []
        try:
            settings = store.recorded_settings(settings, list(records.values()), ignore)
        except ValueError as error:
            raise ValueError(f"{out}: {error}") from None

    loaded = None
    if todo and protocol in ("one-class", "localisation"):
        loaded = datasets.load(data)
    elif todo and protocol == "gpnd":
        splits = datasets.load(data)
        loaded = datasets.concatenate(splits["train"], splits["test"])
    elif todo:
        loaded = conditions.load(data, challenges, levels)
    # Record the checkout's state now, with the code loaded, not when each run ends, since the
    # checkout may change while the runs go on.
    code = _code_version()
    combined = "GradCon" if method == "gradcon" else report.COMBINED_LABEL
    run_times = []
    for done, key in enumerate(todo, start=1):
        run = runs[key]
        eta = ""
        if run_times:
            eta = f", about {np.mean(run_times) * (len(todo) - done + 1) / 60:.0f} min left"
        name = " ".join(f"{k.replace('inlier_', '')} {v}" for k, v in run.items())
        log(f"[{total - len(todo) + done}/{total}] {name}: {epochs} epochs{eta}")
        finished = store.load_finished_run(out, run, settings, milestones, (), arrays)
        if finished is not None:  # another process working on the same folder did it meanwhile
            records[key], all_scores[key] = finished
            log("  finished meanwhile by another process; skipped")
            continue
        started = time.perf_counter()
        if protocol == "one-class":
            record, scores = run_one(
                loaded, *key, settings, verbose=verbose, milestones=milestones, code=code
            )
        elif protocol == "gpnd":
            record, scores = run_gpnd(loaded, *key, settings, verbose=verbose, code=code)
        elif protocol == "localisation":
            record, scores = run_localisation(loaded, *key, settings, verbose=verbose, code=code)
        else:
            record, scores = run_conditions(
                loaded, key, settings, verbose=verbose, code=code, names=challenges, levels=levels
            )
        store.write_run(out, run, record, scores)
        records[key], all_scores[key] = record, scores
        run_times.append(time.perf_counter() - started)
        if protocol != "one-class":
            log(f"  best epoch {record['best_epoch']}; {run_times[-1]:.0f} s")
            _write_protocol_report(out, protocol, records, classes, seeds, settings, command,
                                   dataset_name)
            continue
        log(
            f"  AUROC {combined} {record['gradcon']['auroc']:.3f}, recon {record['recon']['auroc']:.3f}, "
            f"grad {record['grad']['auroc']:.3f}; best epoch {record['best_epoch']}; "
            f"{run_times[-1]:.0f} s"
        )
        # Numbers after every run (cheap); the figures every 5 runs and at the end.
        write_report(
            out,
            records,
            all_scores,
            classes,
            seeds,
            settings,
            command,
            dataset_name,
            figures=done % 5 == 0 and done < len(todo),
            log=log,
        )

    if protocol != "one-class":
        result = _write_protocol_report(
            out, protocol, records, classes, seeds, settings, command, dataset_name
        )
        log(f"report in {out}")
        return result
    result = write_report(
        out, records, all_scores, classes, seeds, settings, command, dataset_name, log=log
    )
    if result["mean_auroc"] is not None:
        log(
            f"mean AUROC {combined} {report.format_mean(result['mean_auroc'], result['std_auroc'])}, "
            f"recon {report.format_mean(result['recon']['mean_auroc'], result['recon']['std_auroc'])}, "
            f"grad {report.format_mean(result['grad']['mean_auroc'], result['grad']['std_auroc'])}; "
            f"report in {out}"
        )
    return result
