"""The GPND protocol (Fashion-MNIST, Table 5): one model per (inlier class, fold), F1 and AUROC
at 10..50 % outliers (:mod:`gradcon_tf.gpnd`)."""

from gradcon_tf import data as datasets
from gradcon_tf import gpnd, protocols
from gradcon_tf.evaluation import SCORE_KINDS, score_kinds
from gradcon_tf.reproduction import provenance, report, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import format_mean


@register
class GPND(base.Protocol):
    """One model per (inlier class, fold); the request's seeds are the folds (0..4)."""

    name = "gpnd"
    description = (
        "GPND (fMNIST): train + test pooled, 5 class-stratified folds, 60/20/20 train/validation/"
        "test; one model per (inlier class, fold), selected by the loss on the validation fold's "
        "inliers; validation and test sets with 10..50% outliers; F1 of the inliers at the "
        "threshold that maximises it on validation"
    )

    def __init__(self, request, **options):
        super().__init__(request, **options)
        if not set(request.seeds) <= set(range(protocols.GPND_FOLDS)):
            raise ValueError(f"the GPND protocol has folds 0..{protocols.GPND_FOLDS - 1}")

    def runs(self):
        classes, folds = self.request.classes, self.request.seeds
        return {(c, f): {"inlier_class": c, "fold": f} for f in folds for c in classes}

    def load(self):
        splits = super().load()
        return datasets.concatenate(splits["train"], splits["test"])

    def run(self, loaded, key, train):
        """The fold seeds the network too."""
        inlier, fold = key
        splits, split = gpnd.gpnd_splits(loaded, inlier, fold, seed=0)
        trained = train(split, fold)
        results = gpnd.evaluate_gpnd(trained.model, splits)
        scores = {}
        for percentage, percentage_split in splits.items():
            for name, values in training.stored_scores(trained.model, percentage_split).items():
                scores[f"p{percentage}_{name}"] = values
        sizes = {"train": int(len(split.train)), "validation_inliers": int(len(split.validation))}
        results = {"outlier_percentages": {str(p): result for p, result in results.items()}}
        return training.Outcome(trained, sizes, results, scores)

    def headline(self, summary):
        table = summary["outlier_percentages"]
        means = [table[p]["gradcon"]["auroc"]["mean"] for p in table if "gradcon" in table[p]]
        return {"metric": "AUROC of the model's score, mean over the outlier percentages and "
                          "the (class, fold) runs",
                "value": float(sum(means) / len(means)) if means and summary["complete"] else None}

    def summarize(self, records, settings):
        """AUROC and F1 of each score kind at each outlier percentage, mean and std over the
        (class, fold) runs."""
        classes, folds = self.request.classes, self.request.seeds
        missing = [f"class{c}-fold{f}" for c in classes for f in folds if (c, f) not in records]
        first = next(iter(records.values()), {})
        table = {
            p: {
                name: {
                    metric: summaries.mean_and_std(
                        [r["outlier_percentages"][p][name][metric] for r in records.values()]
                    )
                    for metric in ("auroc", "f1")
                }
                for name in score_kinds(first["outlier_percentages"][p])
            }
            for p in first.get("outlier_percentages", {})
        }
        runs = {"classes": list(classes), "folds": list(folds)}
        return {
            **summaries.head(settings, self.request.command, self.description, runs, missing),
            "outlier_percentages": table,
            "std_note": "mean and sample standard deviation (ddof=1) over the (class, fold) runs",
            "hyperparameters": summaries.hyperparameters(settings),
            **summaries.seconds(records),
            "environment": provenance.environment(),
            "reference": summaries.references()["gpnd"].get(self.request.dataset_name, {})
            if settings.method == "gradcon" else {},
        }

    def report(self, summary, figures=()):
        """F1 and AUROC at each outlier percentage, in Table 5's layout."""
        table = summary["outlier_percentages"]
        percentages = list(table)
        reference = summary["reference"]
        rows = []
        for metric, label in (("f1", "F1"), ("auroc", "AUC")):
            models = []
            for model, values in reference.get(metric, {}).items():
                by_percentage = dict(zip(map(str, reference["percentages"]), values))
                name = model if model == "GPND" else SCORE_KINDS[model][1]
                models.append([f"{name} ({reference['label']})"]
                              + [format_mean(by_percentage.get(p)) for p in percentages])
            kinds = score_kinds(table[percentages[0]]) if percentages else {}
            for name, (_, kind_label) in kinds.items():
                cells = [table[p][name][metric] for p in percentages]
                models.append([f"{kind_label} (ours)"] + [format_mean(c["mean"], c["std"]) for c in cells])
            rows += [[label if k == 0 else "", *row] for k, row in enumerate(models)]
        body = [
            f"Classes {summary['runs']['classes']}, folds {summary['runs']['folds']}; mean ± std "
            "over the (class, fold) runs.",
            "",
            *report.table(["metric", "model", *(f"{p}%" for p in percentages)], rows),
            "",
        ]
        return report.Report(self.title(summary, "GPND protocol"), body, protocol=summary["protocol"])
