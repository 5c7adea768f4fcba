"""The localisation experiment: where in an image the anomaly is, measured by pixel-level AUROC.

Each inlier test image of a one-class split gets a local anomaly of known mask: a ``patch`` x
``patch`` square cut from a test image of another class (where it has ink) and pasted at a random
place. The mask holds the pixels the paste changed by more than ``CHANGED`` of the intensity
range, so an unchanged background pixel inside the square is not an anomaly. Every anomaly map of
:meth:`gradcon_tf.GradCon.score` (``maps=True``) is scored by its AUROC over all pixels of the
pasted images (labels: the masks), pooled; the plain reconstruction error map is the baseline.
The clean and pasted images also give an image-level AUROC of each score.
"""

import numpy as np

from gradcon_tf import evaluation, metrics

#: Anomaly maps of ``GradCon.score(maps=True)`` -> label.
MAP_KINDS = {
    "recon_map": "recon error (baseline)",
    "grad_map": "gradient",
    "score_map": "GradCon (recon + beta grad)",
}
#: Side of the pasted square, in pixels of 28x28 images (scaled with the image side).
PATCH = 10
#: A pixel is in the mask when the paste changed it by more than this (intensity range 1).
CHANGED = 0.1
#: A donor square must have at least this share of pixels above half the intensity range.
MIN_INK = 0.15


def _square(image, side, rng, min_ink, tries=50):
    """Top-left corner of a ``side`` square of ``image`` with ink (the inkiest of ``tries``)."""
    height, width = image.shape[:2]
    best, best_ink = (0, 0), -1.0
    for _ in range(tries):
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        ink = float(np.mean(image[top : top + side, left : left + side] > 0.5))
        if ink >= min_ink:
            return top, left
        if ink > best_ink:
            best, best_ink = (top, left), ink
    return best


def pasted_patches(inliers, donors, seed, patch=PATCH, changed=CHANGED, min_ink=MIN_INK):
    """(images, masks): each inlier with a square of a random donor pasted at a random place.

    ``inliers``, ``donors``: NHWC uint8 or float in [0, 1]. Returns images of the inliers' dtype
    and boolean masks (N, H, W). Seeded: the same arguments give the same images.
    """
    rng = np.random.default_rng(seed)
    inliers, donors = np.asarray(inliers), np.asarray(donors)
    scale = 255.0 if inliers.dtype == np.uint8 else 1.0
    height, width = inliers.shape[1:3]
    side = max(1, round(patch * min(height, width) / 28))
    images = inliers.copy()
    for image, donor_index in zip(images, rng.integers(0, len(donors), size=len(inliers))):
        donor = donors[donor_index].astype(np.float64) / scale
        top, left = _square(donor.mean(axis=-1), side, rng, min_ink)
        row, column = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        square = donor[top : top + side, left : left + side] * scale
        image[row : row + side, column : column + side] = square.astype(images.dtype)
    difference = np.abs(images.astype(np.float64) - inliers.astype(np.float64)) / scale
    return images, difference.max(axis=-1) > changed


def pixel_aurocs(maps, masks):
    """{map kind: AUROC over all pixels} of the maps in ``maps`` (N, H, W each) against ``masks``."""
    return {
        kind: metrics.auroc(np.asarray(maps[kind]).reshape(-1), np.asarray(masks).reshape(-1))
        for kind in MAP_KINDS
        if kind in maps
    }


def evaluate_localisation(model, split, seed, batch_size=256):
    """Paste anomalies into the inlier test images of ``split`` (a one-class split; the other
    classes' test images are the donors) and evaluate ``model`` on them.

    Returns (record, scores): ``record`` = {"pixel_auroc": {map kind: AUROC}, "images":
    :func:`gradcon_tf.evaluation.evaluate` of clean vs pasted images, "mask_pixels": share of
    pixels in the masks}; ``scores``: the image-level scores (``image_*`` arrays).
    """
    labels = np.asarray(split.test_is_anomaly, bool)
    clean, donors = split.test[~labels], split.test[labels]
    pasted, masks = pasted_patches(clean, donors, seed)
    pasted_scores = model.score(pasted, batch_size=batch_size, maps=True)
    clean_scores = model.score(clean, batch_size=batch_size)
    image_labels = np.concatenate([np.zeros(len(clean), bool), np.ones(len(pasted), bool)])
    image_scores = {
        key: np.concatenate([clean_scores[key], pasted_scores[key]])
        for key in ("score", "recon", "grad_loss", "layer_cosines")
    }
    record = {
        "pixel_auroc": pixel_aurocs(pasted_scores, masks),
        "images": evaluation.evaluate(image_scores, image_labels),
        "mask_pixels": float(np.mean(masks)),
    }
    scores = {f"image_{key}": value.astype(np.float32) for key, value in image_scores.items()}
    scores["image_is_anomaly"] = image_labels
    return record, scores
