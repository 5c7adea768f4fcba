"""GradCon on EfficientNet-Lite0 features: cost, exports and what quantisation changes.

    python -m benchmarks.features --out docs/results/features-cost [--epochs 100] [--images 1000]

One model, the recipe of ``gradcon train --backbone efficientnet_lite0`` (``train_one_class(...,
backbone="efficientnet_lite0", loss_weights="data", image_score="local")``, ``--epochs``) on ELPV's
monocrystalline split (seed 0; ``pip install elpv-dataset``) at the default 224 px, then:

* cost: feature extraction and scoring throughput (images/s, batch 64), training wall time on
  ``--images`` normal images (ELPV cells drawn with replacement to that count, so that the figure
  is for that many images), the process's peak resident memory after training (ELPV loaded)
  and after the exports (the LiteRT converter's);
* exports: the SavedModel and the builtin-only LiteRT models (f32, f16, dynamic int8), their file
  sizes, batch-1 latency of the plain uint8 signature at 224 px (2 threads, median of 20 calls
  after warm-up), f32 parity with Keras (largest score difference) and each variant's ELPV test
  AUROC (defective = p >= 2/3) against Keras'.

Writes ``features.json`` to --out, with the commit, the command and the CPU.
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

def peak_rss_mb():
    """The process's peak resident memory so far (Linux: ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def per_second(function, images, batch=64, repeats=2):
    function(images[:batch])  # warm-up (traces)
    started = time.perf_counter()
    for _ in range(repeats):
        for i in range(0, len(images), batch):
            function(images[i : i + batch])
    return repeats * len(images) / (time.perf_counter() - started)


def litert_run(path, images, threads=2):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner("score_uint8")
    scores = np.concatenate([runner(images=images[i : i + 1])["score"] for i in range(len(images))])
    one = images[:1]
    for _ in range(3):
        runner(images=one)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        runner(images=one)
        times.append(time.perf_counter() - started)
    return scores, 1000 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)

    from benchmarks import machine
    from gradcon_tf import metrics
    from gradcon_tf.reproduction import provenance
    from gradcon_tf.data import elpv
    from gradcon_tf.experiment import train_one_class
    from gradcon_tf.export import export_model
    from gradcon_tf.splits import OneClassSplit

    cells = elpv.load_elpv()
    indices = elpv.elpv_split_indices(cells, "mono", 0, defective=">=2/3")
    split = OneClassSplit(cells.images[indices.train], cells.images[indices.validation],
                          cells.images[indices.test], indices.test_is_anomaly)
    draw = np.random.default_rng(0).choice(len(split.train), args.images, replace=True)
    thousand = OneClassSplit(split.train[draw], split.validation, split.test, split.test_is_anomaly)
    started = time.perf_counter()
    model = train_one_class(thousand, args.epochs, seed=0, loss_weights="data", image_score="local",
                            backbone="efficientnet_lite0", verbose=0)
    train_seconds = time.perf_counter() - started
    peak_after_training = peak_rss_mb()
    keras_scores = model.score(split.test)["score"]
    result = {
        "protocol": "features-cost",
        "command": "python -m benchmarks.features " + " ".join(argv or sys.argv[1:]),
        "code": provenance.code_version(), "cpu": machine.cpu(), "note": args.note,
        "image_size": list(model.working_size), "feature_shape": list(model.decoder.outputs[0].shape[1:]),
        "training": {"images": args.images, "epochs": args.epochs, "seconds": round(train_seconds, 1),
                     "selected_epoch": model.selected_epoch},
        "throughput_images_per_s": {
            "features": round(per_second(model.extract_features, split.test), 1),
            "scores": round(per_second(lambda b: model.score(b), split.test), 1),
        },
        "auroc": {"keras": metrics.auroc(keras_scores, split.test_is_anomaly)},
        "litert": {},
    }
    manifest = export_model(model, os.path.join(args.out, "export"))
    result["saved_model_bytes"] = sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(manifest["saved_model"]) for name in names)
    for tag, info in manifest["litert"].items():
        scores, latency = litert_run(info["path"], split.test)
        result["litert"][tag] = {
            "bytes": info["bytes"], "batch1_ms_2threads": round(latency, 2),
            "auroc": metrics.auroc(scores, split.test_is_anomaly),
            "largest_score_difference": float(np.max(np.abs(scores - keras_scores))),
        }
    result["peak_rss_mb"] = {"after_training_and_loading_elpv": peak_after_training,
                             "after_exports": peak_rss_mb()}
    for tag in manifest["litert"]:  # the .tflite files are large: keep the figures only
        os.remove(manifest["litert"][tag]["path"])
    import shutil

    shutil.rmtree(os.path.join(args.out, "export"))
    with open(os.path.join(args.out, "features.json"), "w") as out:
        json.dump(result, out, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
