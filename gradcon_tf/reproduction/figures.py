"""The PNG figures of a one-class report: ROC curves, AUROC against the epoch budget and the
score histograms of Fig. 5. matplotlib is optional (``gradcon-tf[data]``)."""

import importlib.util
import io
import os

import numpy as np
from sklearn.metrics import roc_curve

from gradcon_tf import _files as files
from gradcon_tf import metrics
from gradcon_tf.evaluation import score_kinds


def available():
    """Whether matplotlib is installed."""
    return importlib.util.find_spec("matplotlib") is not None


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
    """ROC curves, AUROC against the epoch budget and score histograms (first finished seed of
    each class) as PNG files; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {}
    for c in classes:
        for s in seeds:
            if (c, s) in all_scores:
                shown[c] = (s, all_scores[(c, s)])
                break
    if not shown:
        return []
    written = [_roc_figure(plt, shown, os.path.join(out, "roc.png"))]
    curve = _class_curves(records or {}, epochs)
    if curve:
        written.append(_epoch_figure(plt, curve, os.path.join(out, "auroc_vs_epochs.png")))
    for name, (key, label) in score_kinds(next(iter(shown.values()))[1]).items():
        path = os.path.join(out, f"hist_{name}.png")
        written.append(_histogram_figure(plt, shown, key, label, path))
    return written


def _grid(plt, shown, height):
    """A figure with one panel per class shown, at most 5 a row, and its panels."""
    columns = min(5, len(shown))
    rows = -(-len(shown) // columns)
    return plt.subplots(rows, columns, figsize=(3.2 * columns, height * rows), squeeze=False)


def _roc_figure(plt, shown, path):
    """Fig.: the ROC curve of each score kind, one panel per class."""
    figure, axes = _grid(plt, shown, 3.2)
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
    return _close(plt, figure, list(axes.flat)[len(shown) :], path)


def _epoch_figure(plt, curve, path):
    """Fig.: per class, the AUROC of GradCon and of the gradient alone against the budget."""
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
    return _close(plt, figure, [], path)


def _histogram_figure(plt, shown, key, label, path):
    """Fig. 5: the inlier and outlier histograms of the score ``key``, one panel per class."""
    figure, axes = _grid(plt, shown, 2.8)
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
    return _close(plt, figure, list(axes.flat)[len(shown) :], path)


def _close(plt, figure, unused_axes, path):
    """Hide ``unused_axes``, lay out, write and close ``figure``; returns ``path``."""
    for axis in unused_axes:
        axis.axis("off")
    figure.tight_layout()
    _save_figure(figure, path)
    plt.close(figure)
    return path


def _save_figure(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    files.write_bytes(path, buffer.getvalue())
