"""Does the guarded recipe depend on MNIST's statistics? The same check on data that looks otherwise.

  python research/investigations/recipe_statistics_probe.py MNIST_DIR OUT.jsonl EPOCHS

Datasets built from MNIST: ``inverted`` (255 - x: white background, dark strokes; the release's
collapse would saturate at white) and ``rgb32`` (32x32x3: each digit in a random colour on a
random-colour background, mean intensity near 0.5 like CIFAR-10). For classes 1 and 4, seeds 0-4,
``train_one_class(initialization="guarded")``: which start trained (the release's draw, or a
restart after a blank one), whether the selected weights reconstruct blank, and the test AUROCs.
"""
import json, os, sys

import numpy as np
import tensorflow as tf

from gradcon_tf import callbacks, data, experiment, protocols
from gradcon_tf.data import LabeledImages


def inverted(images):
    return 255 - images


def rgb32(images, seed=0):
    rng = np.random.default_rng(seed)
    strokes = tf.image.resize(images.astype(np.float32) / 255.0, (32, 32)).numpy()
    background = rng.uniform(0, 1, size=(len(images), 1, 1, 3))
    ink = rng.uniform(0, 1, size=(len(images), 1, 1, 3))
    return np.round(255 * (background * (1 - strokes) + ink * strokes)).astype(np.uint8)


def main(mnist, out, epochs):
    mnist_splits = data.load(f"mnist:{mnist}")
    done = set()
    if os.path.exists(out):
        done = {(r["dataset"], r["class"], r["seed"]) for r in map(json.loads, open(out))}
    for name, transform in (("inverted", inverted), ("rgb32", rgb32)):
        splits = {k: LabeledImages(transform(v.images), v.labels) for k, v in mnist_splits.items()}
        for inlier in (1, 4):
            for seed in range(5):
                if (name, inlier, seed) in done:
                    continue
                split = protocols.one_class_split(splits["train"], splits["test"], inlier, seed=seed)
                model = experiment.train_one_class(split, int(epochs), seed=seed, verbose=0)
                result = experiment.evaluate_one_class(model, split)
                record = {
                    "dataset": name, "class": inlier, "seed": seed, "epochs": int(epochs),
                    "initialization": model.initialization,
                    "blank": callbacks.is_blank(model, split.validation),
                    "auroc": {k: round(result[k], 4) for k in ("score", "recon", "grad_loss")},
                }
                with open(out, "a") as f:
                    f.write(json.dumps(record) + "\n")
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
