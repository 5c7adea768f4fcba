"""The localisation protocol: one model per (inlier class, seed) trained as in the one-class
protocol, scored by the pixel AUROC of its anomaly maps on inlier test images with a pasted
patch of another class (:mod:`gradcon_tf.localisation`)."""

import numpy as np

from gradcon_tf import localisation
from gradcon_tf.evaluation import SCORE_KINDS, score_kinds
from gradcon_tf.reproduction import provenance, report, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import format_mean
from gradcon_tf.reproduction.summary import aggregate, mean_std


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
        results, scores = localisation.evaluate_localisation(trained.model, split, seed)
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
            ("Pixel AUROC of each anomaly map", summary["pixel_auroc"], localisation.MAP_KINDS),
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
