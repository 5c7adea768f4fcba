"""Detection metrics of the paper: AUROC, F1 at a threshold, and the histogram overlap of Fig. 5.

Scores follow the library's convention: higher = more anomalous; labels are True for outliers.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

#: Bins of the Fig. 5 histograms. The paper does not give its bin count; 100 is our choice.
OVERLAP_BINS = 100


def _scores_and_labels(scores, is_anomaly):
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(is_anomaly).astype(bool).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape[0]} scores but {labels.shape[0]} labels; they must match.")
    if labels.all() or not labels.any():
        raise ValueError("need both inliers and outliers (labels are all one value).")
    return scores, labels


def auroc(scores, is_anomaly):
    """Area under the ROC curve of ``scores`` for detecting ``is_anomaly``."""
    scores, labels = _scores_and_labels(scores, is_anomaly)
    return float(roc_auc_score(labels, scores))


def f1_at_threshold(scores, is_anomaly, threshold, positive="outlier"):
    """F1 of the decision ``score > threshold`` = outlier.

    ``positive="outlier"`` scores the outliers as the positive class; ``"inlier"`` the inliers
    (GPND's convention: its F1 is that of recognising inliers, predicted inlier = score <= threshold).
    """
    scores, labels = _scores_and_labels(scores, is_anomaly)
    predicted_outlier = scores > threshold
    if positive == "outlier":
        truth, predicted = labels, predicted_outlier
    elif positive == "inlier":
        truth, predicted = ~labels, ~predicted_outlier
    else:
        raise ValueError(f"positive must be 'outlier' or 'inlier', got {positive!r}.")
    true_positives = np.sum(truth & predicted)
    denominator = 2 * true_positives + np.sum(~truth & predicted) + np.sum(truth & ~predicted)
    return float(2 * true_positives / denominator) if denominator else 0.0


def best_f1_threshold(scores, is_anomaly, positive="inlier"):
    """The threshold that maximises F1 on (``scores``, ``is_anomaly``) and that F1.

    GPND picks its threshold this way on the validation split (which holds outliers in the same
    ratio as the test split), then reports the test F1 at that threshold. Candidates are every
    distinct score (decision ``score > t``) plus one below the minimum (everything an outlier).
    """
    scores, labels = _scores_and_labels(scores, is_anomaly)
    candidates = np.concatenate([[np.min(scores) - 1.0], np.unique(scores)])
    f1s = [f1_at_threshold(scores, labels, t, positive) for t in candidates]
    best = int(np.argmax(f1s))
    return float(candidates[best]), float(f1s[best])


def histogram_overlap(scores, is_anomaly, bins=OVERLAP_BINS):
    """Fig. 5's overlap: samples in the overlapped region of the two histograms / all samples.

    Both histograms share ``bins`` equal-width bins over the 1st..99th percentile of all scores
    (values beyond are counted in the end bins, so a few extreme scores do not squeeze the rest
    into one bin). In each bin the overlapped region holds ``min(n_inlier, n_outlier)`` samples of
    each group, so the overlap is ``sum_b 2 min(n_in_b, n_out_b) / N``, in [0, 1].
    """
    scores, labels = _scores_and_labels(scores, is_anomaly)
    low, high = np.percentile(scores, [1.0, 99.0])
    if not high > low:
        return 1.0
    clipped = np.clip(scores, low, high)
    edges = np.linspace(low, high, bins + 1)
    inliers, _ = np.histogram(clipped[~labels], edges)
    outliers, _ = np.histogram(clipped[labels], edges)
    return float(2 * np.minimum(inliers, outliers).sum() / len(scores))
