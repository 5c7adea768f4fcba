"""Per-scale probe (issue 33: "look for the form where the gradient term adds"): does the gradient
of one scale's reconstruction loss rank anomalies better than that scale's reconstruction error?

The library's recipe on EfficientNet-Lite0 features (train_one_class(..., loss_weights="data",
backbone="efficientnet_lite0", image_score="local"), 100 epochs) trains as usual; then, on the
test images, the feature channels are split by the tap they come from (block_4: the first 40,
stride 8; block_10: the other 112, stride 16) and for each scale s, per image:

* recon_s: the mean squared error of that scale's channels;
* grad_s: -mean over decoder layers of cos(d recon_s / d kernel, the kernel's running average
  of training gradients), Eq. 6 restricted to the scale's part of the loss;
* recon_s + beta * grad_s with the model's beta.

Nothing here is chosen on the test images: every score is reported, none selected.

    python research/features/per_scale_probe.py --sets elpv-mono brick --seeds 0 1
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from feature_study import aurocs, load_set  # noqa: E402 (research/features/feature_study.py)

BACKBONE = "efficientnet_lite0"
#: The feature channels of each tap, in the extractor's concatenation order.
SCALES = {"block_4": slice(0, 40), "block_10": slice(40, 152)}


def per_scale_scores(model, features):
    """{score name: (N,)} of the per-scale reconstruction and gradient scores."""
    import tensorflow as tf

    from gradcon_tf import gradients

    kernels = [k.value for k in model.constrained_kernels]

    @tf.function
    def one_image(feature):
        feature = feature[None]
        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(kernels)
            reconstruction = model.decoder(model.encoder(feature))
            losses = [tf.reduce_mean(tf.square(reconstruction[..., part] - feature[..., part]))
                      for part in SCALES.values()]
        results = []
        for loss in losses:
            grads = tape.gradient(loss, kernels)
            cosines = [gradients.cosine_similarity(g, r.value)
                       for g, r in zip(grads, model.reference_gradients)]
            results += [loss, -tf.reduce_mean(tf.stack(cosines))]
        del tape
        return tf.stack(results)

    rows = np.stack([one_image(tf.constant(f)).numpy() for f in features])
    scores = {}
    for index, name in enumerate(SCALES):
        recon, grad = rows[:, 2 * index], rows[:, 2 * index + 1]
        scores[f"recon_{name}"] = recon
        scores[f"grad_{name}"] = grad
        scores[f"gradcon_{name}"] = recon + model.beta * grad
    return scores


ROWS = {
    "gradcon_local": "the recipe's score (local, all channels)",
    "recon": "reconstruction, image mean, all channels",
    "grad": "gradient, all channels",
    "recon_block_4": "reconstruction, block_4 channels (stride 8)",
    "grad_block_4": "gradient of that reconstruction",
    "gradcon_block_4": "their sum (recon + beta * grad)",
    "recon_block_10": "reconstruction, block_10 channels (stride 16)",
    "grad_block_10": "gradient of that reconstruction",
    "gradcon_block_10": "their sum (recon + beta * grad)",
}


def print_table(path):
    """Image AUROC (ELPV: p >= 2/3) per set, mean +- std over the seeds recorded."""
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    sets = list(dict.fromkeys(r["set"] for r in records))
    print("| score | " + " | ".join(sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for key, label in ROWS.items():
        cells = []
        for name in sets:
            values = [(r["auroc"].get(">=2/3") or r["auroc"]["image"])[key]
                      for r in records if r["set"] == name]
            spread = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
            cells.append(f"{np.mean(values):.3f}{spread} ({len(values)})")
        print(f"| {label} | " + " | ".join(cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["elpv-mono", "brick"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--out", default=os.path.join(HERE, "per_scale.jsonl"))
    parser.add_argument("--note", default="")
    parser.add_argument("--table", action="store_true", help="print the table of --out")
    args = parser.parse_args(argv)
    if args.table:
        print_table(args.out)
        return 0
    import keras

    from gradcon_tf import experiment
    from gradcon_tf.reproduction.provenance import code_version

    done = set()
    if os.path.exists(args.out):
        with open(args.out) as lines:
            done = {(r["set"], r["seed"]) for r in map(json.loads, lines)}
    command = "python research/features/per_scale_probe.py " + " ".join(argv or sys.argv[1:])
    for seed in args.seeds:
        for name in args.sets:
            if (name, seed) in done:
                continue
            started = time.perf_counter()
            split, extra = load_set(name, seed)
            model = experiment.train_one_class(split, args.epochs, seed=seed, loss_weights="data",
                                               backbone=BACKBONE, image_score="local", verbose=0)
            out = model.score(split.test)
            scores = {"gradcon_local": out["score"], "recon": out["recon"], "grad": out["grad_loss"]}
            scores.update(per_scale_scores(model, model.extract_features(split.test)))
            record = {
                "set": name, "seed": seed, "auroc": aurocs(split, extra, scores),
                "beta": model.beta, "epochs": args.epochs, "selected_epoch": model.selected_epoch,
                "seconds": round(time.perf_counter() - started, 1), "commit": code_version(),
                "command": command, "cpu": platform.processor() or platform.machine(),
                "threads": os.cpu_count(), "note": args.note,
            }
            with open(args.out, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(name, seed, json.dumps(record["auroc"]), f"{record['seconds']} s", flush=True)
            keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
