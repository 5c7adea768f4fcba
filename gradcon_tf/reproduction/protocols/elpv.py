"""The ELPV protocol: real defects on solar cells (:mod:`gradcon_tf.data.elpv`), one model per
(module type, seed) trained on functional cells at the working size, AUROC of each score against
the held-out functional cells for either definition of defective (probability >= 2/3 and > 0),
beside reconstruction alone and an independent PCA baseline on the same pixels.

``--data elpv`` reads the ``elpv-dataset`` package; ``--data elpv:LABELS_CSV`` a copy laid out as
it is (``labels.csv`` beside the ``images/`` folder).
"""

import numpy as np

from gradcon_tf import metrics, pca_baseline
from gradcon_tf.splits import OneClassSplit
from gradcon_tf.data import elpv
from gradcon_tf.reproduction import provenance, report, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import format_mean

#: Score kind -> its label in the report. ``zsum``: recon and grad_loss each standardised by the
#: mean and std of the validation cells' (functional, never tested), then added.
SCORES = {
    "gradcon": "GradCon (recon + beta * grad)",
    "recon": "recon",
    "grad": "grad",
    "zsum": "z(recon) + z(grad), calibrated on validation",
    "pca": f"PCA baseline ({pca_baseline.DEFAULT_COMPONENTS} components)",
}
DEFAULT_IMAGE_SIZE = 64


@register
class Elpv(base.Protocol):
    """One model per (module type, seed) on the request's seeds (its classes are unused);
    ``cells``: module types among ``mono``, ``poly``, ``both``; ``image_size``: the side the
    300x300 cells are resized to (bilinear), the model's working size."""

    name = "elpv"
    description = (
        "ELPV one-class: train on functional cells (defect probability 0) of one module type "
        f"(or both), {elpv.VALIDATION_FRACTION:.0%} of them validating; a seeded "
        f"{elpv.HELD_OUT_FRACTION:.0%} of the functional cells held out for the test, against "
        "every defective cell of that type, defective meaning probability >= 2/3 or > 0; the seed "
        "draws the hold-out and initialises the network"
    )
    arrays = ("defect_probability", "score", "recon", "grad_loss", "pca")
    loss_weights = "data"
    uses_classes = False

    def __init__(self, request, cells=elpv.MODULE_TYPES, image_size=DEFAULT_IMAGE_SIZE, **options):
        super().__init__(request, **options)
        unknown = [c for c in cells if c not in elpv.MODULE_TYPES]
        if unknown or not cells:
            raise ValueError(f"cells must be among {elpv.MODULE_TYPES}, got {list(cells)}")
        if int(image_size) < 8:
            raise ValueError(f"image_size must be at least 8, got {image_size}")
        self.cells, self.image_size = list(cells), int(image_size)
        self._labels_csv = elpv.labels_csv_of(request.data)

    def runs(self):
        return {
            (cells, seed): {"cells": cells, "size": self.image_size, "seed": seed}
            for seed in self.request.seeds for cells in self.cells
        }

    def load(self):
        return elpv.load_elpv(self.image_size, self._labels_csv)

    def run(self, loaded, key, train):
        cells, seed = key
        # The widest test set (defective = p > 0); the narrower one is a subset of it.
        indices = elpv.elpv_split_indices(loaded, cells, seed, defective=">0")
        images = loaded.images
        split = OneClassSplit(
            images[indices.train], images[indices.validation], images[indices.test],
            indices.test_is_anomaly,
        )
        trained = train(split, seed)
        scores = training.stored_scores(trained.model, split)
        validation = trained.model.score(split.validation)
        scores["zsum"] = (_z(scores["recon"], validation["recon"])
                          + _z(scores["grad_loss"], validation["grad_loss"])).astype(np.float32)
        scores["pca"] = pca_baseline.pca_scores(split.train, split.test).astype(np.float32)
        scores["defect_probability"] = loaded.defect_probability[indices.test].astype(np.float32)
        results = {"auroc": test_aurocs(scores)}
        sizes = {
            "train": int(len(split.train)),
            "validation": int(len(split.validation)),
            "test_functional": int(np.sum(~split.test_is_anomaly)),
            **{f"test_defective {criterion}": int(np.sum(_defective(scores, criterion)))
               for criterion in elpv.DEFECT_CRITERIA},
        }
        return training.Outcome(trained, sizes, results, scores)

    def summarize(self, records, settings):
        """Per defect criterion, score kind and module type: mean and std over seeds."""
        seeds = self.request.seeds
        missing = [f"cells{c}-size{self.image_size}-seed{s}" for (c, s) in self.runs()
                   if (c, s) not in records]
        runs = {"cells": self.cells, "image_size": self.image_size, "seeds": list(seeds)}
        table = {
            criterion: {
                kind: {
                    cells: summaries.mean_and_std(
                        [records[(cells, s)]["auroc"][criterion][kind]
                         for s in seeds if (cells, s) in records]
                    )
                    for cells in self.cells
                }
                for kind in SCORES
            }
            for criterion in elpv.DEFECT_CRITERIA
        }
        alphas = [r["alpha"] for r in records.values()]
        return {
            **summaries.head(settings, self.request.command, self.description, runs, missing),
            "auroc": table,
            "alpha_range": [min(alphas), max(alphas)] if alphas else None,
            "std_note": "std is the sample standard deviation (ddof=1) over seeds",
            "hyperparameters": summaries.hyperparameters(settings),
            **summaries.seconds(records),
            "environment": provenance.environment(),
        }

    def report(self, summary, figures=()):
        """One table per defect criterion: each score's AUROC per module type."""
        cells = summary["runs"]["cells"]
        body = [
            f"Module types {cells}, seeds {summary['runs']['seeds']}, cells resized to "
            f"{summary['runs']['image_size']} px; AUROC, mean ± std over seeds.",
            "",
        ]
        labels = dict(SCORES)
        if summary["hyperparameters"].get("image_score") == "local":
            labels["gradcon"] = "GradCon, local (top 1 % of the blurred score map)"
        for criterion, kinds in summary["auroc"].items():
            rows = [
                [labels[kind], *(format_mean(over[c]["mean"], over[c]["std"]) for c in cells)]
                for kind, over in kinds.items()
            ]
            body += [f"## Defective = probability {criterion}", "",
                     *report.table(["score", *cells], rows), ""]
        notes = []
        if summary["alpha_range"]:
            low, high = summary["alpha_range"]
            spread = f"{low:.4g}" if low == high else f"{low:.4g}-{high:.4g}"
            notes = [f"alpha per run {spread} (beta = 4 alpha).", ""]
        title = f"{report.method_label(summary)} on ELPV solar cells: {summary['epochs']} epochs per model"
        return report.Report(title, body, protocol=summary["protocol"], notes=notes,
                             hyperparameters="the paper's, loss weights as said")

    def run_line(self, record):
        auroc = record["auroc"][">=2/3"]
        return (f"AUROC (p >= 2/3) GradCon {auroc['gradcon']:.3f}, recon {auroc['recon']:.3f}, "
                f"grad {auroc['grad']:.3f}, PCA {auroc['pca']:.3f}; best epoch {record['best_epoch']}")

    def headline(self, summary):
        cells = summary["auroc"].get(">=2/3", {}).get("gradcon", {})
        means = [cell["mean"] for cell in cells.values()]
        return {"metric": "image AUROC of the model's score, defective meaning p >= 2/3, mean over "
                          "seeds and the cell sets", "value": _mean_or_none(means, summary)}

    def result_line(self, summary, out):
        return f"report in {out}"


def test_aurocs(scores):
    """{criterion: {score kind: AUROC}} of stored scores, functional cells against the cells
    defective by each criterion (:data:`gradcon_tf.data.elpv.DEFECT_CRITERIA`)."""
    columns = {"gradcon": "score", "recon": "recon", "grad": "grad_loss", "zsum": "zsum",
               "pca": "pca"}
    functional = scores["defect_probability"] == 0
    results = {}
    for criterion in elpv.DEFECT_CRITERIA:
        chosen = functional | _defective(scores, criterion)
        labels = ~functional[chosen]
        results[criterion] = {
            kind: metrics.auroc(scores[column][chosen], labels) for kind, column in columns.items()
        }
    return results


def _defective(scores, criterion):
    return scores["defect_probability"] > elpv.DEFECT_CRITERIA[criterion]


def _z(values, reference):
    return (values - np.mean(reference)) / (np.std(reference) + 1e-12)


def _mean_or_none(values, summary):
    return float(sum(values) / len(values)) if values and summary["complete"] else None
