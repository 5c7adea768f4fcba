"""Evaluation protocols of the paper (Sec. 5).

One-class protocol (MNIST, CIFAR-10; OCGAN's): the inlier class of the train split is the training
set, 10% of it held out for validation; the test set is every inlier test image plus as many
outliers drawn at random from the other classes.

GPND protocol (Fashion-MNIST): train + test pooled, 5 class-stratified folds, 60/20/20
train/validation/test, validation and test sets with 10..50 % outliers; AUROC, and F1 at the
threshold chosen on validation.

Abnormal conditions (CURE-TSR): clean images are the inliers, the same images under a challenge
(type, level) the outliers; on the real CURE-TSR folders or synthesised on any images.
"""

import dataclasses

import numpy as np

from gradcon_tf.splits import OneClassSplit


def one_class_split(train, test, inlier_class, seed=0, validation_fraction=0.1):
    """The paper's one-class split of ``train``/``test`` (LabeledImages) for ``inlier_class``."""
    rng = np.random.default_rng(seed)
    inliers = rng.permutation(np.flatnonzero(train.labels == inlier_class))
    if len(inliers) < 2:
        raise ValueError(f"class {inlier_class} has {len(inliers)} training images; need 2+.")
    n_validation = max(1, int(round(validation_fraction * len(inliers))))
    test_inliers = np.flatnonzero(test.labels == inlier_class)
    candidates = np.flatnonzero(test.labels != inlier_class)
    if len(candidates) < len(test_inliers):
        raise ValueError("not enough outliers in the test split for a balanced test set.")
    test_outliers = rng.choice(candidates, size=len(test_inliers), replace=False)
    order = rng.permutation(2 * len(test_inliers))
    test_index = np.concatenate([test_inliers, test_outliers])[order]
    is_anomaly = np.concatenate(
        [np.zeros(len(test_inliers), bool), np.ones(len(test_outliers), bool)]
    )
    return OneClassSplit(
        train=train.images[inliers[n_validation:]],
        validation=train.images[inliers[:n_validation]],
        test=test.images[test_index],
        test_is_anomaly=is_anomaly[order],
    )


# ---------------------------------------------------------------------- GPND (Fashion-MNIST)

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


# ---------------------------------------------------------------------- abnormal conditions


def abnormal_condition_split(
    clean_train, clean_test, challenge, level, seed=0, validation_fraction=0.1
):
    """The CURE-TSR protocol on synthetic challenges: clean images are the inliers.

    Train on ``clean_train`` (images, any labels ignored) with ``validation_fraction`` held out;
    test = every ``clean_test`` image (inlier) plus the same images under ``challenge`` at
    ``level`` (outliers), made by :func:`gradcon_tf.data.challenges.apply_challenge`.
    """
    from gradcon_tf.data.challenges import apply_challenge

    challenged = apply_challenge(clean_test, challenge, level, seed=seed)
    return _clean_vs_challenged(clean_train, clean_test, challenged, seed, validation_fraction)


def cure_tsr_split(train, test, challenge, level, seed=0, validation_fraction=0.1):
    """The paper's CURE-TSR protocol on the real data (:class:`gradcon_tf.data.cure_tsr.CureTSR`).

    Train on the challenge-free training images; test on the challenge-free test images
    (inliers) and the test images of ``challenge`` at ``level`` (outliers).
    """
    clean_test = test.challenge_free()
    challenged = test.condition(challenge, level)
    if len(challenged) == 0:
        raise ValueError(f"no test images of {challenge} at level {level}.")
    return _clean_vs_challenged(
        train.challenge_free().images,
        clean_test.images,
        challenged.images,
        seed,
        validation_fraction,
    )


def _clean_vs_challenged(clean_train, clean_test, challenged, seed, validation_fraction):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clean_train))
    n_validation = max(1, int(round(validation_fraction * len(clean_train))))
    test = np.concatenate([clean_test, challenged])
    is_anomaly = np.concatenate([np.zeros(len(clean_test), bool), np.ones(len(challenged), bool)])
    shuffle = rng.permutation(len(test))
    return OneClassSplit(
        train=clean_train[order[n_validation:]],
        validation=clean_train[order[:n_validation]],
        test=test[shuffle],
        test_is_anomaly=is_anomaly[shuffle],
    )
