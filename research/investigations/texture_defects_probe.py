"""A mask-bearing proxy for industrial inspection: small synthetic defects on real textures.

ELPV (elpv_candidates.py) has real defects but no masks, and its defects are mostly large. The
held-out industrial benchmark GradCon is judged on has small local defects (holes, cracks,
frays, uneven areas) on grayscale textured surfaces under varying illumination, with pixel
masks. This probe builds such a set from the real textures scikit-image bundles (brick, grass,
gravel: 512x512 photographs): 128x128 crops, the left half of the photograph for training and
validation, the right half for the test, each crop under a random gain and a linear
illumination gradient; half of the test crops get one synthetic defect with its mask (a dark
hole, a dark crack, a bright fray, an uneven bump). The defects are synthetic, so this is a
proxy: it tells whether a score *can* find a small local defect at the working resolution,
not how well it finds real ones.

Each candidate trains GradCon (Eq. 6, data loss weights, model selection on validation loss)
and reports the image AUROC of the global scores (GradCon, recon, grad: the image's mean, as
the paper scores), of local scores from the anomaly maps (the mean of the top 1 % of the
blurred map, ``*_top``; ``top_zsum``: recon_top and grad_top z-scored on the validation crops
and added), the pixel AUROC of each map, and a PCA reconstruction baseline (image level).

    pip install scikit-image   # the textures
    python research/investigations/texture_defects_probe.py --candidates w128 w128-hp \
        --textures brick grass gravel --seeds 0 --out research/investigations/texture_defects.jsonl

Resumable: runs already in --out are skipped. ``--threads 1``: single-threaded. The table:
``python research/investigations/texture_defects_probe.py --table research/investigations/texture_defects*.jsonl``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elpv_candidates import (  # noqa: E402
    finished_runs, high_passed, pca_scores, top_mean, use_threads,
)

CROP = 128
COUNTS = {"train": 500, "validation": 50, "test_normal": 100, "test_defective": 100}
DEFECTS = ("hole", "crack", "fray", "uneven")
#: Candidates: high-pass the crops (illumination removed) or not; epochs.
CANDIDATES = {
    "w128": dict(highpass=False),
    "w128-hp": dict(highpass=True),
}


def texture(name):
    import skimage.data

    return getattr(skimage.data, name)().astype(np.float32) / 255.0


def crops(photo, count, columns, rng):
    """``count`` random CROP x CROP crops of ``photo`` within ``columns`` (start, stop), each
    under a random gain in [0.75, 1.25] and a linear illumination gradient of up to +-20 %."""
    height = photo.shape[0]
    out = np.empty((count, CROP, CROP), np.float32)
    ramp = np.linspace(-0.5, 0.5, CROP, dtype=np.float32)
    for i in range(count):
        r = rng.integers(0, height - CROP + 1)
        c = rng.integers(columns[0], columns[1] - CROP + 1)
        gain = rng.uniform(0.75, 1.25)
        a, b = rng.uniform(-0.4, 0.4, 2)
        light = gain * (1 + a * ramp[:, None] + b * ramp[None, :])
        out[i] = np.clip(photo[r : r + CROP, c : c + CROP] * light, 0, 1)
    return out


def with_defect(image, kind, rng):
    """``image`` with one synthetic defect of ``kind`` at a random place, and its mask."""
    y, x = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    cy, cx = rng.uniform(16, CROP - 16, 2)
    changed = image.copy()
    if kind in ("hole", "fray"):
        ry, rx = rng.uniform(2.5, 7, 2)
        mask = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        changed[mask] = image[mask] * 0.35 if kind == "hole" else np.minimum(image[mask] + 0.35, 1)
    elif kind == "crack":
        mask = np.zeros((CROP, CROP), bool)
        angle = rng.uniform(0, np.pi)
        py, px = cy, cx
        for _ in range(int(rng.integers(25, 50))):
            angle += rng.normal(0, 0.3)
            py, px = py + np.sin(angle), px + np.cos(angle)
            iy, ix = int(round(py)), int(round(px))
            mask[max(iy - 1, 0) : iy + 1, max(ix - 1, 0) : ix + 1] = True
        changed[mask] = image[mask] * 0.4
    else:  # uneven: a smooth dark bump
        sigma = rng.uniform(6, 12)
        bump = 0.3 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
        changed = image * (1 - bump)
        mask = bump > 0.06
    return np.clip(changed, 0, 1), mask


def dataset(name, seed):
    """{"train", "validation", "test", "test_is_anomaly", "masks", "kinds"} of texture ``name``."""
    rng = np.random.default_rng(seed)
    photo = texture(name)
    half = photo.shape[1] // 2
    train = crops(photo, COUNTS["train"] + COUNTS["validation"], (0, half), rng)
    normal = crops(photo, COUNTS["test_normal"], (half, photo.shape[1]), rng)
    base = crops(photo, COUNTS["test_defective"], (half, photo.shape[1]), rng)
    kinds = [DEFECTS[i % len(DEFECTS)] for i in range(len(base))]
    defective, masks = zip(*(with_defect(image, kind, rng) for image, kind in zip(base, kinds)))
    test = np.concatenate([normal, np.stack(defective)])
    all_masks = np.concatenate([np.zeros_like(normal, bool), np.stack(masks)])
    return {
        "train": train[COUNTS["validation"] :, ..., None],
        "validation": train[: COUNTS["validation"], ..., None],
        "test": test[..., None],
        "test_is_anomaly": np.r_[np.zeros(len(normal), bool), np.ones(len(base), bool)],
        "masks": all_masks,
        "kinds": np.array(["normal"] * len(normal) + kinds),
    }


def run(candidate, name, seed, epochs):
    import keras
    from sklearn.metrics import roc_auc_score

    from gradcon_tf import GradCon, loss_weights
    from gradcon_tf.callbacks import KeepBestWeights

    data = dataset(name, seed)
    if CANDIDATES[candidate]["highpass"]:
        for key in ("train", "validation", "test"):
            data[key] = high_passed(data[key])
    keras.utils.set_random_seed(seed)
    weights = loss_weights.loss_weights("data", data["train"])
    model = GradCon(input_shape=data["train"].shape[1:], **weights)
    model.compile()
    started = time.perf_counter()
    model.fit(data["train"], validation_data=data["validation"], epochs=epochs, batch_size=64,
              callbacks=[KeepBestWeights()], verbose=0)
    train_seconds = time.perf_counter() - started
    out = model.score(data["test"], batch_size=64, maps=True)
    reference = model.score(data["validation"], batch_size=64, maps=True)

    def z(values, key):
        return (values - reference[key].mean()) / (reference[key].std() + 1e-12)

    for scores in (out, reference):
        scores["recon_top"] = top_mean(scores["recon_map"])
        scores["grad_top"] = top_mean(scores["grad_map"])
        scores["score_top"] = top_mean(scores["score_map"])
    kinds = {
        "gradcon": out["score"], "recon": out["recon"], "grad": out["grad_loss"],
        "recon_top": out["recon_top"], "grad_top": out["grad_top"], "score_top": out["score_top"],
        "zsum": z(out["recon"], "recon") + z(out["grad_loss"], "grad_loss"),
        "top_zsum": z(out["recon_top"], "recon_top") + z(out["grad_top"], "grad_top"),
        "pca": pca_scores(data["train"], data["test"]),
    }
    labels = data["test_is_anomaly"]
    image = {k: float(roc_auc_score(labels, v)) for k, v in kinds.items()}
    per_defect = {
        defect: {k: float(roc_auc_score(labels[chosen], v[chosen])) for k, v in kinds.items()}
        for defect in DEFECTS
        for chosen in [(data["kinds"] == defect) | ~labels]
    }
    masks = data["masks"].ravel()
    pixel = {
        m: float(roc_auc_score(masks, out[m].ravel())) for m in ("recon_map", "grad_map", "score_map")
    }
    return {
        "candidate": candidate, "texture": name, "seed": seed, "epochs": epochs,
        "alpha": model.alpha, "train_seconds": round(train_seconds, 1),
        "selected_epoch": model.selected_epoch, "image_auroc": image,
        "image_auroc_by_defect": per_defect, "pixel_auroc": pixel,
    }


#: The table's columns: (record part, key, heading).
TABLE_COLUMNS = (
    ("image_auroc", "gradcon", "GradCon (mean)"), ("image_auroc", "recon", "recon"),
    ("image_auroc", "grad", "grad"), ("image_auroc", "score_top", "local: score map"),
    ("image_auroc", "grad_top", "local: grad map"), ("image_auroc", "recon_top", "local: recon map"),
    ("image_auroc", "pca", "PCA"), ("pixel_auroc", "score_map", "pixel: score map"),
    ("pixel_auroc", "recon_map", "pixel: recon map"), ("pixel_auroc", "grad_map", "pixel: grad map"),
)


def table(paths):
    """Markdown: one row per record of the ``paths`` (JSON lines), image and pixel AUROCs."""
    records = [json.loads(line) for path in paths for line in open(path) if line.strip()]
    records.sort(key=lambda r: (r["texture"], r["candidate"], r["seed"]))
    lines = [
        "| texture | candidate | seed | epochs | " + " | ".join(c[2] for c in TABLE_COLUMNS) + " |",
        "|---" * (4 + len(TABLE_COLUMNS)) + "|",
    ]
    for r in records:
        cells = " | ".join(f"{r[part][key]:.3f}" for part, key, _ in TABLE_COLUMNS)
        lines.append(f"| {r['texture']} | {r['candidate']} | {r['seed']} | {r['epochs']} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", nargs="+", metavar="JSONL",
                        help="print the Markdown table of these records and stop")
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES)
    parser.add_argument("--textures", nargs="+", default=["brick", "grass", "gravel"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(table(args.table))
        return 0
    if not args.candidates or not args.out:
        parser.error("--candidates and --out are required (unless --table)")
    use_threads(args.threads)
    done = finished_runs(args.out, ("candidate", "texture", "seed", "epochs"))
    for seed in args.seeds:
        for name in args.textures:
            for candidate in args.candidates:
                if (candidate, name, seed, args.epochs) in done:
                    continue
                record = run(candidate, name, seed, args.epochs)
                with open(args.out, "a") as out:
                    out.write(json.dumps(record) + "\n")
                shown = {k: round(v, 3) for k, v in record["image_auroc"].items()}
                print(candidate, name, seed, record["train_seconds"], shown,
                      {k: round(v, 3) for k, v in record["pixel_auroc"].items()}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
