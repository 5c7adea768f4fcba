"""The Markdown reports of ``gradcon reproduce`` (README.md) and ``gradcon compare`` (Table 1)."""

import json
import os

import numpy as np

from gradcon_tf.evaluation import SCORE_KINDS, score_kinds
from gradcon_tf.localisation import MAP_KINDS
from gradcon_tf.reproduction.summary import mean_std

#: The anomaly score of Eq. 6 (GradCon's score), whichever autoencoder it is computed on.
COMBINED_LABEL = "recon + beta * grad"

#: Names of the autoencoders of Table 1 (``experiment.METHODS``) in the report.
METHOD_LABELS = {"gradcon": "GradCon", "cae": "CAE", "vae": "VAE", "vae-grad": "VAE + Grad"}


def format_mean(mean, std=None):
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
            row.append(format_mean(*mean_std(part["per_class_auroc"][str(c)])))
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
        row.append(f"**{format_mean(part['mean_auroc'], part['std_auroc'])}**")
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
                    format_mean(*mean_std(layer["per_class_auroc"][str(c)]))
                    for layer in summary["layers"]
                )
                + " |"
            )
        lines.append(
            "| **mean** | "
            + " | ".join(
                format_mean(layer["mean_auroc"], layer["std_auroc"]) for layer in summary["layers"]
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
                    format_mean(curve[budget][name]["mean_auroc"], curve[budget][name]["std_auroc"])
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
                    f"{format_mean(mean_std(curve[b]['gradcon']['per_class_auroc'][str(c)])[0])} "
                    f"({format_mean(mean_std(curve[b]['grad']['per_class_auroc'][str(c)])[0])})"
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
                _percent(mean_std(summary["overlap"][name][str(c)])[0])
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
            label = COMBINED_LABEL if name == "gradcon" else SCORE_KINDS[name][1].replace(" only", "")
            cells = [
                format_mean(mean_std(part["per_class_auroc"].get(str(c), []))[0]) for c in classes
            ]
            overlaps = [v for values in summary["overlap"][name].values() for v in values]
            lines.append(
                f"| {method} | {label} | "
                + " | ".join(cells)
                + f" | **{format_mean(part['mean_auroc'], part['std_auroc'])}** | "
                + f"{_percent(float(np.mean(overlaps)) if overlaps else None)} |"
            )
    lines += ["", "From:", ""]
    lines += [
        f"- `{folder}`: {summary['epochs']} epochs, seeds {summary['seeds']}; "
        f"`{summary['command']}`"
        for folder, summary in summaries
    ]
    return "\n".join(lines) + "\n"


def _header(summary, title):
    method = METHOD_LABELS.get(summary.get("method", "gradcon"), summary.get("method"))
    lines = [
        f"# {method} on `{summary['dataset']}`, {title}: {summary['epochs']} epochs per model",
        "",
        "Regenerate with:",
        "",
        "```",
        summary["command"],
        "```",
        "",
        f"Protocol: {summary['protocol']}.",
        "",
    ]
    if not summary["complete"]:
        lines += [
            f"**Partial**: {len(summary['missing_runs'])} runs not finished yet "
            f"({', '.join(summary['missing_runs'])}).",
            "",
        ]
    return lines


def _footer(summary):
    return [
        "",
        f"Hyperparameters (the paper's): {summary['hyperparameters']}.",
        "",
        f"Compute: {summary['run_seconds_total'] / 60:.1f} min of training and scoring in total "
        f"({summary['environment']['cpu_count']} CPU cores, {summary['environment']['gpus']} GPUs, "
        f"TensorFlow {summary['environment']['tensorflow']}, Keras {summary['environment']['keras']}).",
        "",
    ]


def markdown_gpnd(summary):
    """The GPND report: F1 and AUROC at each outlier percentage, in Table 5's layout."""
    table = summary["outlier_percentages"]
    percentages = list(table)
    reference = summary["reference"]
    lines = _header(summary, "GPND protocol")
    lines += [
        f"Classes {summary['runs']['classes']}, folds {summary['runs']['folds']}; mean ± std "
        "over the (class, fold) runs.",
        "",
        "| metric | model | " + " | ".join(f"{p}%" for p in percentages) + " |",
        "|---|---|" + "---|" * len(percentages),
    ]
    for metric, label in (("f1", "F1"), ("auroc", "AUC")):
        rows = []
        for model, values in reference.get(metric, {}).items():
            by_percentage = dict(zip(map(str, reference["percentages"]), values))
            name = model if model == "GPND" else SCORE_KINDS[model][1]
            rows.append(
                [f"{name} ({reference['label']})"]
                + [format_mean(by_percentage.get(p)) for p in percentages]
            )
        kinds = score_kinds(table[percentages[0]]) if percentages else {}
        for name, (_, kind_label) in kinds.items():
            cells = [table[p][name][metric] for p in percentages]
            rows.append([f"{kind_label} (ours)"] + [format_mean(c["mean"], c["std"]) for c in cells])
        for k, row in enumerate(rows):
            lines.append(f"| {label if k == 0 else ''} | " + " | ".join(row) + " |")
    return "\n".join(lines + _footer(summary))


def markdown_conditions(summary):
    """The abnormal-conditions report: AUROC per challenge type and level, one table per score
    kind, and the per-layer AUROC (Table 2) averaged over levels."""
    table = summary["auroc"]
    lines = _header(summary, f"abnormal conditions ({summary['challenges']} challenges)")
    lines += [f"Seeds {summary['runs']['seeds']}; AUROC, mean ± std over seeds.", ""]
    if not table:
        return "\n".join(lines + _footer(summary))
    first = next(iter(next(iter(table.values())).values()))
    levels = list(next(iter(table.values())))
    for name, (_, label) in score_kinds(first).items():
        lines += [
            f"## {label}",
            "",
            "| challenge | " + " | ".join(f"level {level}" for level in levels) + " | mean |",
            "|---|" + "---|" * (len(levels) + 1),
        ]
        for challenge, by_level in table.items():
            cells = [by_level[level][name] for level in levels]
            mean = float(np.mean([c["mean"] for c in cells]))
            lines.append(
                f"| {challenge} | " + " | ".join(format_mean(c["mean"], c["std"]) for c in cells)
                + f" | **{format_mean(mean)}** |"
            )
        lines.append("")
    n_layers = len(first["layers"])
    lines += [
        "## Per decoder layer (Table 2): AUROC of -cos of that layer's gradient alone, mean over "
        "levels",
        "",
        "| challenge | " + " | ".join(f"layer {i + 1}" for i in range(n_layers)) + " |",
        "|---|" + "---|" * n_layers,
    ]
    for challenge, by_level in table.items():
        means = [np.mean([by_level[lv]["layers"][i]["mean"] for lv in levels]) for i in range(n_layers)]
        lines.append(f"| {challenge} | " + " | ".join(format_mean(float(m)) for m in means) + " |")
    return "\n".join(lines + _footer(summary))


def markdown_localisation(summary):
    """The localisation report: pixel AUROC of each anomaly map per inlier class (mean ± std over
    seeds), and the image-level AUROC of clean vs pasted images."""
    lines = _header(summary, "localisation (pasted patches)")
    classes = summary["runs"]["classes"]
    lines += [
        f"Classes {classes}, seeds {summary['runs']['seeds']}; per class mean ± std over seeds, "
        "mean = over seeds of the per-seed means over classes.",
        "",
    ]
    for title, table, labels in (
        ("Pixel AUROC of each anomaly map", summary["pixel_auroc"], MAP_KINDS),
        ("Image AUROC, clean vs pasted inlier images", summary["image_auroc"],
         {name: label for name, (_, label) in SCORE_KINDS.items()}),
    ):
        lines += [
            f"## {title}",
            "",
            "| | mean | " + " | ".join(f"class {c}" for c in classes) + " |",
            "|---|---|" + "---|" * len(classes),
        ]
        for kind, aggregate in table.items():
            cells = [format_mean(*mean_std(aggregate["per_class_auroc"][str(c)])) for c in classes]
            mean = format_mean(aggregate["mean_auroc"], aggregate["std_auroc"])
            lines.append(f"| {labels[kind]} | **{mean}** | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + _footer(summary))

