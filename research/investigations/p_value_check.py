"""Conformal p-values on real data: the share of fresh normal images with p <= a, against a.

    python research/investigations/p_value_check.py --data mnist:../shared/datasets/mnist --classes 0,4,8 --epochs 3

One model per inlier class (the one-class protocol's split, seed 0): calibrate() on the held-out
validation images (normal), then score the inlier *test* images, never seen in training or
calibration. Under exchangeability P(p <= a) <= a. For one calibration set the share still varies with the
draw of the calibration images and of the test images: its standard deviation is about
sqrt(a (1 - a) (1 / n_calibration + 1 / n_test)) (``sd``); a share above a by several of these would
mean the p-values are not valid. (MNIST's test images come from other writers than its training
images, of which the calibration images are a part: exchangeability is approximate here.)
"""

import argparse
import json

import numpy as np

from gradcon_tf import data as datasets
from gradcon_tf import experiment, protocols

LEVELS = (0.01, 0.05, 0.1, 0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--classes", default="0,4,8")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    splits = datasets.load(args.data)
    for inlier in (int(c) for c in args.classes.split(",")):
        split = protocols.one_class_split(splits["train"], splits["test"], inlier, seed=0)
        model = experiment.train_one_class(split, args.epochs, seed=0, verbose=0)
        model.calibrate(split.validation, fpr=0.05)
        fresh = split.test[~np.asarray(split.test_is_anomaly, bool)]
        outputs = model.score(fresh)
        n = len(fresh)
        row = {
            "class": inlier,
            "calibration_images": len(model.calibration_scores),
            "fresh_normal_images": n,
            "share_p_at_or_below": {
                str(a): round(float(np.mean(outputs["p_value"] <= a)), 4) for a in LEVELS
            },
            "sd": {
                str(a): round(float(np.sqrt(a * (1 - a) * (1 / len(model.calibration_scores) + 1 / n))), 4)
                for a in LEVELS
            },
            "is_anomaly_rate_at_fpr_0.05": round(float(np.mean(outputs["is_anomaly"])), 4),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
