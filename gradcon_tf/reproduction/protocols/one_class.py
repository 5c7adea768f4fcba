"""The one-class protocol (MNIST, CIFAR-10; Table 1, Table 2, Fig. 5): one model per (inlier
class, seed), AUROC of each score on the test split (:func:`gradcon_tf.splits.one_class_split`),
optionally at shorter epoch budgets within the same run (milestones)."""

import os

import numpy as np

from gradcon_tf import callbacks, collapse, evaluation, metrics
from gradcon_tf.evaluation import score_kinds
from gradcon_tf.reproduction import figures as figures_module
from gradcon_tf.reproduction import provenance, report, store, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import COMBINED_LABEL, format_mean, format_percent, table
from gradcon_tf.reproduction.summary import aggregate, mean_std

DESCRIPTION = (
    "one-class (OCGAN/paper): inlier class of the train split, 10% held out for "
    "validation; test = all inlier test images + as many outliers drawn at random from the "
    "other classes; the seed draws the hold-out and the outliers and initialises the network"
)


@register
class OneClass(base.PerClassAndSeed):
    """One model per (inlier class, seed); ``milestones``: shorter budgets (epochs) at which each
    run also records the test AUROCs of the weights selected so far."""

    name = "one-class"
    description = DESCRIPTION
    arrays = store.ONE_CLASS_ARRAYS

    def __init__(self, request, milestones=(), **options):
        super().__init__(request, **options)
        epochs = request.settings.epochs
        self.milestones = sorted({int(m) for m in milestones if 0 < int(m) < epochs})
        self._told_no_figures = False

    def run(self, loaded, key, train):
        split, seed = self.split(loaded, key), key[1]
        every = self.request.settings.checkpoint_every
        milestones = [_milestone_callback(split, self.milestones, every)] if self.milestones else []
        trained = train(split, seed, callbacks=milestones)
        scores = training.stored_scores(trained.model, split)
        labels = scores["is_anomaly"]
        sizes = {
            "train": int(len(split.train)),
            "validation": int(len(split.validation)),
            "test_inliers": int(np.sum(~labels)),
            "test_outliers": int(np.sum(labels)),
        }
        results = evaluation.evaluate(scores, labels)
        if milestones:
            results["milestones"] = milestones[0].results
        return training.Outcome(trained, sizes, results, scores)

    def summarize(self, records, settings):
        request = self.request
        return summarize(
            records, request.classes, request.seeds, settings, request.command,
            request.dataset_name,
        )

    def report(self, summary, figures=()):
        return one_class_report(summary, figures)

    def write_figures(self, out, summary, records, scores, write, log):
        names = ["roc.png"] + [f"hist_{name}.png" for name in score_kinds(summary)]
        if not write:
            return [name for name in names if os.path.exists(os.path.join(out, name))]
        if not figures_module.available():
            if not self._told_no_figures:
                log("figures skipped: matplotlib is not installed (pip install 'gradcon-tf[data]')")
                self._told_no_figures = True
            return []
        written = figures_module.write_figures(
            out, scores, self.request.classes, self.request.seeds, records, summary["epochs"]
        )
        return [name for name in names if os.path.join(out, name) in written]

    def run_line(self, record):
        return (
            f"AUROC {_combined(record)} {record['gradcon']['auroc']:.3f}, "
            f"recon {record['recon']['auroc']:.3f}, grad {record['grad']['auroc']:.3f}; "
            f"best epoch {record['best_epoch']}"
        )

    def headline(self, summary):
        return {"metric": "image AUROC of the model's score, mean over classes and seeds",
                "value": summary["mean_auroc"]}

    def result_line(self, summary, out):
        if summary["mean_auroc"] is None:
            return None
        return (
            f"mean AUROC {_combined(summary)} "
            f"{format_mean(summary['mean_auroc'], summary['std_auroc'])}, "
            f"recon {format_mean(summary['recon']['mean_auroc'], summary['recon']['std_auroc'])}, "
            f"grad {format_mean(summary['grad']['mean_auroc'], summary['grad']['std_auroc'])}; "
            f"report in {out}"
        )


def _combined(record):
    """How the log names the score of Eq. 6 for the record's (or summary's) method."""
    method = record.get("method", record.get("settings", {}).get("method", "gradcon"))
    return "GradCon" if method == "gradcon" else COMBINED_LABEL


def _milestone_callback(split, milestones, checkpoint_every=1):
    """A callback that, at each epoch in ``milestones``, scores the test split with the weights
    model selection would keep if training ended there (the same rule as the final selection,
    :class:`~gradcon_tf.callbacks.KeepBestWeights`): the result a shorter budget would have
    given, from the same training run."""

    class Milestones(callbacks.KeepBestWeights):
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
                scores = training.stored_scores(self.model, split)
                blank = collapse.is_dead(self.model, split.validation)
                self.model.set_weights(current)
                record = evaluation.evaluate(scores, scores["is_anomaly"])
                self.results[str(epoch + 1)] = {
                    **{name: record[name] for name in score_kinds(record)},
                    "layers": record["layers"],
                    "best_epoch": best_epoch,
                    "blank": blank,
                }

    return Milestones(every=checkpoint_every, restore=False)


# ---------------------------------------------------------------------- summary.json


def summarize(records, classes, seeds, settings, command, dataset_name):
    """The one-class ``summary.json`` dict from the records {(class, seed): record}."""
    gradcon = aggregate(records, classes, seeds, lambda r: r["gradcon"]["auroc"])
    n_layers = max((len(r["layers"]) for r in records.values()), default=0)
    missing = [f"class{c}-seed{s}" for c in classes for s in seeds if (c, s) not in records]
    kinds = score_kinds(next(iter(records.values()), {}))
    runs = [(c, s) for c in classes for s in seeds if (c, s) in records]
    summary = {
        "dataset": settings.data,
        "method": settings.method,
        "protocol": DESCRIPTION,
        "epochs": settings.epochs,
        "seeds": list(seeds),
        "classes": list(classes),
        "command": command,
        "complete": not missing,
        "missing_runs": missing,
        **gradcon,  # mean_auroc, std_auroc, per_seed_mean_auroc, per_class_auroc
        "std_note": "std_auroc is the sample standard deviation (ddof=1) over seeds of the "
        "per-seed means over classes; only seeds with every class finished count; null when "
        "fewer than two seeds count",
        "recon": aggregate(records, classes, seeds, lambda r: r["recon"]["auroc"]),
        "grad": aggregate(records, classes, seeds, lambda r: r["grad"]["auroc"]),
        "layers": [
            aggregate(records, classes, seeds, lambda r, i=i: r["layers"][i]["auroc"])
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
        "hyperparameters": summaries.hyperparameters(settings),
        "epoch_curve": _epoch_curve(records, classes, seeds, settings.epochs),
        "best_epochs": {f"class{c}-seed{s}": records[(c, s)]["best_epoch"] for c, s in runs},
        # Runs whose first draw(s) of initial weights collapsed and were drawn again.
        "redrawn_runs": {
            f"class{c}-seed{s}": records[(c, s)]["initialization"]
            for c, s in runs
            if records[(c, s)].get("initialization", {}).get("collapsed")
        },
        **summaries.seconds(records),
        "environment": provenance.environment(),
        "reference": summaries.references()["one-class"].get(dataset_name, {})
        if settings.method == "gradcon" else {},
    }
    if "latent" in kinds:
        summary["latent"] = aggregate(records, classes, seeds, lambda r: r["latent"]["auroc"])
    return summary


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
            name: aggregate(
                records, classes, seeds, lambda r, b=budget, n=name: r["milestones"][b][n]["auroc"]
            )
            for name in kinds
        }
    curve[str(epochs)] = {
        name: aggregate(records, classes, seeds, lambda r, n=name: r[n]["auroc"]) for name in kinds
    }
    return curve


# ---------------------------------------------------------------------- README.md


def markdown_report(summary, figures=()):
    """The one-class README: per-class and mean AUROC next to the published numbers, per layer,
    against the epoch budget, the Fig. 5 overlaps, and the ``figures`` (file names) with it."""
    return report.render(summary, one_class_report(summary, figures))


def one_class_report(summary, figures=()):
    """The :class:`~gradcon_tf.reproduction.report.Report` of a one-class summary."""
    title = (
        f"{report.method_label(summary)} on `{summary['dataset']}`: {summary['epochs']} epochs "
        f"per class, seeds {summary['seeds']}"
    )
    body = [
        "AUROC on the test split, mean ± std over seeds (per class: over the seeds of that "
        "class; mean: of the per-seed class means). Higher is better.",
        "",
        *_auroc_table(summary),
        *_layers_table(summary),
        *_epoch_curve_tables(summary),
        *_overlap_table(summary),
        *_figures_line(figures),
    ]
    return report.Report(
        title, body, hyperparameters="the paper's, same for every class",
        notes=_redrawn_note(summary),
    )


def _auroc_table(summary):
    """Table 1's layout: per class, ours next to the paper's and the release's numbers."""
    reference = summary["reference"]
    paper, release = reference.get("paper"), reference.get("release_e20")
    published = [column for column in (paper, release) if column]
    parts = [summary, summary["recon"], summary["grad"]] + (
        [summary["latent"]] if "latent" in summary else []
    )
    header = ["class", *(column["label"] for column in published)]
    header += [f"{COMBINED_LABEL} (ours)", "recon only (ours)", "grad only (ours)"]
    header += ["latent only (ours)"] if "latent" in summary else []
    rows = []
    for c in summary["classes"]:
        row = [str(c)]
        row += [f"{col['per_class'][c]:.3f}" if c < len(col["per_class"]) else "-" for col in published]
        row += [format_mean(*mean_std(part["per_class_auroc"][str(c)])) for part in parts]
        epochs = summary["best_epochs"]
        seeds = [f"class{c}-seed{s}" for s in summary["seeds"]]
        row.append(", ".join(str(epochs[run]) for run in seeds if run in epochs) or "-")
        rows.append(row)
    mean = ["**mean**"] + ([f"{paper['mean']:.3f}"] if paper else [])
    if release:
        mean.append(
            f"{release['mean']:.3f} (recon {release['recon_mean']:.3f}, "
            f"grad {release['grad_mean']:.3f})"
        )
    mean += [f"**{format_mean(part['mean_auroc'], part['std_auroc'])}**" for part in parts] + [""]
    counted = list(summary["per_seed_mean_auroc"])
    lines = table([*header, "best epochs"], [*rows, mean]) + [
        "",
        f"Seeds with every class finished (the mean row is over these): "
        f"{', '.join(counted) if counted else 'none yet'}; per-seed means of recon + beta * grad: "
        + ", ".join(f"seed {k} {v:.3f}" for k, v in summary["per_seed_mean_auroc"].items())
        + ".",
    ]
    return lines + (["", f"The release column: {release['note']}."] if release else [])


def _layers_table(summary):
    """Table 2: the AUROC of each decoder layer's gradient cosine alone."""
    layers = summary["layers"]
    if not layers:
        return []
    rows = [
        [str(c), *(format_mean(*mean_std(layer["per_class_auroc"][str(c)])) for layer in layers)]
        for c in summary["classes"]
    ]
    rows.append(["**mean**", *(format_mean(layer["mean_auroc"], layer["std_auroc"]) for layer in layers)])
    return [
        "",
        "## Per decoder layer (Table 2): AUROC of -cos of that layer's gradient alone",
        "",
        *table(["class", *(f"layer {i + 1}" for i in range(len(layers)))], rows),
    ]


def _epoch_curve_tables(summary):
    """The AUROC at each milestone budget: mean over classes, and per class."""
    curve = summary.get("epoch_curve") or {}
    if not curve:
        return []
    budgets = list(curve)
    kinds = score_kinds(curve[budgets[0]])
    means = [
        [budget, *(format_mean(curve[budget][n]["mean_auroc"], curve[budget][n]["std_auroc"]) for n in kinds)]
        for budget in budgets
    ]

    def per_class(c, b):
        gradcon, grad = (mean_std(curve[b][n]["per_class_auroc"][str(c)])[0] for n in ("gradcon", "grad"))
        return f"{format_mean(gradcon)} ({format_mean(grad)})"

    rows = [[str(c), *(per_class(c, b) for b in budgets)] for c in summary["classes"]]
    return [
        "",
        "## AUROC against the epoch budget (same runs; at each budget, the weights of the "
        "lowest validation loss up to that epoch)",
        "",
        *table(["epochs", *(label for _, label in kinds.values())], means),
        "",
        "Per class, GradCon (grad only) at each budget, mean over seeds:",
        "",
        *table(["class", *(f"{b} epochs" for b in budgets)], rows),
    ]


def _overlap_table(summary):
    """Fig. 5: the overlap of the inlier and outlier score histograms, per class."""
    kinds = score_kinds(summary)
    rows = [
        [str(c), *(format_percent(mean_std(summary["overlap"][n][str(c)])[0]) for n in kinds)]
        for c in summary["classes"]
    ]
    return [
        "",
        "## Histogram overlap (Fig. 5), % of test samples, mean over seeds",
        "",
        *table(["class", *(label for _, label in kinds.values())], rows),
        "",
        summary["overlap_note"] + ".",
        "",
    ]


def _figures_line(figures):
    """The report's line naming the figure files in ``figures`` (those that were written)."""
    parts = []
    if "roc.png" in figures:
        parts.append("`roc.png` (ROC curves, first seed)")
    histograms = [f"`{name}`" for name in figures if name.startswith("hist_")]
    if histograms:
        parts.append(", ".join(histograms) + " (test score histograms, first seed, with the overlap)")
    return ["Figures: " + ", ".join(parts) + ".", ""] if parts else []


def _redrawn_note(summary):
    """Which runs trained from a redrawn start (with ``redraw_collapsed``)."""
    if not summary["hyperparameters"].get("redraw_collapsed"):
        return []
    redrawn = summary["redrawn_runs"]
    listed = "; ".join(f"{run}: trained draw {info['draw']}" for run, info in redrawn.items())
    return [
        f"Collapsed starts redrawn: {len(redrawn)} of {len(summary['best_epochs'])} runs"
        + (f" ({listed})" if redrawn else "")
        + ".",
        "",
    ]
