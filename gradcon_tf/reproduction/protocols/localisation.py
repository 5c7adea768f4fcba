"""The localisation experiment and its protocol: where in an image the anomaly is, measured by
pixel-level AUROC.

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
from gradcon_tf.evaluation import SCORE_KINDS, score_kinds
from gradcon_tf.reproduction import provenance, report, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import format_mean
from gradcon_tf.reproduction.summary import aggregate, mean_std

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


# ---------------------------------------------------------------------- the protocol

@register
class Localisation(base.PerClassAndSeed):
    """One model per (inlier class, seed); the seed also draws the pasted patches."""

    name = "localisation"
    description = (
        "localisation: one model per (inlier class, seed) trained as in the one-class protocol; "
        "each inlier test image gets a square of a test image of another class pasted at a random "
        "place (the seed draws both); pixel AUROC of each anomaly map over all pixels of the pasted "
        "images, the mask being the pixels the paste changed"
    )
    #: The image-level scores, clean then pasted.
    arrays = ("image_is_anomaly", "image_score")

    def run(self, loaded, key, train):
        split, seed = self.split(loaded, key), key[1]
        trained = train(split, seed)
        results, scores = evaluate_localisation(trained.model, split, seed)
        sizes = {"train": int(len(split.train)), "validation": int(len(split.validation)),
                 "test_images": int(np.sum(~split.test_is_anomaly))}
        return training.Outcome(trained, sizes, {"localisation": results}, scores)

    def headline(self, summary):
        score_map = summary["pixel_auroc"].get("score_map", {})
        return {"metric": "pixel AUROC of the model's score map, mean over classes and seeds",
                "value": score_map.get("mean_auroc")}

    def summarize(self, records, settings):
        """The pixel AUROC of each map kind and the image-level AUROC of each score kind, per
        class over seeds and as the mean over seeds of the per-seed class means."""
        classes, seeds = self.request.classes, self.request.seeds
        missing = [f"class{c}-seed{s}" for c in classes for s in seeds if (c, s) not in records]
        first = next(iter(records.values()), {}).get("localisation", {})
        runs = {"classes": list(classes), "seeds": list(seeds)}
        return {
            **summaries.head(settings, self.request.command, self.description, runs, missing),
            "pixel_auroc": {
                kind: aggregate(records, classes, seeds,
                                lambda r, k=kind: r["localisation"]["pixel_auroc"][k])
                for kind in first.get("pixel_auroc", {})
            },
            "image_auroc": {
                name: aggregate(records, classes, seeds,
                                lambda r, n=name: r["localisation"]["images"][n]["auroc"])
                for name in score_kinds(first.get("images", {}))
            },
            "std_note": "std is the sample standard deviation (ddof=1) over seeds of the per-seed "
            "means over classes; per class, the values of each seed",
            "hyperparameters": summaries.hyperparameters(settings),
            **summaries.seconds(records),
            "environment": provenance.environment(),
        }

    def report(self, summary, figures=()):
        """Pixel AUROC of each anomaly map per inlier class (mean ± std over seeds), and the
        image-level AUROC of clean vs pasted images."""
        classes = summary["runs"]["classes"]
        body = [
            f"Classes {classes}, seeds {summary['runs']['seeds']}; per class mean ± std over seeds, "
            "mean = over seeds of the per-seed means over classes.",
            "",
        ]
        for title, table, labels in (
            ("Pixel AUROC of each anomaly map", summary["pixel_auroc"], MAP_KINDS),
            ("Image AUROC, clean vs pasted inlier images", summary["image_auroc"],
             {name: label for name, (_, label) in SCORE_KINDS.items()}),
        ):
            rows = [
                [labels[kind], f"**{format_mean(over['mean_auroc'], over['std_auroc'])}**",
                 *(format_mean(*mean_std(over["per_class_auroc"][str(c)])) for c in classes)]
                for kind, over in table.items()
            ]
            header = ["", "mean", *(f"class {c}" for c in classes)]
            body += [f"## {title}", "", *report.table(header, rows), ""]
        title = self.title(summary, "localisation (pasted patches)")
        return report.Report(title, body + [""], protocol=summary["protocol"])
