"""The split every training recipe takes: normal images to train on and to hold out, and test
images with their truth (made by the paper's protocols, the folder workflow and ELPV's)."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class OneClassSplit:
    train: np.ndarray  # inlier images
    validation: np.ndarray  # held-out inlier images
    test: np.ndarray  # inliers then outliers, shuffled
    test_is_anomaly: np.ndarray  # bool, True for outliers
