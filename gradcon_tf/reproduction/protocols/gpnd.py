"""The GPND experiment (Fashion-MNIST, Table 5): its split, its evaluation and its protocol.

GPND's split: train + test pooled, 5 class-stratified folds, 60/20/20 train/validation/test,
validation and test sets with 10..50 % outliers; AUROC, and F1 at the threshold chosen on
validation. The training set does not depend on the outlier percentage, so one model per
(inlier class, fold) serves all five: it is trained on the class's three training folds,
selected by the loss on the validation fold's *inliers* (outliers are unknown at training time),
then for each percentage the threshold is the one that maximises F1 on that percentage's
validation set and the test set gives AUROC and F1 (GPND's procedure).
"""

import dataclasses

import numpy as np

from gradcon_tf import data as datasets
from gradcon_tf import evaluation, experiment
from gradcon_tf.evaluation import SCORE_KINDS, score_kinds
from gradcon_tf.reproduction import provenance, report, summary as summaries
from gradcon_tf.reproduction import training
from gradcon_tf.reproduction.protocols import base, register
from gradcon_tf.reproduction.report import format_mean
from gradcon_tf.splits import OneClassSplit

GPND_FOLDS = 5
GPND_OUTLIER_PERCENTAGES = (10, 20, 30, 40, 50)


@dataclasses.dataclass
class GPNDSplit:
    """One (inlier class, fold, outlier percentage) experiment of the GPND protocol."""

    train: np.ndarray  # inlier images of the 3 training folds (60% of the class)
    validation: np.ndarray  # inliers of the validation fold + outliers at the percentage
    validation_is_anomaly: np.ndarray
    test: np.ndarray  # inliers of the test fold + outliers at the percentage
    test_is_anomaly: np.ndarray
    folds: dict  # {"train": [...], "validation": k, "test": k}
    indices: dict  # positions in the pooled dataset: train, validation, test


def gpnd_folds(labels, n_folds=GPND_FOLDS, seed=0):
    """Fold id (0..n_folds-1) of every sample: each class shuffled and cut into equal parts.

    As GPND's ``partition_mnist.py``: per class, a seeded permutation split into ``n_folds``
    parts whose sizes differ by at most one (``np.array_split``).
    """
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), np.int64)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        for k, part in enumerate(np.array_split(members, n_folds)):
            fold[part] = k
    return fold


def _with_outlier_percentage(inliers, outliers, percentage, rng):
    """GPND's ``compute_threshold``/``test`` set: keep all inliers, add
    ``inliers * p // (100 - p)`` outliers; when there are too few outliers, keep them all and
    cut the inliers to ``outliers * (100 - p) // p`` instead."""
    outliers = rng.permutation(outliers)
    inliers = rng.permutation(inliers)
    n_outliers = len(inliers) * percentage // (100 - percentage)
    if len(outliers) >= n_outliers:
        outliers = outliers[:n_outliers]
    else:
        inliers = inliers[: len(outliers) * (100 - percentage) // percentage]
    index = np.concatenate([inliers, outliers])
    is_anomaly = np.concatenate([np.zeros(len(inliers), bool), np.ones(len(outliers), bool)])
    order = rng.permutation(len(index))
    return index[order], is_anomaly[order]


def gpnd_split(pooled, inlier_class, fold, outlier_percentage, seed=0, n_folds=GPND_FOLDS):
    """The GPND protocol on ``pooled`` (LabeledImages of train + test together).

    The pooled data is cut into ``n_folds`` class-stratified folds (:func:`gpnd_folds`). For test
    fold ``fold``, the validation fold is the first other fold (as GPND's loop fills its
    validation list first) and the remaining 3 folds are the training folds: 60/20/20. Training
    uses only the inlier class; validation and test hold that fold's inliers plus outliers drawn
    at random from the fold's other classes so that outliers are ``outlier_percentage`` % of the
    set. Thresholds are chosen on validation (:func:`gradcon_tf.metrics.best_f1_threshold`).
    """
    if not 0 < outlier_percentage < 100:
        raise ValueError(f"outlier_percentage must be in (0, 100), got {outlier_percentage}.")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}.")
    fold_of = gpnd_folds(pooled.labels, n_folds, seed)
    validation_fold = min(k for k in range(n_folds) if k != fold)
    train_folds = [k for k in range(n_folds) if k not in (fold, validation_fold)]
    inlier = pooled.labels == inlier_class
    if not inlier.any():
        raise ValueError(f"class {inlier_class} has no images.")
    # A separate stream per (fold, percentage), so sets do not change when others are added.
    rng = np.random.default_rng([seed, inlier_class, fold, outlier_percentage])
    train_index = np.flatnonzero(inlier & np.isin(fold_of, train_folds))
    sets = {}
    for name, k in (("validation", validation_fold), ("test", fold)):
        in_fold = fold_of == k
        sets[name] = _with_outlier_percentage(
            np.flatnonzero(in_fold & inlier),
            np.flatnonzero(in_fold & ~inlier),
            outlier_percentage,
            rng,
        )
    return GPNDSplit(
        train=pooled.images[train_index],
        validation=pooled.images[sets["validation"][0]],
        validation_is_anomaly=sets["validation"][1],
        test=pooled.images[sets["test"][0]],
        test_is_anomaly=sets["test"][1],
        folds={"train": train_folds, "validation": validation_fold, "test": fold},
        indices={
            "train": train_index,
            "validation": sets["validation"][0],
            "test": sets["test"][0],
        },
    )


def gpnd_evaluate(validation_scores, validation_is_anomaly, test_scores, test_is_anomaly):
    """AUROC on test and GPND's F1: threshold maximising F1 on validation, F1 on test there.

    As GPND, F1 is that of the inlier class (predicted inlier = score <= threshold).
    """
    from gradcon_tf import metrics

    threshold, validation_f1 = metrics.best_f1_threshold(
        validation_scores, validation_is_anomaly, positive="inlier"
    )
    return {
        "auroc": metrics.auroc(test_scores, test_is_anomaly),
        "f1": metrics.f1_at_threshold(test_scores, test_is_anomaly, threshold, positive="inlier"),
        "threshold": threshold,
        "validation_f1": validation_f1,
    }


# ---------------------------------------------------------------------- one model per (class, fold)

def gpnd_splits(pooled, inlier_class, fold, seed=0, percentages=GPND_OUTLIER_PERCENTAGES):
    """{percentage: GPNDSplit} and the split the model trains on (validation: inliers only)."""
    splits = {
        p: gpnd_split(pooled, inlier_class, fold, p, seed=seed) for p in percentages
    }
    first = splits[percentages[0]]
    training = OneClassSplit(
        train=first.train,
        validation=first.validation[~first.validation_is_anomaly],
        test=first.test,
        test_is_anomaly=first.test_is_anomaly,
    )
    return splits, training


def evaluate_gpnd(model, splits):
    """``{percentage: {score kind: {auroc, overlap, f1, threshold, validation_f1}, "layers"}}``:
    :func:`gradcon_tf.evaluation.evaluate` on each test set plus GPND's F1."""
    results = {}
    for percentage, split in splits.items():
        validation = model.score(split.validation)
        test = model.score(split.test)
        result = evaluation.evaluate(test, split.test_is_anomaly)
        for name, (key, _) in evaluation.score_kinds(test).items():
            f1 = gpnd_evaluate(
                validation[key], split.validation_is_anomaly, test[key], split.test_is_anomaly
            )
            result[name].update({k: f1[k] for k in ("f1", "threshold", "validation_f1")})
        results[percentage] = result
    return results


def run_gpnd_fold(
    pooled,
    inlier_class,
    fold,
    epochs,
    seed=0,
    percentages=GPND_OUTLIER_PERCENTAGES,
    verbose=0,
):
    """Train one model and evaluate it at every outlier percentage (:func:`evaluate_gpnd`)."""
    splits, training = gpnd_splits(pooled, inlier_class, fold, seed, percentages)
    model = experiment.train_one_class(training, epochs, seed=seed, verbose=verbose)
    return evaluate_gpnd(model, splits)


def mean_over_runs(runs):
    """Average ``run_gpnd_fold`` results over (class, fold) runs: {percentage: {kind: {auroc, f1}}}."""
    return {
        p: {
            name: {
                metric: float(np.mean([run[p][name][metric] for run in runs]))
                for metric in ("auroc", "f1")
            }
            for name in evaluation.score_kinds(runs[0][p])
        }
        for p in runs[0]
    }


# ---------------------------------------------------------------------- the protocol

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
        if not set(request.seeds) <= set(range(GPND_FOLDS)):
            raise ValueError(f"the GPND protocol has folds 0..{GPND_FOLDS - 1}")

    def runs(self):
        classes, folds = self.request.classes, self.request.seeds
        return {(c, f): {"inlier_class": c, "fold": f} for f in folds for c in classes}

    def load(self):
        splits = super().load()
        return datasets.concatenate(splits["train"], splits["test"])

    def run(self, loaded, key, train):
        """The fold seeds the network too."""
        inlier, fold = key
        splits, split = gpnd_splits(loaded, inlier, fold, seed=0)
        trained = train(split, fold)
        results = evaluate_gpnd(trained.model, splits)
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
