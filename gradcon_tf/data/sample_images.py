"""Write test-split images of a one-class task as PNG files, e.g. for the edge scorer.

    gradcon sample-images --data mnist:../shared/datasets/mnist --inlier-class 0 --count 16 --out shots

Files are named ``{index:04d}_{inlier|outlier}.png``, the first ``count`` images of the test set
of :func:`gradcon_tf.splits.one_class_split` (same seed, so the same split as in training).
"""

import os


def write_test_images(data_spec, inlier_class, count, out, seed=0):
    """Write the first ``count`` test images of the split to ``out``; returns how many."""
    from PIL import Image

    from gradcon_tf import data, splits

    datasets = data.load(data_spec)
    split = splits.one_class_split(datasets["train"], datasets["test"], inlier_class, seed=seed)
    os.makedirs(out, exist_ok=True)
    chosen = split.test[:count]
    for index, (image, is_anomaly) in enumerate(zip(chosen, split.test_is_anomaly)):
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        kind = "outlier" if is_anomaly else "inlier"
        Image.fromarray(pixels).save(os.path.join(out, f"{index:04d}_{kind}.png"))
    return len(chosen)
