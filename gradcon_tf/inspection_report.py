"""The report of a folder evaluation (:func:`gradcon_tf.inspection.evaluate_folders`): a Markdown
page with the metrics, ROC curves, score densities of normal vs abnormal images, overlays of the
worst-scored images at their own resolution (masks outlined) and a CSV of every image's scores,
written as one folder at the end (crash-safe). The figures need matplotlib
(``pip install 'gradcon-tf[data]'``)."""

import csv
import importlib.util
import io
import math
import os

import numpy as np
from sklearn.metrics import roc_curve

from gradcon_tf import _files as files
from gradcon_tf import metrics
from gradcon_tf.data import anomaly_folders
from gradcon_tf.portable import overlays

REPORT_FILE = "report.md"
SCORES_FILE = "scores.csv"
#: The CSV's score columns: GradCon.score() key -> column.
SCORE_COLUMNS = {"score": "score", "recon": "recon", "grad_loss": "grad_loss", "p_value": "p_value"}
MATPLOTLIB_MISSING = (
    "the report's figures need matplotlib, which is not installed: pip install 'gradcon-tf[data]'"
)
#: Score kinds shown in the histograms: GradCon.score() key -> label.
HISTOGRAMS = {"score": "GradCon score", "recon": "reconstruction error", "grad_loss": "gradient loss"}


def check_report_folder(folder):
    """Raise the error :func:`write_inspection_report` would raise before writing anything:
    matplotlib missing (ImportError), or ``folder`` a file or a folder of other files (it
    would be replaced: only an empty folder or an earlier report is)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError(MATPLOTLIB_MISSING)
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{folder}: exists and is not a folder (the report folder)")
    if os.path.isdir(folder) and os.listdir(folder) and not os.path.isfile(
        os.path.join(folder, REPORT_FILE)
    ):
        raise ValueError(
            f"{folder}: holds files but no {REPORT_FILE}; the report replaces its folder, so "
            "give a new folder or an earlier report's"
        )


def write_inspection_report(evaluation, folder):
    """Write ``folder``/report.md with roc.png, histograms.png, worst/*.png (the overlays of
    the highest-scoring normal and lowest-scoring abnormal images) and scores.csv (every
    image); returns report.md's path."""
    check_report_folder(folder)
    with files.atomic_output(folder, directory=True) as temporary:
        figures = [_roc_figure(evaluation, temporary), _histogram_figure(evaluation, temporary)]
        shown = _write_overlays(evaluation, temporary)
        files.write_text(os.path.join(temporary, SCORES_FILE), scores_csv(evaluation))
        files.write_text(os.path.join(temporary, REPORT_FILE), _markdown(evaluation, figures, shown))
    return os.path.join(folder, REPORT_FILE)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, folder, name):
    """Save ``figure`` as ``folder``/``name`` (PNG), close it; returns ``name``."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    _pyplot().close(figure)
    files.write_bytes(os.path.join(folder, name), buffer.getvalue())
    return name


def _roc_figure(evaluation, folder):
    """ROC curves of the GradCon score: all abnormal images, and each defect type's."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 4.5))
    scores, types = evaluation.scores["score"], np.asarray(evaluation.defect_types)
    curves = {"all": np.ones(len(types), bool)}
    if len(evaluation.defects) > 1:
        curves.update({kind: (types == "") | (types == kind) for kind in evaluation.defects})
    for name, chosen in curves.items():
        fpr, tpr, _ = roc_curve(types[chosen] != "", scores[chosen])
        auc = metrics.auroc(scores[chosen], types[chosen] != "")
        axis.plot(fpr, tpr, linewidth=2.0 if name == "all" else 1.0, label=f"{name} {auc:.3f}")
    axis.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
    axis.set_xlabel("false positive rate (normal images)")
    axis.set_ylabel("true positive rate (abnormal images)")
    axis.legend(fontsize=7, loc="lower right", title="AUROC", title_fontsize=7)
    return _save(figure, folder, "roc.png")


def _histogram_figure(evaluation, folder):
    """Densities of each score kind, normal vs abnormal images (each group's area 1, so that
    groups of different sizes compare), with the threshold."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(HISTOGRAMS), figsize=(4 * len(HISTOGRAMS), 3.2))
    labels = evaluation.is_anomaly
    for axis, (key, label) in zip(axes, HISTOGRAMS.items()):
        values = np.asarray(evaluation.scores[key], np.float64)
        edges = np.linspace(values.min(), values.max(), 41)
        axis.hist(values[~labels], edges, density=True, alpha=0.6, label=f"normal ({np.sum(~labels)})")
        axis.hist(values[labels], edges, density=True, alpha=0.6, label=f"abnormal ({np.sum(labels)})")
        if key == "score" and evaluation.threshold is not None:
            axis.axvline(evaluation.threshold, color="black", linestyle="--", label="threshold")
        axis.set_xlabel(label)
        axis.set_ylabel("density")
        axis.legend(fontsize=7)
    return _save(figure, folder, "histograms.png")


def _write_overlays(evaluation, folder):
    """The overlays of ``evaluation.worst`` under ``folder``/worst, each image read again at its
    own resolution with its mask outlined; [(group, relative path, file)]."""
    os.makedirs(os.path.join(folder, "worst"))
    written = []
    names = overlays.OverlayNames()
    for rank, shown in enumerate(evaluation.worst):
        index = shown["index"]
        path, mask_path = evaluation.paths[index], evaluation.mask_paths[index]
        image = anomaly_folders.read_image(path)  # at its own size and channels
        mask = None if mask_path is None else anomaly_folders.read_mask(mask_path, image.shape[:2])
        relative = evaluation.relative_path(index)
        name = f"{shown['group']}_{rank:04d}_{names(path)}"  # by rank
        overlays.write_overlay(
            os.path.join(folder, "worst"), name, image, shown["maps"], f"{shown['group']}: {relative}",
            shown["score"], shown["p_value"], shown["is_anomaly"], mask=mask,
        )
        written.append((shown["group"], relative, f"worst/{name}"))
    return written


def scores_csv(evaluation):
    """Every image's row: its folder (normal or abnormal), its path relative to it, its defect
    type, the score and its parts, the p-value and the decision at the threshold."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [c for k, c in SCORE_COLUMNS.items() if k in evaluation.scores]
    writer.writerow(["folder", "path", "defect_type", *columns, "decision"])
    for index in range(len(evaluation.paths)):
        values = [float(evaluation.scores[k][index]) for k in SCORE_COLUMNS if k in evaluation.scores]
        flagged = evaluation.scores.get("is_anomaly")  # the model's decision, at its threshold
        decision = "" if flagged is None else "anomaly" if flagged[index] else "normal"
        writer.writerow([
            "abnormal" if evaluation.is_anomaly[index] else "normal",
            evaluation.relative_path(index), evaluation.defect_types[index],
            *(_number(v) for v in values), decision,
        ])
    return buffer.getvalue()


def _number(value):
    return "" if math.isnan(value) else repr(value)


def _markdown(evaluation, figures, shown):
    lines = ["# GradCon evaluation on image folders", "", evaluation.summary()]
    if evaluation.masks_missing:
        lines.append(
            f"{evaluation.masks_missing} abnormal images have no mask: left out of the pixel "
            "metrics.\n"
        )
    lines += ["## ROC curves and score densities", ""]
    lines += [f"![{name}]({name})" for name in figures]
    lines += ["", f"Every image's scores and decision: [{SCORES_FILE}]({SCORES_FILE}) (paths "
              f"relative to the normal folder `{evaluation.folders['normal']}` and the abnormal "
              f"folder `{evaluation.folders['abnormal']}`)."]
    if evaluation.image_score == "local":
        lines += ["", "The model's image score is the local one (the top 1 % of its blurred GradCon "
                  "map); `recon` and `grad_loss` are the image means of the paper's two parts, so "
                  "`score` is not their weighted sum."]
    titles = {
        "normal": "Highest-scoring normal images (the likeliest false alarms)",
        "abnormal": "Lowest-scoring abnormal images (the likeliest misses)",
    }
    for group, title in titles.items():
        lines += ["", f"## {title}", ""]
        lines += [f"- `{path}`\n\n  ![{path}]({link})" for g, path, link in shown if g == group]
    if any(m is not None for m in evaluation.mask_paths):
        lines += ["", "Masks are outlined in cyan on the image and on the GradCon map over it."]
    return "\n".join(lines) + "\n"
