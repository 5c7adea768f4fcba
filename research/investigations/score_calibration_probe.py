"""Calibrating GradCon's score parts on normal images: which combination separates defects?

One GradCon model per (data, seed), trained as the library does (Eq. 6, data loss weights,
model selection on validation loss); then every score below is computed from the same test and
validation scores, each calibrated on the *validation* images only (normal, never tested):

* ``gradcon``, ``recon``, ``grad``: the paper's score (recon + beta * grad_loss) and its parts.
* ``zsum``: recon and grad_loss z-scored by the validation images' mean and std, added.
* ``zlayers``: recon and each decoder layer's gradient term (minus its cosine) z-scored alike,
  added: the per-layer gradient terms with equal weight in units of their normal spread.
* ``maha``: the Mahalanobis distance of (recon, minus each layer's cosine) to the validation
  images' (Ledoit-Wolf covariance): the parts' correlations on normal images used as well.
* ``pz_*``: per-pixel calibration of the maps: each pixel of the recon and grad maps minus the
  validation maps' mean at that pixel, over their std there (both smoothed by a Gaussian of
  sigma side / 32; the std floored at a tenth of its mean), so a place where normal images
  always reconstruct badly (an edge, a busbar) stops counting; ``pz_recon``, ``pz_grad``,
  ``pz_sum`` (their sum): the image's local score of that map (mean of the top 1 % of the
  blurred map); ``pz_sum_mean``: the mean of the summed map.
* ``pca``: the independent PCA reconstruction baseline on the same pixels.

ELPV (``--data elpv-mono``, ``elpv-poly``, ``elpv-both``; 64 px, as the protocol): AUROC against
defect probability >= 2/3 and > 0 on the seeded dev and test halves (elpv_candidates.dev_half).
Textures (``--data brick`` ...; texture_defects_probe's set, 128 px, illumination removed with
``--highpass``): image AUROC and pixel AUROC of the maps.

    python research/investigations/score_calibration_probe.py --data elpv-mono elpv-poly \
        --seeds 0 1 2 --threads 1 --out research/investigations/score_calibration.jsonl

Resumable (runs already in --out are skipped). ``--table JSONL...`` prints the tables.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elpv_candidates import (  # noqa: E402
    as_float, dev_half, high_passed, pca_scores, top_mean, use_threads,
)

ELPV_SIDE = 64
STATS_BLUR_FRACTION = 1 / 32
STD_FLOOR = 0.1
BATCH = 64


def pixel_stats(maps):
    """(mean, std) maps of the calibration maps (N, H, W), each smoothed; std floored."""
    from scipy.ndimage import gaussian_filter

    sigma = maps.shape[1] * STATS_BLUR_FRACTION
    maps = maps.astype(np.float64)
    mean = gaussian_filter(maps.mean(axis=0), sigma, mode="reflect")
    square = gaussian_filter((maps ** 2).mean(axis=0), sigma, mode="reflect")
    std = np.sqrt(np.maximum(square - mean ** 2, 0.0))
    return mean, np.maximum(std, STD_FLOOR * std.mean() + 1e-12)


def score_kinds(out, reference):
    """{kind: (N,) scores}, and {map kind: (N, H, W)} of the test scores ``out``, calibrated on
    the validation scores ``reference`` (both model.score(..., maps=True))."""
    from sklearn.covariance import LedoitWolf

    def z(values, ref):
        return (values - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-12)

    def parts(scores):
        return np.column_stack([scores["recon"], -scores["layer_cosines"]])

    fitted = LedoitWolf().fit(parts(reference))
    centred = parts(out) - fitted.location_
    maha = np.einsum("ni,ij,nj->n", centred, fitted.precision_, centred)
    maps = {}
    for key in ("recon_map", "grad_map"):
        mean, std = pixel_stats(reference[key])
        maps[key] = (out[key] - mean) / std
    maps["sum"] = maps["recon_map"] + maps["grad_map"]
    kinds = {
        "gradcon": out["score"], "recon": out["recon"], "grad": out["grad_loss"],
        "zsum": z(out["recon"], reference["recon"]) + z(out["grad_loss"], reference["grad_loss"]),
        "zlayers": z(parts(out), parts(reference)).sum(axis=1),
        "maha": maha,
        "pz_recon": top_mean(maps["recon_map"]), "pz_grad": top_mean(maps["grad_map"]),
        "pz_sum": top_mean(maps["sum"]), "pz_sum_mean": maps["sum"].mean(axis=(1, 2)),
        "score_top": top_mean(out["score_map"]),
    }
    return kinds, maps


def trained(train, validation, seed, epochs, learning_rate=None):
    """The library's recipe; ``learning_rate``: Adam's (None: the paper's 1e-3)."""
    import keras

    from gradcon_tf import GradCon, loss_weights
    from gradcon_tf.callbacks import KeepBestWeights

    keras.utils.set_random_seed(seed)
    model = GradCon(input_shape=train.shape[1:], **loss_weights.loss_weights("data", train))
    model.compile(learning_rate=learning_rate)
    started = time.perf_counter()
    model.fit(train, validation_data=validation, epochs=epochs, batch_size=BATCH,
              callbacks=[KeepBestWeights()], verbose=0)
    return model, time.perf_counter() - started


def elpv_data(cells, seed, highpass):
    """{"train", "validation", "test" (float images), "defect_probability" (of the test cells)}
    of the ELPV split for ``cells`` and ``seed``, at ELPV_SIDE px."""
    from gradcon_tf.data import elpv

    loaded = elpv.load_elpv(ELPV_SIDE)
    prepare = high_passed if highpass else as_float
    indices = elpv.elpv_split_indices(loaded, cells, seed, defective=">0")
    data = {key: prepare(loaded.images[getattr(indices, key)])
            for key in ("train", "validation", "test")}
    data["defect_probability"] = loaded.defect_probability[indices.test]
    return data


def elpv_aurocs(kinds, probability, seed):
    """{criterion: {kind: {"dev", "test"}}}: AUROC of each score on the seeded halves."""
    from sklearn.metrics import roc_auc_score

    from gradcon_tf.data import elpv

    results = {}
    for criterion, above in elpv.DEFECT_CRITERIA.items():
        chosen = (probability == 0) | (probability > above)
        labels = probability[chosen] > 0
        dev = dev_half(labels, seed)
        results[criterion] = {
            kind: {"dev": float(roc_auc_score(labels[dev], v[chosen][dev])),
                   "test": float(roc_auc_score(labels[~dev], v[chosen][~dev]))}
            for kind, v in kinds.items()
        }
    return results


def texture_data(name, seed, highpass):
    """texture_defects_probe's set of texture ``name`` (illumination removed with ``highpass``)."""
    from texture_defects_probe import dataset

    data = dataset(name, seed)
    if highpass:
        for key in ("train", "validation", "test"):
            data[key] = high_passed(data[key])
    return data


def texture_aurocs(kinds, data):
    """(image AUROC of each score, {defect type: the same against that type only})."""
    from sklearn.metrics import roc_auc_score

    from texture_defects_probe import DEFECTS

    labels = data["test_is_anomaly"]
    by_defect = {
        defect: {k: float(roc_auc_score(labels[chosen], v[chosen])) for k, v in kinds.items()}
        for defect in DEFECTS for chosen in [(data["kinds"] == defect) | ~labels]
    }
    return {k: float(roc_auc_score(labels, v)) for k, v in kinds.items()}, by_defect


def run(data_name, seed, epochs, highpass, learning_rate=None):
    """The record of one run: train on ``data_name`` (``elpv-TYPE`` or a texture), score."""
    from sklearn.metrics import roc_auc_score

    is_elpv = data_name.startswith("elpv-")
    data = (elpv_data(data_name.split("-", 1)[1], seed, highpass) if is_elpv
            else texture_data(data_name, seed, highpass))
    model, seconds = trained(data["train"], data["validation"], seed, epochs, learning_rate)
    out = model.score(data["test"], batch_size=BATCH, maps=True)
    reference = model.score(data["validation"], batch_size=BATCH, maps=True)
    kinds, maps = score_kinds(out, reference)
    kinds["pca"] = pca_scores(data["train"], data["test"])
    record = {"train_seconds": round(seconds, 1), "selected_epoch": model.selected_epoch,
              "alpha": model.alpha}
    if is_elpv:
        return {**record, "auroc": elpv_aurocs(kinds, data["defect_probability"], seed)}
    masks = data["masks"].ravel()
    pixel = {key: float(roc_auc_score(masks, out[key].ravel()))
             for key in ("recon_map", "grad_map", "score_map")}
    pixel.update({f"pz_{key}": float(roc_auc_score(masks, value.ravel()))
                  for key, value in maps.items()})
    image, by_defect = texture_aurocs(kinds, data)
    return {**record, "image_auroc": image, "image_auroc_by_defect": by_defect,
            "pixel_auroc": pixel}


def records_of(paths):
    return [json.loads(line) for path in paths if os.path.exists(path)
            for line in open(path) if line.strip()]


def run_key(record):
    """What a run is: data, seed, epochs, high-pass, learning rate (None: the paper's)."""
    return (record["data"], record["seed"], record["epochs"], record["highpass"],
            record.get("learning_rate"))


def recipe(record):
    rate = record.get("learning_rate")
    return f"{record['epochs']} ep" + (f", lr {rate:g}" if rate else "")


def table(paths, half="test"):
    """Markdown tables of the records: ELPV (mean ± std over seeds of the ``half``), textures."""
    records = records_of(paths)
    lines = []
    elpv = [r for r in records if r["data"].startswith("elpv")]
    for criterion in (">=2/3", ">0"):
        groups = {}
        for r in elpv:
            groups.setdefault((r["data"], r["highpass"], recipe(r)), []).append(r)
        if not groups:
            break
        kinds = list(next(iter(groups.values()))[0]["auroc"][criterion])
        lines += [f"ELPV, defective = p {criterion}, {half} half, mean ± std over seeds", "",
                  "| data | hp | training | seeds | " + " | ".join(kinds) + " |",
                  "|---" * (4 + len(kinds)) + "|"]
        for (data, hp, training), rs in sorted(groups.items()):
            cells = []
            for kind in kinds:
                values = [r["auroc"][criterion][kind][half] for r in rs]
                cells.append(f"{np.mean(values):.3f}±{np.std(values, ddof=1) if len(values) > 1 else 0:.3f}")
            lines.append(f"| {data} | {hp} | {training} | {len(rs)} | " + " | ".join(cells) + " |")
        lines.append("")
    textures = sorted((r for r in records if not r["data"].startswith("elpv")),
                      key=lambda r: (r["data"], r["highpass"], recipe(r), r["seed"]))
    if textures:
        kinds = list(textures[0]["image_auroc"])
        pixels = list(textures[0]["pixel_auroc"])
        lines += ["Textures: image AUROC | pixel AUROC", "",
                  "| data | hp | training | seed | " + " | ".join(kinds) + " | "
                  + " | ".join(f"px {p}" for p in pixels) + " |",
                  "|---" * (4 + len(kinds) + len(pixels)) + "|"]
        for r in textures:
            cells = [f"{r['image_auroc'][k]:.3f}" for k in kinds]
            cells += [f"{r['pixel_auroc'][p]:.3f}" for p in pixels]
            lines.append(f"| {r['data']} | {r['highpass']} | {recipe(r)} | {r['seed']} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def probe_main(run, description, argv=None):
    """The command line of a probe whose ``run(data, seed, epochs, highpass, learning_rate)``
    gives a run's record: runs every (seed, data) not yet in --out, or prints --table."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--table", nargs="+", metavar="JSONL")
    parser.add_argument("--half", default="test", choices=["dev", "test"])
    parser.add_argument("--data", nargs="+", default=["elpv-mono", "elpv-poly"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: 50 on ELPV, 30 on textures")
    parser.add_argument("--highpass", action="store_true")
    parser.add_argument("--learning-rate", type=float, help="Adam's (default: the paper's 1e-3)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(table(args.table, args.half))
        return 0
    if not args.out:
        parser.error("--out is required (unless --table)")
    use_threads(args.threads)
    done = {run_key(r) for r in records_of([args.out])}
    for seed in args.seeds:
        for data in args.data:
            epochs = args.epochs or (50 if data.startswith("elpv-") else 30)
            if (data, seed, epochs, args.highpass, args.learning_rate) in done:
                continue
            record = {"data": data, "seed": seed, "epochs": epochs, "highpass": args.highpass,
                      "learning_rate": args.learning_rate,
                      **run(data, seed, epochs, args.highpass, args.learning_rate)}
            with open(args.out, "a") as out:
                out.write(json.dumps(record) + "\n")
            summary = record.get("image_auroc") or {k: v["test"] for k, v in
                                                    record["auroc"][">=2/3"].items()}
            print(data, seed, record["train_seconds"],
                  {k: round(v, 3) for k, v in summary.items()}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(probe_main(run, __doc__))
