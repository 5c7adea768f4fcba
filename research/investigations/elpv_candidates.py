"""ELPV: what makes GradCon's scores separate defective solar cells from normal variation?

Each candidate trains GradCon (Eq. 6, the library's recipe: train_one_class, model selection on
validation loss) on functional cells and scores the held-out functional and the defective cells
(probability >= 2/3, and > 0; gradcon_tf.data.elpv). Every run also scores a PCA reconstruction
baseline on the same preprocessed pixels. Candidates are chosen on the *dev* half of each test
set (a seeded stratified half); the *test* half is reported and never used to choose.

Score parts, AUROC each: ``gradcon`` (recon + beta * grad_loss, the paper's score), ``recon``,
``grad`` (grad_loss alone), ``zsum`` (recon and grad_loss each standardised by the mean and std
of the validation cells' scores, then added: the score parts calibrated on normal images);
whole-image models also ``grad_map`` (the 99th percentile of the gradient map's pixels) and
``map_zsum`` (the 99th percentiles of the reconstruction and gradient maps, z-scored likewise,
added): where a defect is small, a high quantile of the map rather than the image's mean.

    python research/investigations/elpv_candidates.py --candidates s64n p32n --types mono poly \
        --seeds 0 --out research/investigations/elpv_candidates.jsonl

Resumable: runs already in --out are skipped. Single-threaded with --threads 1.
"""

import argparse
import json
import os
import sys
import time

#: Every candidate: working side, per-image normalisation, patch side (None: whole images),
#: flips augmentation, latent filters of a narrower bottleneck (None: the default network), and
#: alpha: "paper" (0.03, beta 4 alpha), "variance" (the same in units of the training images'
#: pixel variance: alpha = 0.03 * V / V_PAPER, beta 4 alpha) or a number (0: the plain CAE).
DEFAULTS = dict(
    side=64, normalise=False, patch=None, flips=False, latent_filters=None, alpha="paper",
    jitter=False, highpass=False,
)
CANDIDATES = {
    name: {**DEFAULTS, **changes}
    for name, changes in {
        "paper28": dict(side=28),
        "s64": dict(),
        "s64n": dict(normalise=True),
        "s128n": dict(side=128, normalise=True),
        "s64n-flips": dict(normalise=True, flips=True),
        "p32n": dict(side=128, normalise=True, patch=32),
        "p32": dict(side=128, patch=32),
        "p64n": dict(side=256, normalise=True, patch=64),
        "s64-b16": dict(latent_filters=16),
        "s64-b4": dict(latent_filters=4),
        "s64n-b16": dict(normalise=True, latent_filters=16),
        "s64n-b4": dict(normalise=True, latent_filters=4),
        "s128-b4": dict(side=128, latent_filters=4),
        "s64-cae": dict(alpha=0.0),
        "s64-v": dict(alpha="variance"),
        "s64n-v": dict(normalise=True, alpha="variance"),
        "s128-v": dict(side=128, alpha="variance"),
        "p32-v": dict(side=128, patch=32, alpha="variance"),
        "paper28-v": dict(side=28, alpha="variance"),
        "s64-b4-v": dict(latent_filters=4, alpha="variance"),
        "s64n-b4-v": dict(normalise=True, latent_filters=4, alpha="variance"),
        "s64-b4-cae": dict(latent_filters=4, alpha=0.0),
        "s128-b4-v": dict(side=128, latent_filters=4, alpha="variance"),
        "s64n-b4-v-flips": dict(normalise=True, latent_filters=4, alpha="variance", flips=True),
        # Normal variation as augmentation: each training cell once more with a random gain,
        # offset and gamma (jittered()).
        "s64-v-jitter": dict(alpha="variance", jitter=True),
        # Illumination removed: every image minus its Gaussian blur (high_passed()).
        "s64-v-hp": dict(alpha="variance", highpass=True),
        "s128-v-hp": dict(side=128, alpha="variance", highpass=True),
    }.items()
}
#: Mean over pixels of the pixel variance across images of one MNIST class (0.029-0.065; mean
#: of the ten classes' 2,000 first training images): the data the paper's alpha was set on.
V_PAPER = 0.054
PATCHES_PER_IMAGE = 8
MAP_PERCENTILE = 99
PATCH_STRIDE_FRACTION = 2  # patches at stride side / 2 when scoring
#: Local image scores from the maps: the mean of the top TOP_FRACTION of the map's pixels after a
#: Gaussian blur of MAP_BLUR_FRACTION * side (a small defect shows as a bright blob).
TOP_FRACTION = 0.01
MAP_BLUR_FRACTION = 1 / 32
#: jittered(): gain in [1 - J, 1 + J], offset in [-J / 2, J / 2], log-gamma in [-J, J].
JITTER = 0.2
#: high_passed(): the blur's sigma as a fraction of the side.
HIGHPASS_SIGMA_FRACTION = 1 / 16


def standardized(images):
    """Per-image normalisation: (x - mean) / (6 std) + 0.5, clipped to [0, 1] (float32)."""
    import numpy as np

    x = images.astype(np.float32) / 255.0
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    return np.clip(0.5 + (x - mean) / (6.0 * std + 1e-6), 0.0, 1.0).astype(np.float32)


def as_float(images):
    return images.astype("float32") / 255.0


def high_passed(images):
    """Illumination removed: 0.5 + x - GaussianBlur(x), sigma = side / 16, clipped to [0, 1]
    (uint8 images, or floats in [0, 1])."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    x = as_float(images) if images.dtype == np.uint8 else images
    sigma = images.shape[1] * HIGHPASS_SIGMA_FRACTION
    blurred = gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="reflect")
    return np.clip(0.5 + x - blurred, 0.0, 1.0).astype(np.float32)


def jittered(images, seed):
    """``images`` (float) followed by a copy with a random gain, offset and gamma per image."""
    import numpy as np

    rng = np.random.default_rng(seed + 104729)
    n = len(images)
    gain = rng.uniform(1 - JITTER, 1 + JITTER, (n, 1, 1, 1))
    offset = rng.uniform(-JITTER / 2, JITTER / 2, (n, 1, 1, 1))
    gamma = np.exp(rng.uniform(-JITTER, JITTER, (n, 1, 1, 1)))
    changed = np.clip(gain * images ** gamma + offset, 0.0, 1.0).astype(np.float32)
    return np.concatenate([images, changed])


def top_mean(maps):
    """Per image, the mean of the top TOP_FRACTION of the pixels of the blurred map."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    sigma = maps.shape[1] * MAP_BLUR_FRACTION
    blurred = gaussian_filter(maps.astype(np.float64), sigma=(0, sigma, sigma))
    flat = blurred.reshape(len(maps), -1)
    k = max(1, int(round(TOP_FRACTION * flat.shape[1])))
    return np.sort(flat, axis=1)[:, -k:].mean(axis=1)


def grid_patches(images, side):
    """(N, P, side, side, C): patches on a grid at stride side / 2 covering each image."""
    import numpy as np

    stride = side // PATCH_STRIDE_FRACTION
    starts = list(range(0, images.shape[1] - side + 1, stride))
    return np.stack(
        [images[:, r : r + side, c : c + side] for r in starts for c in starts], axis=1
    )


def random_patches(images, side, count, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    n, height = images.shape[0], images.shape[1]
    rows = rng.integers(0, height - side + 1, size=(n, count))
    cols = rng.integers(0, height - side + 1, size=(n, count))
    return np.stack(
        [images[i, r : r + side, c : c + side] for i in range(n) for r, c in zip(rows[i], cols[i])]
    )


def flipped(images):
    import numpy as np

    return np.concatenate([images, images[:, ::-1], images[:, :, ::-1], images[:, ::-1, ::-1]])


def score_parts(model, images, patch):
    """{"recon", "grad"} per image (max over patches for a patch model); for a whole-image model
    also the 99th percentile over the pixels of each anomaly map ("recon_map", "grad_map")."""
    import numpy as np

    if patch is None:
        out = model.score(images, batch_size=64, maps=True)
        return {
            "recon": out["recon"], "grad": out["grad_loss"],
            "recon_map": np.percentile(out["recon_map"], MAP_PERCENTILE, axis=(1, 2)),
            "grad_map": np.percentile(out["grad_map"], MAP_PERCENTILE, axis=(1, 2)),
            "recon_top": top_mean(out["recon_map"]), "grad_top": top_mean(out["grad_map"]),
        }
    patches = grid_patches(images, patch)
    n, p = patches.shape[:2]
    out = model.score(patches.reshape(n * p, *patches.shape[2:]), batch_size=512)
    return {"recon": out["recon"].reshape(n, p), "grad": out["grad_loss"].reshape(n, p)}


def combined(parts, validation_parts, beta):
    """Every score kind per image from per-image (or per-patch) recon and grad."""
    import numpy as np

    def z(key):
        reference = validation_parts[key]
        return (parts[key] - reference.mean()) / (reference.std() + 1e-12)

    kinds = {
        "gradcon": parts["recon"] + beta * parts["grad"],
        "recon": parts["recon"],
        "grad": parts["grad"],
        "zsum": z("recon") + z("grad"),
    }
    if "recon_map" in parts:  # the maps' 99th percentiles, each z-scored on validation, added
        kinds["map_zsum"] = z("recon_map") + z("grad_map")
        kinds["grad_map"] = parts["grad_map"]
        kinds["recon_top"] = parts["recon_top"]
        kinds["top_zsum"] = z("recon_top") + z("grad_top")
    return {k: (v.max(axis=1) if v.ndim == 2 else v) for k, v in kinds.items()}


def pca_scores(train, test, components=50):
    """PCA reconstruction error of flattened pixels (the independent baseline)."""
    import numpy as np
    from sklearn.decomposition import PCA

    x_train, x_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    pca = PCA(min(components, len(x_train) - 1), random_state=0).fit(x_train)
    return np.mean((pca.inverse_transform(pca.transform(x_test)) - x_test) ** 2, axis=1)


def dev_half(is_anomaly, seed):
    """A seeded stratified half of the test set (True = dev) for choosing among candidates."""
    import numpy as np

    rng = np.random.default_rng(seed + 7919)
    dev = np.zeros(len(is_anomaly), bool)
    for label in (False, True):
        index = rng.permutation(np.flatnonzero(is_anomaly == label))
        dev[index[: len(index) // 2]] = True
    return dev


def alpha_of(train, alpha):
    """The candidate's alpha for these (float) training images."""
    if alpha == "paper":
        return 0.03
    if alpha == "variance":
        return 0.03 * float(train.var(axis=0).mean()) / V_PAPER
    return float(alpha)


def trained(train, validation, epochs, seed, latent_filters, alpha):
    """train_one_class's run (seed, build, compile, fit with KeepBestWeights), the network's
    bottleneck narrowed to ``latent_filters`` when given; beta = 4 alpha (0.12 for the CAE)."""
    import keras

    from gradcon_tf import GradCon, networks
    from gradcon_tf.callbacks import KeepBestWeights

    keras.utils.set_random_seed(seed)
    shape = train.shape[1:]
    nets = {}
    if latent_filters is not None:
        size = networks.working_size(shape)
        nets = {
            "encoder": networks.build_encoder(shape[-1], size, latent_filters),
            "decoder": networks.build_decoder(shape[-1], size, latent_filters),
        }
    beta = 4 * alpha if alpha > 0 else 0.12
    model = GradCon(input_shape=shape, alpha=alpha, beta=beta, **nets)
    model.compile()
    model.fit(train, validation_data=validation, epochs=epochs, batch_size=64,
              callbacks=[KeepBestWeights()], verbose=0)
    return model


def run(candidate, module_type, seed, epochs, cells_by_size):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from gradcon_tf.data import elpv

    settings = CANDIDATES[candidate]
    side, normalise, patch = settings["side"], settings["normalise"], settings["patch"]
    prepare = standardized if normalise else high_passed if settings["highpass"] else as_float
    results = {}
    for defective in elpv.DEFECT_CRITERIA:
        split = elpv.elpv_one_class_split(cells_by_size(side), module_type, seed, defective)
        train, validation, test = (prepare(a) for a in (split.train, split.validation, split.test))
        if defective == ">=2/3":  # train once, on the same training cells for both test sets
            fit_train, fit_validation = train, validation
            if patch is not None:
                fit_train = random_patches(train, patch, PATCHES_PER_IMAGE, seed)
                fit_validation = random_patches(validation, patch, PATCHES_PER_IMAGE, seed + 1)
            if settings["flips"]:
                fit_train = flipped(fit_train)
            if settings["jitter"]:
                fit_train = jittered(fit_train, seed)
            alpha = alpha_of(fit_train, settings["alpha"])
            started = time.perf_counter()
            model = trained(fit_train, fit_validation, epochs, seed, settings["latent_filters"], alpha)
            train_seconds = time.perf_counter() - started
            validation_parts = score_parts(model, validation, patch)
        kinds = combined(score_parts(model, test, patch), validation_parts, model.beta)
        kinds["pca"] = pca_scores(train, test)
        dev = dev_half(split.test_is_anomaly, seed)
        labels = split.test_is_anomaly
        results[defective] = {
            part: {
                "dev": float(roc_auc_score(labels[dev], scores[dev])),
                "test": float(roc_auc_score(labels[~dev], scores[~dev])),
            }
            for part, scores in kinds.items()
        }
    return {
        "candidate": candidate, "module_type": module_type, "seed": seed, "epochs": epochs,
        "alpha": model.alpha, "beta": model.beta, "train_images": int(len(split.train)), "train_seconds": round(train_seconds, 1),
        "selected_epoch": model.selected_epoch, "collapsed_starts": model.collapsed_starts,
        "auroc": results,
    }


def use_threads(threads):
    """TensorFlow on ``threads`` threads (0: its default); before TensorFlow loads."""
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def finished_runs(path, fields):
    """The ``fields`` tuples of the records already in the JSON-lines file ``path``."""
    if not os.path.exists(path):
        return set()
    return {tuple(json.loads(line)[f] for f in fields) for line in open(path) if line.strip()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES, required=True)
    parser.add_argument("--types", nargs="+", default=["mono", "poly", "both"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    use_threads(args.threads)
    from gradcon_tf.data import elpv

    done = finished_runs(args.out, ("candidate", "module_type", "seed", "epochs"))
    cache = {}

    def cells_by_size(side):
        if side not in cache:
            cache[side] = elpv.load_elpv(side)
        return cache[side]

    for candidate in args.candidates:
        for module_type in args.types:
            for seed in args.seeds:
                if (candidate, module_type, seed, args.epochs) in done:
                    continue
                record = run(candidate, module_type, seed, args.epochs, cells_by_size)
                with open(args.out, "a") as out:
                    out.write(json.dumps(record) + "\n")
                shown = {k: round(v["test"], 3) for k, v in record["auroc"][">=2/3"].items()}
                print(candidate, module_type, seed, record["train_seconds"], shown, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
