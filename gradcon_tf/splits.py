"""The split every training recipe takes: normal images to train on and to hold out, and test
images with their truth (made by the paper's protocols, the folder workflow and ELPV's); and the
paper's one-class split (MNIST, CIFAR-10; OCGAN's, Sec. 5): the inlier class of the train split
is the training set, 10% of it held out for validation; the test set is every inlier test image
plus as many outliers drawn at random from the other classes."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class OneClassSplit:
    train: np.ndarray  # inlier images
    validation: np.ndarray  # held-out inlier images
    test: np.ndarray  # inliers then outliers, shuffled
    test_is_anomaly: np.ndarray  # bool, True for outliers


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
