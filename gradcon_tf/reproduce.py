"""``gradcon reproduce``: the paper's one-class experiment, one model per (inlier class, seed).

Each run trains GradCon on one inlier class with one seed (the seed draws the validation hold-out
and the test outliers of the protocol and initialises the network), keeps the epoch with the best
validation loss, scores the test split and writes two files under ``OUT/runs/``:

* ``class{c}-seed{s}.npz``: the per-sample test scores (score, recon, grad_loss, layer cosines)
  and the labels, so that every number and plot of the report can be recomputed;
* ``class{c}-seed{s}.json``: the run's AUROCs, overlaps, epochs and wall time. It is written
  last, so it marks the run as finished.

Both are written to a temporary name and renamed (``os.replace``), so a crash never leaves a
half-written file under the final name. On restart, a run is skipped only when its JSON parses,
says ``"complete": true``, was made with the same settings, and its ``.npz`` loads; anything else
(a truncated file, other settings) is run again. Before each run the folder is checked again,
so several processes may share one folder (e.g. ``--classes 0-4`` and ``--classes 5-9``); rerun
the full command at the end to write the report over all runs.

After every run the report is rewritten from the finished runs: ``summary.json`` (every number),
``README.md`` (tables with the paper's numbers side by side) and PNG figures (ROC curves and the
score histograms of Fig. 5 with their overlap percentage).
"""

import dataclasses
import importlib.util
import io
import json
import os
import platform
import time
import zipfile

import numpy as np

from gradcon_tf import files, metrics

#: Score kinds of the report: key in the summary -> (key in ``GradCon.score()``, label).
SCORES = {
    "gradcon": ("score", "GradCon"),
    "recon": ("recon", "recon only"),
    "grad": ("grad_loss", "grad only"),
    "latent": ("latent", "latent only"),  # only models with a latent loss (the VAEs)
}

#: The anomaly score of Eq. 6 (GradCon's score), whichever autoencoder it is computed on.
COMBINED_LABEL = "recon + beta * grad"

#: Names of the autoencoders of Table 1 (``experiment.METHODS``) in the report.
METHOD_LABELS = {"gradcon": "GradCon", "cae": "CAE", "vae": "VAE", "vae-grad": "VAE + Grad"}


def score_kinds(present):
    """The entries of SCORES that ``present`` (run record, scores, summary) has."""
    return {name: v for name, v in SCORES.items() if name != "latent" or "latent" in present}

#: Published numbers to show side by side, by dataset name (the part of the spec before ':').
REFERENCES = {
    "mnist": {
        "paper": {
            "label": "paper (Table 4)",
            "per_class": [0.995, 0.999, 0.952, 0.973, 0.969, 0.977, 0.994, 0.979, 0.919, 0.973],
            "mean": 0.973,
        },
        "release_e20": {
            "label": "release, 20 epochs",
            "epochs": 20,
            "per_class": [0.992, 0.955, 0.931, 0.944, 0.937, 0.939, 0.981, 0.938, 0.915, 0.948],
            "mean": 0.948,
            "recon_mean": 0.953,
            "grad_mean": 0.866,
            "note": "the authors' release run for 20 epochs on this protocol, one seed, "
            "measured 2026-11-29 (issue 3)",
        },
    },
    "cifar10": {
        "paper": {
            "label": "paper (Table 3)",
            "per_class": [0.760, 0.598, 0.648, 0.586, 0.733, 0.603, 0.684, 0.567, 0.784, 0.678],
            "mean": 0.664,
        },
    },
}

RUN_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that makes two runs comparable; a finished run is reused only if it matches."""

    data: str
    epochs: int
    batch_size: int
    alpha: float
    beta: float
    validation_fraction: float = 0.1
    method: str = "gradcon"  # experiment.METHODS; records made before it existed are GradCon
    #: The class of GradCon.compile()'s default optimizer; records made before this field existed
    #: trained with Keras' Adam.
    optimizer: str = "CorrectedEpsilonAdam"
    #: False: the release's initialisation of the output bias (``--release-init``).
    output_bias_from_data: bool = True
    #: Start again from new weights when the first epoch leaves a blank reconstruction
    #: (``experiment.train_one_class``); ``--redraw-collapsed``, on by default with
    #: ``--release-init``.
    redraw_collapsed: bool = False
    #: Model selection among the epochs 1, 1 + k, ... and the last, as the release writes its
    #: checkpoints (``--checkpoint-every 5``); 1: every epoch (``callbacks.KeepBestWeights``).
    checkpoint_every: int = 1
    #: Train again from the same weights with the output bias from data when the first epoch
    #: leaves a blank reconstruction (``experiment.train_one_class(initialization="guarded")``).
    bias_from_data_on_collapse: bool = False
    #: How the epoch's losses average the batches (model selection reads val_loss).
    loss_average: str = "batch-size weighted"

    @property
    def initialization(self):
        """The ``experiment.INITIALIZATIONS`` entry these settings train with."""
        if self.bias_from_data_on_collapse:
            return "guarded"
        return "data" if self.output_bias_from_data else "release"

    def as_dict(self):
        return dataclasses.asdict(self)


#: Settings that records made before the field existed lack, with the value they were made with.
LEGACY_SETTINGS = {
    "method": "gradcon",
    "optimizer": "Adam",
    "output_bias_from_data": True,
    "redraw_collapsed": False,
    "checkpoint_every": 1,
    "bias_from_data_on_collapse": False,
    "loss_average": "per batch",
}


# ---------------------------------------------------------------------- files


def write_json(path, value):
    files.write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def _write_npz(path, arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    files.write_bytes(path, buffer.getvalue())


def run_paths(out, inlier, seed):
    stem = os.path.join(out, "runs", f"class{inlier}-seed{seed}")
    return stem + ".json", stem + ".npz"


def load_finished_run(out, inlier, seed, settings, milestones=(), ignore=()):
    """The finished run's record and scores, or None when it must be (re)done.

    A run asked for ``milestones`` it did not record is redone as well. Settings named in
    ``ignore`` may differ.
    """
    json_path, npz_path = run_paths(out, inlier, seed)
    try:
        with open(json_path) as handle:
            record = json.load(handle)
        if not (
            isinstance(record, dict)
            and record.get("complete") is True
            and record.get("format") == RUN_FORMAT
            and _without({**LEGACY_SETTINGS, **record.get("settings", {})}, ignore)
            == _without(settings.as_dict(), ignore)
            and record.get("inlier_class") == inlier
            and record.get("seed") == seed
            and {str(m) for m in milestones if m < settings.epochs}
            <= set(record.get("milestones", {}))
        ):
            return None
        with np.load(npz_path, allow_pickle=False) as stored:
            scores = {key: stored[key] for key in stored.files}
        if not {"is_anomaly", "score", "recon", "grad_loss", "layer_cosines"} <= set(scores):
            return None
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        zipfile.BadZipFile,
    ):  # missing, truncated, garbled
        return None
    return record, scores


def _without(settings, keys):
    return {k: v for k, v in settings.items() if k not in keys}


#: Settings that do not change what a finished run's record says, only how it was trained: a
#: report over finished runs (``report_only``) takes them from the records.
REPORTED_AS_RECORDED = ("loss_average",)


# ---------------------------------------------------------------------- one run


def _run_record(scores, labels):
    """AUROC and Fig. 5 overlap of each score kind and each decoder layer's cosine."""
    record = {}
    for name, (key, _) in score_kinds(scores).items():
        record[name] = {
            "auroc": metrics.auroc(scores[key], labels),
            "overlap": metrics.histogram_overlap(scores[key], labels),
        }
    # A low cosine means anomalous, so -cosine is the per-layer score (Table 2).
    record["layers"] = [
        {
            "auroc": metrics.auroc(-scores["layer_cosines"][:, i], labels),
            "overlap": metrics.histogram_overlap(-scores["layer_cosines"][:, i], labels),
        }
        for i in range(scores["layer_cosines"].shape[1])
    ]
    return record


def _milestone_callback(split, milestones, checkpoint_every=1):
    """A callback that, at each epoch in ``milestones``, scores the test split with the weights
    model selection would keep if training ended there (the same rule as the final selection,
    :class:`~gradcon_tf.callbacks.KeepBestWeights`): the result a shorter budget would have
    given, from the same training run."""
    from gradcon_tf.callbacks import KeepBestWeights, is_blank

    class Milestones(KeepBestWeights):
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
                blank = is_blank(self.model, split.validation)
                self.model.set_weights(current)
                record = _run_record(scores, scores["is_anomaly"])
                self.results[str(epoch + 1)] = {
                    **{name: record[name] for name in score_kinds(record)},
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


def run_one(splits, inlier, seed, settings, verbose=1, milestones=(), code=None):
    """Train and score one (inlier class, seed); returns (record, per-sample scores).

    ``milestones``: epochs (< settings.epochs) at which to also record the test AUROCs of the
    best-validation-loss weights so far, i.e. what a budget of that many epochs would give.
    ``code``: the code version to record (default: the checkout's state now).
    """
    import keras

    from gradcon_tf import callbacks as callbacks_module
    from gradcon_tf import experiment, protocols

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
    blank = callbacks_module.is_blank(model, split.validation)  # the selected weights
    started = time.perf_counter()
    scores = _test_scores(model, split)
    score_seconds = time.perf_counter() - started
    labels = scores["is_anomaly"]
    record = {
        "format": RUN_FORMAT,
        "inlier_class": inlier,
        "seed": seed,
        "settings": settings.as_dict(),
        "sizes": {
            "train": int(len(split.train)),
            "validation": int(len(split.validation)),
            "test_inliers": int(np.sum(~labels)),
            "test_outliers": int(np.sum(labels)),
        },
        **_run_record(scores, labels),
        "best_epoch": model.selected_epoch,
        "blank": blank,
        "val_loss": val_losses,
        "train_seconds": round(train_seconds, 2),
        "score_seconds": round(score_seconds, 2),
        "code": code,
        "complete": True,
    }
    record["initialization"] = model.initialization  # which draw trained, which collapsed
    if milestones:
        record["milestones"] = callbacks[0].results
    keras.backend.clear_session()
    return record, scores


def _code_version():
    """The git commit of this checkout and whether gradcon_tf/ had uncommitted changes."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


# ---------------------------------------------------------------------- the report


def _mean_std(values):
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
    mean, std = _mean_std(list(seed_means.values()))
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


def summarize(records, classes, seeds, settings, command, dataset_name):
    """The ``summary.json`` dict from the finished runs' records {(class, seed): record}."""
    from gradcon_tf.model import ADAM_EPSILON, DEFAULT_LEARNING_RATE

    gradcon = _aggregate(records, classes, seeds, lambda r: r["gradcon"]["auroc"])
    n_layers = max((len(r["layers"]) for r in records.values()), default=0)
    missing = [f"class{c}-seed{s}" for c in classes for s in seeds if (c, s) not in records]
    kinds = score_kinds(next(iter(records.values()), {}))
    summary = {
        "dataset": settings.data,
        "method": settings.method,
        "protocol": "one-class (OCGAN/paper): inlier class of the train split, 10% held out for "
        "validation; test = all inlier test images + as many outliers drawn at random from the "
        "other classes; the seed draws the hold-out and the outliers and initialises the network",
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
        "hyperparameters": {
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
        },
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
        "train_seconds_total": round(sum(r["train_seconds"] for r in records.values()), 1),
        "run_seconds_total": round(
            sum(r["train_seconds"] + r["score_seconds"] for r in records.values()), 1
        ),
        "environment": _environment(),
        "reference": REFERENCES.get(dataset_name, {}) if settings.method == "gradcon" else {},
    }
    if "latent" in kinds:
        summary["latent"] = _aggregate(records, classes, seeds, lambda r: r["latent"]["auroc"])
    return summary


def _environment():
    import keras
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def _fmt(mean, std=None):
    if mean is None:
        return "-"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def _percent(fraction):
    return "-" if fraction is None else f"{100 * fraction:.1f}"


def _figures_line(figures):
    """The report's line naming the figure files in ``figures`` (those that were written)."""
    parts = []
    if "roc.png" in figures:
        parts.append("`roc.png` (ROC curves, first seed)")
    histograms = [f"`{name}`" for name in figures if name.startswith("hist_")]
    if histograms:
        parts.append(", ".join(histograms) + " (test score histograms, first seed, with the overlap)")
    return ["Figures: " + ", ".join(parts) + ".", ""] if parts else []


def markdown_report(summary, figures=()):
    """The Markdown report: per-class and mean AUROC next to the published numbers, and the
    ``figures`` (file names in the folder) that go with it."""
    reference = summary["reference"]
    paper = reference.get("paper")
    release = reference.get("release_e20")
    classes = summary["classes"]
    method = METHOD_LABELS.get(summary.get("method", "gradcon"), summary.get("method"))
    parts = [summary, summary["recon"], summary["grad"]] + (
        [summary["latent"]] if "latent" in summary else []
    )
    lines = [
        f"# {method} on `{summary['dataset']}`: {summary['epochs']} epochs per class, "
        f"seeds {summary['seeds']}",
        "",
        "Regenerate with:",
        "",
        "```",
        summary["command"],
        "```",
        "",
    ]
    if not summary["complete"]:
        lines += [
            f"**Partial**: {len(summary['missing_runs'])} runs not finished yet "
            f"({', '.join(summary['missing_runs'])}).",
            "",
        ]
    lines += [
        "AUROC on the test split, mean ± std over seeds (per class: over the seeds of that "
        "class; mean: of the per-seed class means). Higher is better.",
        "",
    ]
    header = ["class"]
    if paper:
        header.append(paper["label"])
    if release:
        header.append(release["label"])
    header += [f"{COMBINED_LABEL} (ours)", "recon only (ours)", "grad only (ours)"]
    header += ["latent only (ours)"] if "latent" in summary else []
    header += ["best epochs"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in classes:
        row = [str(c)]
        if paper:
            row.append(f"{paper['per_class'][c]:.3f}" if c < len(paper["per_class"]) else "-")
        if release:
            row.append(f"{release['per_class'][c]:.3f}" if c < len(release["per_class"]) else "-")
        for part in parts:
            row.append(_fmt(*_mean_std(part["per_class_auroc"][str(c)])))
        row.append(
            ", ".join(
                str(summary["best_epochs"][f"class{c}-seed{s}"])
                for s in summary["seeds"]
                if f"class{c}-seed{s}" in summary["best_epochs"]
            )
            or "-"
        )
        lines.append("| " + " | ".join(row) + " |")
    row = ["**mean**"]
    if paper:
        row.append(f"{paper['mean']:.3f}")
    if release:
        row.append(
            f"{release['mean']:.3f} (recon {release['recon_mean']:.3f}, "
            f"grad {release['grad_mean']:.3f})"
        )
    for part in parts:
        row.append(f"**{_fmt(part['mean_auroc'], part['std_auroc'])}**")
    row.append("")
    lines.append("| " + " | ".join(row) + " |")
    counted = list(summary["per_seed_mean_auroc"])
    lines += [
        "",
        f"Seeds with every class finished (the mean row is over these): "
        f"{', '.join(counted) if counted else 'none yet'}; per-seed means of recon + beta * grad: "
        + ", ".join(f"seed {k} {v:.3f}" for k, v in summary["per_seed_mean_auroc"].items())
        + ".",
    ]
    if release:
        lines += ["", f"The release column: {release['note']}."]

    if summary["layers"]:
        lines += [
            "",
            "## Per decoder layer (Table 2): AUROC of -cos of that layer's gradient alone",
            "",
            "| class | "
            + " | ".join(f"layer {i + 1}" for i in range(len(summary["layers"])))
            + " |",
            "|---|" + "---|" * len(summary["layers"]),
        ]
        for c in classes:
            lines.append(
                f"| {c} | "
                + " | ".join(
                    _fmt(*_mean_std(layer["per_class_auroc"][str(c)]))
                    for layer in summary["layers"]
                )
                + " |"
            )
        lines.append(
            "| **mean** | "
            + " | ".join(
                _fmt(layer["mean_auroc"], layer["std_auroc"]) for layer in summary["layers"]
            )
            + " |"
        )

    curve = summary.get("epoch_curve") or {}
    if curve:
        budgets = list(curve)
        lines += [
            "",
            "## AUROC against the epoch budget (same runs; at each budget, the weights of the "
            "lowest validation loss up to that epoch)",
            "",
            "| epochs | " + " | ".join(label for _, label in score_kinds(curve[budgets[0]]).values())
            + " |",
            "|---|" + "---|" * len(score_kinds(curve[budgets[0]])),
        ]
        for budget in budgets:
            lines.append(
                f"| {budget} | "
                + " | ".join(
                    _fmt(curve[budget][name]["mean_auroc"], curve[budget][name]["std_auroc"])
                    for name in score_kinds(curve[budget])
                )
                + " |"
            )
        lines += [
            "",
            "Per class, GradCon (grad only) at each budget, mean over seeds:",
            "",
            "| class | " + " | ".join(f"{b} epochs" for b in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        for c in classes:
            lines.append(
                f"| {c} | "
                + " | ".join(
                    f"{_fmt(_mean_std(curve[b]['gradcon']['per_class_auroc'][str(c)])[0])} "
                    f"({_fmt(_mean_std(curve[b]['grad']['per_class_auroc'][str(c)])[0])})"
                    for b in budgets
                )
                + " |"
            )

    lines += [
        "",
        "## Histogram overlap (Fig. 5), % of test samples, mean over seeds",
        "",
        "| class | " + " | ".join(label for _, label in score_kinds(summary).values()) + " |",
        "|---|" + "---|" * len(score_kinds(summary)),
    ]
    for c in classes:
        lines.append(
            f"| {c} | "
            + " | ".join(
                _percent(_mean_std(summary["overlap"][name][str(c)])[0])
                for name in score_kinds(summary)
            )
            + " |"
        )
    lines += [
        "",
        summary["overlap_note"] + ".",
        "",
        *_figures_line(figures),
        f"Hyperparameters (the paper's, same for every class): {summary['hyperparameters']}.",
        "",
    ]
    if summary["hyperparameters"].get("redraw_collapsed"):
        redrawn = summary["redrawn_runs"]
        lines += [
            f"Collapsed starts redrawn: {len(redrawn)} of {len(summary['best_epochs'])} runs"
            + (
                " (" + "; ".join(
                    f"{run}: trained draw {info['draw']}" for run, info in redrawn.items()
                ) + ")"
                if redrawn else ""
            )
            + ".",
            "",
        ]
    lines += [
        f"Compute: {summary['run_seconds_total'] / 60:.1f} min of training and scoring in total "
        f"({summary['environment']['cpu_count']} CPU cores, {summary['environment']['gpus']} GPUs, "
        f"TensorFlow {summary['environment']['tensorflow']}, Keras {summary['environment']['keras']}).",
        "",
    ]
    return "\n".join(lines)


def _class_curves(records, epochs):
    """{class: {budget: (mean GradCon AUROC, mean grad AUROC)}} over seeds, for the figure."""
    per_class = {}
    for (c, _), record in records.items():
        points = dict(record.get("milestones", {}))
        if not points:
            continue
        points[str(epochs)] = record
        for budget, values in points.items():
            per_class.setdefault(c, {}).setdefault(int(budget), []).append(
                (values["gradcon"]["auroc"], values["grad"]["auroc"])
            )
    return {
        c: {b: tuple(np.mean(v, axis=0)) for b, v in points.items()}
        for c, points in per_class.items()
    }


def write_figures(out, all_scores, classes, seeds, records=None, epochs=None):
    """ROC curves and score histograms (first finished seed of each class) as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    shown = {}
    for c in classes:
        for s in seeds:
            if (c, s) in all_scores:
                shown[c] = (s, all_scores[(c, s)])
                break
    if not shown:
        return []
    columns = min(5, len(shown))
    rows = -(-len(shown) // columns)
    written = []

    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for axis, (c, (s, scores)) in zip(axes.flat, shown.items()):
        for name, (key, label) in score_kinds(scores).items():
            fpr, tpr, _ = roc_curve(scores["is_anomaly"], scores[key])
            auc = metrics.auroc(scores[key], scores["is_anomaly"])
            axis.plot(fpr, tpr, label=f"{label} {auc:.3f}")
        axis.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
        axis.set_title(f"class {c} (seed {s})")
        axis.set_xlabel("false positive rate")
        axis.set_ylabel("true positive rate")
        axis.legend(fontsize=7, loc="lower right")
    for axis in list(axes.flat)[len(shown) :]:
        axis.axis("off")
    figure.tight_layout()
    path = os.path.join(out, "roc.png")
    _save_figure(figure, path)
    plt.close(figure)
    written.append(path)

    curve = _class_curves(records or {}, epochs)
    if curve:
        figure, axis = plt.subplots(figsize=(6, 4))
        for c, points in sorted(curve.items()):
            budgets = sorted(points)
            (line,) = axis.plot(
                budgets, [points[b][0] for b in budgets], marker="o", label=f"class {c}"
            )
            axis.plot(
                budgets,
                [points[b][1] for b in budgets],
                marker="x",
                linestyle="--",
                color=line.get_color(),
            )
        axis.set_xlabel("epoch budget")
        axis.set_ylabel("test AUROC (solid GradCon, dashed grad only)")
        axis.legend(fontsize=7, loc="lower right")
        figure.tight_layout()
        path = os.path.join(out, "auroc_vs_epochs.png")
        _save_figure(figure, path)
        plt.close(figure)
        written.append(path)

    for name, (key, label) in score_kinds(next(iter(shown.values()))[1]).items():
        figure, axes = plt.subplots(
            rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False
        )
        for axis, (c, (s, scores)) in zip(axes.flat, shown.items()):
            values, labels = np.asarray(scores[key], np.float64), scores["is_anomaly"]
            low, high = np.percentile(values, [1.0, 99.0])
            edges = np.linspace(low, high, metrics.OVERLAP_BINS + 1)
            clipped = np.clip(values, low, high)
            axis.hist(clipped[~labels], edges, alpha=0.6, label="inliers")
            axis.hist(clipped[labels], edges, alpha=0.6, label="outliers")
            overlap = metrics.histogram_overlap(values, labels)
            axis.set_title(f"class {c}: overlap {100 * overlap:.1f}%", fontsize=9)
            axis.set_xlabel(label, fontsize=8)
            axis.legend(fontsize=7, loc="upper right")
        for axis in list(axes.flat)[len(shown) :]:
            axis.axis("off")
        figure.tight_layout()
        path = os.path.join(out, f"hist_{name}.png")
        _save_figure(figure, path)
        plt.close(figure)
        written.append(path)
    return written


def _save_figure(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    files.write_bytes(path, buffer.getvalue())


def write_report(
    out, records, all_scores, classes, seeds, settings, command, dataset_name, figures=True,
    log=print,
):
    summary = summarize(records, classes, seeds, settings, command, dataset_name)
    write_json(os.path.join(out, "summary.json"), summary)
    if figures and importlib.util.find_spec("matplotlib") is None:
        if not _FIGURES_SKIPPED:
            log("figures skipped: matplotlib is not installed (pip install 'gradcon-tf[data]')")
            _FIGURES_SKIPPED.append(True)
    elif figures:
        write_figures(out, all_scores, classes, seeds, records, settings.epochs)
    names = ["roc.png"] + [f"hist_{name}.png" for name in score_kinds(summary)]
    present = [name for name in names if os.path.exists(os.path.join(out, name))]
    files.write_text(os.path.join(out, "README.md"), markdown_report(summary, present))
    return summary


_FIGURES_SKIPPED = []  # the notice is given once per process


def compare_methods(folders):
    """Table 1 and the Fig. 5 overlaps as Markdown, from ``gradcon reproduce`` result folders
    (one per autoencoder, e.g. ``--method cae``, ``gradcon``, ``vae``, ``vae-grad``)."""
    summaries = []
    for folder in folders:
        with open(os.path.join(folder, "summary.json")) as handle:
            summaries.append((folder, json.load(handle)))
    classes = sorted({c for _, summary in summaries for c in summary["classes"]})
    lines = [
        "# Baselines (Table 1): AUROC of each score of each autoencoder",
        "",
        "Mean over seeds per class; the last column is the mean over classes (± std over seeds "
        "when there are several). Fig. 5 overlap: % of test samples in the overlapped region of "
        "the inlier and outlier histograms, mean over classes and seeds. Higher AUROC and lower "
        "overlap are better.",
        "",
        "| model | score | " + " | ".join(str(c) for c in classes) + " | mean | overlap % |",
        "|---|---|" + "---|" * (len(classes) + 2),
    ]
    for folder, summary in summaries:
        method = METHOD_LABELS.get(summary.get("method", "gradcon"), summary.get("method"))
        parts = {"gradcon": summary, "recon": summary["recon"], "grad": summary["grad"]}
        if "latent" in summary:
            parts["latent"] = summary["latent"]
        for name, part in parts.items():
            label = COMBINED_LABEL if name == "gradcon" else SCORES[name][1].replace(" only", "")
            cells = [
                _fmt(_mean_std(part["per_class_auroc"].get(str(c), []))[0]) for c in classes
            ]
            overlaps = [v for values in summary["overlap"][name].values() for v in values]
            lines.append(
                f"| {method} | {label} | "
                + " | ".join(cells)
                + f" | **{_fmt(part['mean_auroc'], part['std_auroc'])}** | "
                + f"{_percent(float(np.mean(overlaps)) if overlaps else None)} |"
            )
    lines += ["", "From:", ""]
    lines += [
        f"- `{folder}`: {summary['epochs']} epochs, seeds {summary['seeds']}; "
        f"`{summary['command']}`"
        for folder, summary in summaries
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- the command


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
):
    """Train and score every (class, seed) not finished yet under ``out``; write the report.

    ``seeds`` is a list of seeds or a count (``3`` -> seeds 0, 1, 2). ``milestones``: shorter
    budgets (epochs) to also evaluate within each run (see :func:`run_one`). ``report_only``:
    train nothing, write the report over the runs already finished. ``method``: the autoencoder
    of Table 1 (``experiment.METHODS``). ``initialization``: ``guarded`` (default), ``release``
    or ``data`` (``experiment.INITIALIZATIONS``). ``redraw_collapsed``: start a run again from
    new weights when its first epoch collapses (default: with ``release``).
    ``checkpoint_every``: select among the epochs the release writes (5), not every epoch.
    Returns the summary.
    Runs go seed by seed, so that an interrupted command leaves whole seeds.
    """
    from gradcon_tf import data as datasets
    from gradcon_tf import experiment

    if initialization not in experiment.INITIALIZATIONS:
        raise ValueError(f"initialization must be one of {experiment.INITIALIZATIONS}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    classes = list(classes)
    release = initialization == "release"
    settings = Settings(
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
    )
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)

    records, all_scores, todo = {}, {}, []
    ignore = REPORTED_AS_RECORDED if report_only else ()
    for s in seeds:
        for c in classes:
            finished = load_finished_run(out, c, s, settings, milestones, ignore)
            if finished is None:
                todo.append((c, s))
            else:
                records[(c, s)], all_scores[(c, s)] = finished
    total = len(classes) * len(seeds)
    log(f"{total - len(todo)} of {total} runs already finished in {out}; {len(todo)} to run.")
    if report_only:
        todo = []
        recorded = {
            key: {str({**LEGACY_SETTINGS, **r["settings"]}[key]) for r in records.values()}
            for key in ignore
        }
        for key, values in recorded.items():
            if len(values) > 1:
                raise ValueError(f"{out}: the finished runs differ in {key} ({sorted(values)})")
            if values:
                first = next(iter(records.values()))["settings"]
                settings = dataclasses.replace(settings, **{key: {**LEGACY_SETTINGS, **first}[key]})

    splits = datasets.load(data) if todo else None
    # The code is loaded now (imports above and in run_one); record the checkout's state at this
    # moment, not when each run ends, since the checkout may change while the runs go on.
    from gradcon_tf import experiment, model  # noqa: F401

    code = _code_version()
    combined = "GradCon" if method == "gradcon" else COMBINED_LABEL
    run_times = []
    for done, (c, s) in enumerate(todo, start=1):
        eta = ""
        if run_times:
            eta = f", about {np.mean(run_times) * (len(todo) - done + 1) / 60:.0f} min left"
        log(f"[{total - len(todo) + done}/{total}] class {c} seed {s}: {epochs} epochs{eta}")
        finished = load_finished_run(out, c, s, settings, milestones)
        if finished is not None:  # another process working on the same folder did it meanwhile
            records[(c, s)], all_scores[(c, s)] = finished
            log("  finished meanwhile by another process; skipped")
            continue
        started = time.perf_counter()
        record, scores = run_one(
            splits, c, s, settings, verbose=verbose, milestones=milestones, code=code
        )
        json_path, npz_path = run_paths(out, c, s)
        _write_npz(npz_path, scores)  # scores first: the JSON marks the run finished
        write_json(json_path, record)
        records[(c, s)], all_scores[(c, s)] = record, scores
        run_times.append(time.perf_counter() - started)
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
        )

    summary = write_report(
        out, records, all_scores, classes, seeds, settings, command, dataset_name
    )
    if summary["mean_auroc"] is not None:
        log(
            f"mean AUROC {combined} {_fmt(summary['mean_auroc'], summary['std_auroc'])}, "
            f"recon {_fmt(summary['recon']['mean_auroc'], summary['recon']['std_auroc'])}, "
            f"grad {_fmt(summary['grad']['mean_auroc'], summary['grad']['std_auroc'])}; "
            f"report in {out}"
        )
    return summary
