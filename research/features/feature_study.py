"""GradCon on pretrained features against its ablations and a nearest-neighbour baseline.

For each data set and seed, with the same frozen EfficientNet-Lite0 features (blocks 4 and 10 at
224 px, 3x3 mean, standardised on the training images: ``GradCon(backbone=...)``):

* ``gradcon``: ``train_one_class(..., backbone="efficientnet_lite0", loss_weights="data")``: Eq. 6
  with data-scaled alpha; scores: GradCon (recon + beta * grad), recon alone, grad alone, each
  layer's cosine, and the local image score (top 1 % of the blurred score map);
* ``alpha0``: the same autoencoder trained without the constraint (alpha = 0: DFR's recipe);
* ``knn``: nearest neighbours over the same features (:mod:`gradcon_tf.patch_knn`), image
  score = largest distance over the map.

Data: ELPV (``pip install elpv-dataset``; the reproduce protocol's split, AUROC against
p >= 2/3 and p > 0) and the masked brick proxy (research/investigations/texture_defects_probe.py;
``pip install scikit-image``; image and pixel AUROC). Each (set, seed, variant) appends one JSON
line to --out with the commit and the command; runs already there are skipped (resumable).

    python research/features/feature_study.py --sets elpv-mono elpv-poly elpv-both brick \
        --seeds 0 1 2 --epochs 50 --out research/features/records.jsonl
    python research/features/feature_study.py --table research/features/records.jsonl
"""

import argparse
import functools
import json
import os
import platform
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BACKBONE = "efficientnet_lite0"
#: grass and gravel: the proxy on other textures, the development sets of design choices.
SETS = ("elpv-mono", "elpv-poly", "elpv-both", "brick", "grass", "gravel")
#: Training alpha as a share of the full data-scaled one (gradcon: all of it, the recipe before
#: loss_weights.FEATURE_ALPHA_SHARE; alpha0.1: the library's recipe since; alpha0: none, DFR).
ALPHA_SHARES = {"gradcon": 1.0, "alpha0.3": 0.3, "alpha0.1": 0.1, "alpha0": 0.0,
                "spatial": 1.0, "spatial-alpha0": 0.0}
VARIANTS = (*ALPHA_SHARES, "knn")


def spatial_networks():
    """The paper's CAE (4x4 stride-2 convolutions, 28x28 -> 3x3x64) on the 28x28 feature map,
    linear at the end, instead of the pointwise autoencoder (the ``spatial`` variants)."""
    import functools

    from gradcon_tf import networks

    networks.build_feature_encoder = networks.build_encoder
    networks.build_feature_decoder = functools.partial(networks.build_decoder,
                                                       output_activation="linear")


@functools.lru_cache(maxsize=1)
def elpv_cells():
    """The ELPV cells, read once per process."""
    from gradcon_tf.data import elpv

    return elpv.load_elpv()


def load_set(name, seed):
    """(OneClassSplit, extra) for a data set: extra holds ELPV's defect probabilities or the
    proxy's masks."""
    from gradcon_tf.data import elpv
    from gradcon_tf.splits import OneClassSplit

    if name.startswith("elpv-"):
        cells = elpv_cells()
        indices = elpv.elpv_split_indices(cells, name[5:], seed, defective=">0")
        split = OneClassSplit(cells.images[indices.train], cells.images[indices.validation],
                              cells.images[indices.test], indices.test_is_anomaly)
        return split, {"defect_probability": cells.defect_probability[indices.test]}
    sys.path.insert(0, os.path.join(ROOT, "docs", "investigations"))
    from texture_defects_probe import dataset

    data = dataset(name, seed)
    split = OneClassSplit(data["train"], data["validation"], data["test"], data["test_is_anomaly"])
    return split, {"masks": data["masks"]}


def aurocs(split, extra, image_scores, maps=None):
    """{criterion: {score name: AUROC}} and, with masks and maps, the pixel AUROCs."""
    from gradcon_tf import metrics

    result = {}
    if "defect_probability" in extra:
        probability = extra["defect_probability"]
        for criterion, low in ((">=2/3", 2 / 3 - 1e-9), (">0", 1e-9)):
            chosen = (probability == 0) | (probability > low)
            result[criterion] = {k: metrics.auroc(v[chosen], probability[chosen] > 0)
                                 for k, v in image_scores.items()}
    else:
        result["image"] = {k: metrics.auroc(v, split.test_is_anomaly)
                           for k, v in image_scores.items()}
        masks = extra["masks"]
        result["pixel"] = {k: metrics.auroc(m.reshape(-1), masks.reshape(-1))
                           for k, m in (maps or {}).items()}
    return result


def run_gradcon(split, extra, seed, epochs, share, learning_rate):
    from gradcon_tf import GradCon, experiment, loss_weights
    from gradcon_tf.model import DEFAULT_ALPHA

    # Shares of the full data-scaled alpha (and beta = 4 alpha), whatever share the library
    # itself applies on features (loss_weights.FEATURE_ALPHA_SHARE, 0.1 since it exists).
    library_share = getattr(loss_weights, "FEATURE_ALPHA_SHARE", 1.0)
    method = {0.0: "cae"}.get(share, f"alpha{share}")
    experiment.METHODS.setdefault(method, (GradCon, DEFAULT_ALPHA * share / library_share))
    model = experiment.train_one_class(split, epochs, seed=seed, loss_weights="data",
                                       backbone=BACKBONE, method=method, verbose=0,
                                       learning_rate=learning_rate)
    masked = "masks" in extra
    out = model.score(split.test, maps=True)
    scores = {"gradcon": out["score"], "recon": out["recon"], "grad": out["grad_loss"]}
    # The data-scaled beta of the full constraint (4 * 0.03 * scale), whatever alpha trained.
    data_beta = 4 * model.alpha / share if share else model.beta
    scores["gradcon_data_beta"] = out["recon"] + data_beta * out["grad_loss"]
    for layer in range(out["layer_cosines"].shape[1]):
        scores[f"cosine_{layer + 1}"] = -out["layer_cosines"][:, layer]
    for name in ("score", "recon", "grad"):  # the largest value of each map
        scores[f"{name}_map_max"] = out[f"{name}_map"].max(axis=(1, 2))
    maps = {"gradcon": out["score_map"], "recon": out["recon_map"],
            "grad": out["grad_map"]} if masked else None
    model.image_score = "local"
    scores["gradcon_local"] = model.score(split.test)["score"]
    record = {"alpha": model.alpha, "beta": model.beta, "selected_epoch": model.selected_epoch}
    return model, aurocs(split, extra, scores, maps), record


def run_knn(split, extra, seed, model):
    import tensorflow as tf

    from gradcon_tf.patch_knn import PatchNearestNeighbour

    knn = PatchNearestNeighbour(seed=seed).fit(model.extract_features(split.train))
    maps = knn.score_maps(model.extract_features(split.test))
    scores = {"knn": maps.max(axis=(1, 2)), "knn_mean": maps.mean(axis=(1, 2))}
    pixel_maps = None
    if "masks" in extra:
        size = split.test.shape[1:3]
        pixel_maps = {"knn": tf.image.resize(maps[..., None], size)[..., 0].numpy()}
    return aurocs(split, extra, scores, pixel_maps), {"bank": int(knn.bank.shape[0])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--out", default=os.path.join(HERE, "records.jsonl"))
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--table", nargs="*", help="print the table of these record files")
    args = parser.parse_args(argv)
    if args.table is not None:
        from table import print_table  # research/features/table.py

        print_table(args.table or [args.out])
        return 0
    spatial = [v.startswith("spatial") for v in args.variants if v != "knn"]
    if any(spatial) and not all(spatial):
        parser.error("run the spatial variants in a process of their own (they replace the "
                     "feature networks for the rest of the process)")
    import keras

    from gradcon_tf.reproduction.provenance import code_version

    done = set()
    if os.path.exists(args.out):
        with open(args.out) as lines:
            done = {(r["set"], r["seed"], r["variant"]) for r in map(json.loads, lines)}
    command = "python research/features/feature_study.py " + " ".join(argv or sys.argv[1:])
    for seed in args.seeds:  # seed-major: every set's first seed comes first
        for name in args.sets:
            todo = [v for v in args.variants if (name, seed, v) not in done]
            if not todo:
                continue
            split, extra = load_set(name, seed)
            model = None
            for variant in ["gradcon"] + [v for v in todo if v != "gradcon"]:
                started = time.perf_counter()
                if variant == "knn":
                    if model is None:  # the features only: an untrained model's backbone
                        from gradcon_tf import GradCon

                        model = GradCon(input_shape=split.train.shape[1:], backbone=BACKBONE)
                        model.adapt_backbone(split.train)
                    result, details = run_knn(split, extra, seed, model)
                else:
                    if variant not in todo:
                        continue
                    if variant.startswith("spatial"):
                        spatial_networks()
                    trained, result, details = run_gradcon(split, extra, seed, args.epochs,
                                                           ALPHA_SHARES[variant],
                                                           args.learning_rate)
                    model = trained if variant == "gradcon" else model
                record = {
                    "set": name, "seed": seed, "variant": variant, "auroc": result, **details,
                    "epochs": args.epochs, "learning_rate": args.learning_rate or 1e-3,
                    "train_images": len(split.train), "test_images": len(split.test),
                    "seconds": round(time.perf_counter() - started, 1), "commit": code_version(),
                    "command": command, "cpu": platform.processor() or platform.machine(),
                    "threads": os.cpu_count(), "note": args.note,
                }
                with open(args.out, "a") as out:
                    out.write(json.dumps(record) + "\n")
                print(name, seed, variant, json.dumps(result), f"{record['seconds']} s",
                      flush=True)
                keras.backend.clear_session() if variant != "gradcon" else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
