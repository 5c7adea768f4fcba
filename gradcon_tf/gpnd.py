"""The GPND experiment (Fashion-MNIST, Table 5): one model per (inlier class, fold), five
outlier percentages each.

The training set of :func:`gradcon_tf.protocols.gpnd_split` does not depend on the outlier
percentage, so one model per (class, fold) serves all five: it is trained on the class's three
training folds, selected by the loss on the validation fold's *inliers* (outliers are unknown at
training time), then for each percentage the threshold is the one that maximises F1 on that
percentage's validation set and the test set gives AUROC and F1 (GPND's procedure).
"""

import numpy as np

from gradcon_tf import evaluation, experiment, protocols


def gpnd_splits(pooled, inlier_class, fold, seed=0, percentages=protocols.GPND_OUTLIER_PERCENTAGES):
    """{percentage: GPNDSplit} and the split the model trains on (validation: inliers only)."""
    splits = {
        p: protocols.gpnd_split(pooled, inlier_class, fold, p, seed=seed) for p in percentages
    }
    first = splits[percentages[0]]
    training = protocols.OneClassSplit(
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
            f1 = protocols.gpnd_evaluate(
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
    percentages=protocols.GPND_OUTLIER_PERCENTAGES,
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
