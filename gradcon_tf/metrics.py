"""Detection metrics: AUROC, F1 at a threshold and the histogram overlap of Fig. 5 (the paper's),
average precision, and the per-region overlap of anomaly maps (AUPRO, MVTec AD's).

Scores follow the library's convention: higher = more anomalous; labels are True for outliers.
"""

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

#: Bins of the Fig. 5 histograms. The paper does not give its bin count; 100 is our choice.
OVERLAP_BINS = 100
#: AUPRO integrates the per-region overlap up to this false-positive rate (MVTec AD's 0.3).
AUPRO_MAX_FPR = 0.3


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


def average_precision(scores, is_anomaly):
    """Area under the precision-recall curve of detecting ``is_anomaly`` (average precision)."""
    scores, labels = _scores_and_labels(scores, is_anomaly)
    return float(average_precision_score(labels, scores))


def rates_at_threshold(scores, is_anomaly, threshold):
    """{"precision", "recall", "f1"} of the decision ``score > threshold`` = outlier (outliers
    the positive class; precision 0 when nothing is flagged)."""
    scores, labels = _scores_and_labels(scores, is_anomaly)
    flagged = scores > threshold
    hits = int(np.sum(flagged & labels))
    precision = hits / int(np.sum(flagged)) if flagged.any() else 0.0
    recall = hits / int(np.sum(labels))
    f1 = f1_at_threshold(scores, labels, threshold)
    return {"precision": float(precision), "recall": float(recall), "f1": f1}


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


def aupro(maps, masks, max_fpr=AUPRO_MAX_FPR):
    """Area under the per-region-overlap curve up to ``max_fpr``, divided by ``max_fpr``, in [0, 1]
    (Bergmann et al., "The MVTec anomaly detection dataset", IJCV 2021).

    ``maps``: (N, H, W) anomaly maps; ``masks``: (N, H, W) bool, True on anomalous pixels (an
    image without anomaly has an all-False mask). The regions are the 8-connected components of
    each mask. At a threshold t on the maps, the false-positive rate is the share of the normal
    pixels (of all images) above t, and the per-region overlap the mean over all regions of the
    share of the region's pixels above t. The curve joins the points of every distinct map
    value by straight lines, from (0, 0); its area up to ``max_fpr`` (the point at ``max_fpr``
    interpolated on its segment) is divided by ``max_fpr``.
    """
    from scipy import ndimage

    maps = np.asarray(maps, np.float64)
    masks = np.asarray(masks).astype(bool)
    if maps.shape != masks.shape or maps.ndim != 3:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must both be (N, H, W).")
    if masks.all() or not masks.any():
        raise ValueError("need both normal and anomalous pixels (the masks are all one value).")
    region_weights = np.zeros(maps.shape)
    regions = 0
    for weights, mask in zip(region_weights, masks):
        labels, count = ndimage.label(mask, structure=np.ones((3, 3), int))
        areas = np.bincount(labels.ravel())
        weights[labels > 0] = 1.0 / areas[labels[labels > 0]]
        regions += count
    order = np.argsort(-maps.ravel(), kind="stable")
    values = maps.ravel()[order]
    fpr = np.cumsum(~masks.ravel()[order]) / np.sum(~masks)
    pro = np.cumsum(region_weights.ravel()[order]) / regions
    last_of_value = np.append(values[1:] != values[:-1], True)
    fpr = np.concatenate([[0.0], fpr[last_of_value]])
    pro = np.concatenate([[0.0], pro[last_of_value]])
    cut = int(np.searchsorted(fpr, max_fpr, side="right"))  # points with fpr <= max_fpr
    end = pro[cut - 1]
    if cut < len(fpr) and fpr[cut - 1] < max_fpr:
        end += (pro[cut] - pro[cut - 1]) * (max_fpr - fpr[cut - 1]) / (fpr[cut] - fpr[cut - 1])
    x, y = np.append(fpr[:cut], max_fpr), np.append(pro[:cut], end)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0) / max_fpr)
