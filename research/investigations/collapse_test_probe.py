"""What a collapse looks like on varied data: the release's initialisation trained without any
guard, with the candidate collapse statistics recorded after every epoch.

For each run (dataset, inlier class, seed) the one-class split is made, GradCon is built with the
release's initialisation (PyTorch's draw, no output bias from data), trained ``--epochs`` epochs
with no guard, and after epoch 0 (the initial weights) and every epoch the statistics below are
computed on the validation images (at most 512). One JSON line per run is appended to ``--out``
(resumable: finished runs are skipped).

Statistics (``stats[e]`` after epoch e):
  recon       mean squared error of the reconstructions
  variation   mean over pixels of the std over images of the output / the same of the input
              (0: the output does not depend on the image)
  slope       mean of y (1 - y) over the outputs y (the sigmoid's derivative; 0: saturated)
  *_max       the same with the max over pixels in place of the mean (recorded from the
              MNIST seed-1 runs on)
  kernel_grad ||dL/dphi|| / ||phi|| of the decoder kernels (recon loss of the validation batch)
  old_blank   callbacks.is_blank, the guard's test until now
At the end: test AUROC of the GradCon score, the reconstruction error and the gradient loss.

    python research/investigations/collapse_test_probe.py --datasets digits elpv --out DIR/x.jsonl
"""

import argparse
import json
import os
import sys

DATASETS = (
    "mnist", "mnist4", "mnist4-first", "digits", "elpv", "thin", "thin-bright", "inverted",
    "colour", "photos",
)


def _mnist(root):
    from gradcon_tf import data

    return data.load(f"mnist:{root}")


def _capped(split, cap, seed):
    import numpy as np

    if len(split.train) <= cap:
        return split
    keep = np.random.default_rng(seed).permutation(len(split.train))[:cap]
    split.train = split.train[np.sort(keep)]
    return split


def _transformed_mnist(root, transform, cap):
    """MNIST one-class splits with every image passed through ``transform`` (uint8 in, out)."""
    from gradcon_tf import protocols

    dataset = _mnist(root)
    for part in ("train", "test"):
        dataset[part].images = transform(dataset[part].images)

    def make(inlier, seed):
        return _capped(protocols.one_class_split(dataset["train"], dataset["test"], inlier, seed), cap, seed)

    return make


def thin_strokes(images):
    """Eroded (2x2 minimum) and dimmed to 35 %: thin, faint strokes on black."""
    import numpy as np
    from scipy import ndimage

    eroded = ndimage.grey_erosion(images[..., 0], size=(1, 2, 2))
    return np.round(eroded * 0.35).astype(np.uint8)[..., None]


def thin_bright_strokes(images):
    """Eroded (2x2 minimum), at full brightness: thin bright strokes on black."""
    from scipy import ndimage

    return ndimage.grey_erosion(images[..., 0], size=(1, 2, 2))[..., None]


def inverted(images):
    return 255 - images


def coloured(images):
    """RGB: the digit in a random bright colour on a random dark one, per image (seeded)."""
    import numpy as np

    rng = np.random.default_rng(1234)
    gray = images.astype(np.float32) / 255.0
    ink = rng.uniform(0.5, 1.0, (len(images), 1, 1, 3))
    paper = rng.uniform(0.0, 0.35, (len(images), 1, 1, 3))
    rgb = paper + (ink - paper) * gray
    return np.round(255 * rgb).astype(np.uint8)


def elpv_splits(size=64):
    """ELPV cells, one-class: functional cells (probability 0) of a module type; test = held-out
    functional cells (25 %) + the defective ones (probability >= 2/3). Inlier 0 mono, 1 poly,
    2 both."""
    import numpy as np
    from PIL import Image

    import elpv_dataset
    from gradcon_tf import protocols

    root = os.path.join(elpv_dataset.__path__[0], "data")
    rows = [line.split() for line in open(os.path.join(root, "labels.csv")) if line.strip()]
    images = np.stack(
        [np.asarray(Image.open(os.path.join(root, r[0])).convert("L").resize((size, size), Image.BILINEAR)) for r in rows]
    )[..., None]
    probability = np.array([float(r[1]) for r in rows])
    kind = np.array([r[2] for r in rows])

    def make(inlier, seed):
        chosen = {0: kind == "mono", 1: kind == "poly", 2: np.ones(len(kind), bool)}[inlier]
        rng = np.random.default_rng(seed)
        normal = rng.permutation(np.flatnonzero(chosen & (probability == 0)))
        defective = np.flatnonzero(chosen & (probability >= 2 / 3))
        n_test = len(normal) // 4
        n_val = max(1, round(0.1 * (len(normal) - n_test)))
        test = np.concatenate([normal[:n_test], defective])
        return protocols.OneClassSplit(
            train=images[normal[n_test + n_val :]],
            validation=images[normal[n_test : n_test + n_val]],
            test=images[test],
            test_is_anomaly=np.arange(len(test)) >= n_test,
        )

    return make


def photo_splits(size=32, per_image=1500):
    """RGB patches of scikit-learn's two sample photographs: inlier 0 = china.jpg's patches
    (outliers: flower.jpg's), inlier 1 the reverse."""
    import numpy as np
    from sklearn.datasets import load_sample_images

    from gradcon_tf import protocols

    photos = load_sample_images().images

    def patches(photo, count, rng):
        rows = rng.integers(0, photo.shape[0] - size, count)
        cols = rng.integers(0, photo.shape[1] - size, count)
        return np.stack([photo[r : r + size, c : c + size] for r, c in zip(rows, cols)])

    def make(inlier, seed):
        rng = np.random.default_rng(seed)
        own, other = photos[inlier], photos[1 - inlier]
        train = patches(own, per_image, rng)
        test_in, test_out = patches(own, 500, rng), patches(other, 500, rng)
        order = rng.permutation(1000)
        return protocols.OneClassSplit(
            train=train[150:],
            validation=train[:150],
            test=np.concatenate([test_in, test_out])[order],
            test_is_anomaly=(np.arange(1000) >= 500)[order],
        )

    return make


def runs(name, mnist_root):
    """[(inlier, seed, epochs)], split maker."""
    from gradcon_tf import protocols

    if name in ("mnist", "mnist4", "mnist4-first"):
        dataset = _mnist(mnist_root)

        def make(inlier, seed):
            return protocols.one_class_split(dataset["train"], dataset["test"], inlier, seed)

        if name == "mnist":  # 20-epoch outcome: docs/results/mnist-release-init (same runs)
            return [(c, s, 3) for s in range(3) for c in range(10)], make
        if name == "mnist4-first":  # the guard's two epochs only, to compare the decisions
            return [(4, s, 2) for s in range(3, 30)], make
        return [(4, s, 20) for s in range(3, 30)], make
    if name == "digits":
        from gradcon_tf import data

        digits = data.load("digits")

        def make(inlier, seed):
            return protocols.one_class_split(digits["train"], digits["test"], inlier, seed)

        return [(c, s, 20) for s in range(3) for c in range(10)], make
    if name == "elpv":
        return [(c, s, 20) for s in range(3) for c in range(3)], elpv_splits()
    if name == "photos":
        return [(c, s, 20) for s in range(3) for c in range(2)], photo_splits()
    transform = {
        "thin": thin_strokes, "thin-bright": thin_bright_strokes, "inverted": inverted,
        "colour": coloured,
    }[name]
    return [(c, 0, 20) for c in range(10)], _transformed_mnist(mnist_root, transform, cap=2000)


def statistics(model, images):
    import numpy as np
    import tensorflow as tf

    from gradcon_tf import callbacks, gradients

    images = images[:512]
    x = np.asarray(model.preprocess(images))
    kernels = [k.value for k in model.constrained_kernels]
    with tf.GradientTape() as tape:
        tape.watch(kernels)
        y_tensor = model(images)
        loss = tf.reduce_mean(
            gradients.per_sample_reconstruction_error(tf.constant(x), y_tensor, "mse")
        )
    grads = tape.gradient(loss, kernels)
    y = y_tensor.numpy()
    return {
        "recon": float(np.mean((y - x) ** 2)),
        "variation": float(y.std(axis=0).mean() / max(x.std(axis=0).mean(), 1e-12)),
        "slope": float(np.mean(y * (1 - y))),
        "variation_max": float(y.std(axis=0).max() / max(x.std(axis=0).max(), 1e-12)),
        "slope_max": float(np.mean(y * (1 - y), axis=0).max()),
        "kernel_grad": [
            float(tf.norm(g) / tf.norm(k)) for g, k in zip(grads, kernels)
        ],
        "old_blank": bool(callbacks.is_blank(model, images)),
        "out_range": [float(y.min()), float(y.max())],
        "in_range": [float(x.min()), float(x.max())],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, required=True)
    parser.add_argument("--mnist", default="../shared/datasets/mnist")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs=2, metavar=("FIRST", "LAST"),
                        help="only the runs with FIRST <= seed <= LAST (to split a dataset)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from gradcon_tf import experiment
    from gradcon_tf.model import GradCon

    done = set()
    if os.path.exists(args.out):
        done = {(r["dataset"], r["inlier"], r["seed"]) for r in map(json.loads, open(args.out))}

    class Recorder(keras.callbacks.Callback):
        def __init__(self, images):
            super().__init__()
            self.images, self.stats = images, []

        def on_train_begin(self, logs=None):
            self.stats.append(statistics(self.model, self.images))

        def on_epoch_end(self, epoch, logs=None):
            self.stats.append({**statistics(self.model, self.images), "val_loss": float(logs["val_loss"])})

    for name in args.datasets:
        todo, make = runs(name, args.mnist)
        for inlier, seed, epochs in todo:
            if (name, inlier, seed) in done:
                continue
            if args.seeds and not args.seeds[0] <= seed <= args.seeds[1]:
                continue
            split = make(inlier, seed)
            keras.utils.set_random_seed(seed)
            model = GradCon(input_shape=split.train.shape[1:], output_bias_from_data=False)
            model.compile()
            recorder = Recorder(split.validation)
            model.fit(
                split.train, validation_data=split.validation, epochs=epochs, batch_size=64,
                callbacks=[recorder], verbose=0,
            )
            result = experiment.evaluate_one_class(model, split)
            record = {
                "dataset": name, "inlier": inlier, "seed": seed, "epochs": epochs,
                "sizes": [len(split.train), len(split.validation), len(split.test)],
                "auroc": {"gradcon": result["score"], "recon": result["recon"], "grad": result["grad_loss"]},
                "stats": recorder.stats,
            }
            with open(args.out, "a") as stream:
                stream.write(json.dumps(record) + "\n")
            s = recorder.stats
            print(name, inlier, seed, "auroc %.3f grad %.3f" % (result["score"], result["grad_loss"]),
                  "var e1 %.3f e2 %.3f end %.3f" % (s[1]["variation"], s[min(2, epochs)]["variation"], s[-1]["variation"]),
                  "old", [x["old_blank"] for x in s[1:3]], flush=True)
            keras.backend.clear_session()


if __name__ == "__main__":
    sys.exit(main())
