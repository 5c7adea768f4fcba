"""The Markdown of ``gradcon reproduce`` (each folder's README.md) and ``gradcon compare``
(Table 1).

A protocol says what its README holds (:class:`Report`: a title and the lines of its tables);
:func:`render` puts around them what every README has: the command that regenerates it, which
runs are missing, the hyperparameters and the compute spent.
"""

import dataclasses
import json
import os

import numpy as np

from gradcon_tf.evaluation import SCORE_KINDS
from gradcon_tf.reproduction.summary import mean_std

#: The anomaly score of Eq. 6 (GradCon's score), whichever autoencoder it is computed on.
COMBINED_LABEL = "recon + beta * grad"

#: Names of the autoencoders of Table 1 (``experiment.METHODS``) in the report.
METHOD_LABELS = {"gradcon": "GradCon", "cae": "CAE", "vae": "VAE", "vae-grad": "VAE + Grad"}


@dataclasses.dataclass
class Report:
    """What a protocol's README says between the common header and footer."""

    title: str  # the first line, without "# "
    body: list  # Markdown lines after the header (end them with "" for a blank line)
    protocol: str = ""  # when given, a "Protocol: ..." line under the command
    hyperparameters: str = "the paper's"  # "Hyperparameters (...)": which they are
    notes: list = dataclasses.field(default_factory=list)  # lines after the hyperparameters


def render(summary, report):
    """The README of ``summary`` (a protocol's summary.json) with ``report``'s content."""
    lines = [f"# {report.title}", "", "Regenerate with:", "", "```", summary["command"], "```", ""]
    if report.protocol:
        lines += [f"Protocol: {report.protocol}.", ""]
    if not summary["complete"]:
        lines += [
            f"**Partial**: {len(summary['missing_runs'])} runs not finished yet "
            f"({', '.join(summary['missing_runs'])}).",
            "",
        ]
    environment = summary["environment"]
    lines += [
        *report.body,
        f"Hyperparameters ({report.hyperparameters}): {summary['hyperparameters']}.",
        "",
        *report.notes,
        f"Compute: {summary['run_seconds_total'] / 60:.1f} min of training and scoring in total "
        f"({environment['cpu_count']} CPU cores, {environment['gpus']} GPUs, "
        f"TensorFlow {environment['tensorflow']}, Keras {environment['keras']}).",
        "",
    ]
    return "\n".join(lines)


def table(header, rows):
    """A Markdown table's lines: ``header`` (a list of cells; an empty one shows as one space)
    and ``rows`` (lists of cells)."""
    return [
        "|" + "|".join(f" {cell} " if cell else " " for cell in header) + "|",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def method_label(summary):
    """The name of the summary's autoencoder in Table 1."""
    return METHOD_LABELS.get(summary.get("method", "gradcon"), summary.get("method"))


def format_mean(mean, std=None):
    if mean is None:
        return "-"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def format_percent(fraction):
    return "-" if fraction is None else f"{100 * fraction:.1f}"


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
    ]
    rows = []
    for _, summary in summaries:
        parts = {"gradcon": summary, "recon": summary["recon"], "grad": summary["grad"]}
        if "latent" in summary:
            parts["latent"] = summary["latent"]
        for name, part in parts.items():
            label = COMBINED_LABEL if name == "gradcon" else SCORE_KINDS[name][1].replace(" only", "")
            cells = [
                format_mean(mean_std(part["per_class_auroc"].get(str(c), []))[0]) for c in classes
            ]
            overlaps = [v for values in summary["overlap"][name].values() for v in values]
            rows.append([
                method_label(summary), label, *cells,
                f"**{format_mean(part['mean_auroc'], part['std_auroc'])}**",
                format_percent(float(np.mean(overlaps)) if overlaps else None),
            ])
    lines += table(["model", "score", *map(str, classes), "mean", "overlap %"], rows)
    lines += ["", "From:", ""]
    lines += [
        f"- `{folder}`: {summary['epochs']} epochs, seeds {summary['seeds']}; "
        f"`{summary['command']}`"
        for folder, summary in summaries
    ]
    return "\n".join(lines) + "\n"
