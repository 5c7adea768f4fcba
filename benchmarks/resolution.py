"""Cost by working resolution: training, scoring, memory and the exported models at 28 to 256 px.

    python -m benchmarks.resolution --out docs/results/benchmarks-resolution [--sides 28 64 128 256]
    python -m benchmarks.resolution --out OUT --smoke          # tiny counts (tests)

For each side, a grayscale GradCon with the default network of that size (the paper's at 28 px,
the staged autoencoder above 32 px, gradcon_tf.networks): the training step at batch 64 (median
of timed ``train_on_batch`` calls after warm-up), one real epoch of ``fit`` on 1,000 images with
100 validating (the second epoch, after tracing), scoring throughput of ``model.score`` (batch
64), peak RSS while scoring N streamed images (``benchmarks.scoring_memory``, one process per N:
flat in N when memory does not grow with the number of images), and the f32 LiteRT model
(``export_model``): its size, batch-1 latency on one thread, and its scores' largest difference
from Keras' and the SavedModel's, also through the edge scorer (``edge_demo.scorer.Scorer``).

Writes ``OUT/resolution.json`` and ``OUT/README.md``. Resumable: sides already in the JSON are kept.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.common import REPO, log  # noqa: E402
from benchmarks.machine import environment  # noqa: E402

FULL = {"steps": 10, "epoch_images": 1000, "score_images": 512, "memory_images": (1000, 4000),
        "litert_calls": 50, "parity_images": 8}
SMOKE = {"steps": 2, "epoch_images": 128, "score_images": 64, "memory_images": (64, 192),
         "litert_calls": 3, "parity_images": 2}
KEYS = ("score", "recon", "grad_loss", "layer_cosines")


def _model(side):
    import keras

    import gradcon_tf

    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon(input_shape=(side, side, 1))
    model.compile()
    return model


def training_costs(side, counts):
    """Median train step (s) at batch 64 and the wall time of one epoch on ``epoch_images``."""
    import keras

    rng = np.random.default_rng(0)
    model = _model(side)
    batch = rng.integers(0, 256, (64, side, side, 1), dtype=np.uint8)
    for _ in range(2):
        model.train_on_batch(batch)
    steps = []
    for _ in range(counts["steps"]):
        started = time.perf_counter()
        model.train_on_batch(batch)
        steps.append(time.perf_counter() - started)
    images = rng.integers(0, 256, (counts["epoch_images"], side, side, 1), dtype=np.uint8)
    validation = images[:100]
    epoch_ends = []
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, l: epoch_ends.append(time.perf_counter()))
    model.fit(images, validation_data=validation, epochs=2, batch_size=64, verbose=0, callbacks=[timer])
    return model, {
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "train_step_s_batch64": float(np.median(steps)),
        "epoch_s": float(epoch_ends[1] - epoch_ends[0]),
        "epoch_images": counts["epoch_images"],
    }


def scoring_costs(model, side, counts):
    images = np.random.default_rng(1).integers(0, 256, (counts["score_images"], side, side, 1), dtype=np.uint8)
    model.score(images[:64], batch_size=64)
    started = time.perf_counter()
    model.score(images, batch_size=64)
    return {"score_images_per_s": counts["score_images"] / (time.perf_counter() - started)}


def memory_costs(side, counts):
    """Peak RSS (MiB) scoring each N, one process each."""
    peaks = {}
    for count in counts["memory_images"]:
        process = subprocess.run(
            [sys.executable, "-m", "benchmarks.scoring_memory", "--images", str(count),
             "--side", str(side), "--batch-size", "64"],
            cwd=REPO, capture_output=True, text=True,
        )
        if process.returncode != 0:
            raise RuntimeError(f"scoring_memory failed:\n{process.stderr[-2000:]}")
        peaks[str(count)] = round(json.loads(process.stdout.strip().splitlines()[-1])["process_peak_rss_mib"], 1)
    return {"scoring_peak_rss_mib": peaks}


def exported_costs(model, side, counts):
    """f32 LiteRT size and batch-1 latency; largest score differences LiteRT / edge / SavedModel
    vs Keras."""
    import tensorflow as tf

    from edge_demo.scorer import Scorer
    from gradcon_tf.export import export_model

    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (counts["parity_images"], side, side, 1), dtype=np.uint8)
    expected = model.score(images)
    with tempfile.TemporaryDirectory() as directory:
        manifest = export_model(model, directory, targets=("f32",))
        path = manifest["litert"]["f32"]["path"]
        scorer = Scorer(path, threads=1)
        edge = scorer.score(images)
        single = images[:1]
        for _ in range(3):
            scorer.score(single)
        scorer.timings.clear()
        for _ in range(counts["litert_calls"]):
            scorer.score(single)
        latency = float(np.median([t for t, _ in scorer.timings]))
        served = tf.saved_model.load(manifest["saved_model"]).signatures["score_uint8"](
            images=tf.constant(images))
        size = manifest["litert"]["f32"]["bytes"]

    def largest(outputs):
        return max(float(np.max(np.abs(np.asarray(outputs[k]) - expected[k]))) for k in KEYS)

    return {
        "litert_f32_bytes": size,
        "litert_batch1_1thread_ms": 1e3 * latency,
        "max_abs_difference": {"edge_litert_f32": largest(edge), "saved_model": largest(served)},
    }


def measure_side(side, counts):
    log(f"{side} px: training")
    model, result = training_costs(side, counts)
    log(f"{side} px: scoring")
    result.update(scoring_costs(model, side, counts))
    log(f"{side} px: memory")
    result.update(memory_costs(side, counts))
    log(f"{side} px: LiteRT")
    result.update(exported_costs(model, side, counts))
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def markdown(record):
    cpu = record["environment"]["cpu"]
    lines = [
        "# Cost by working resolution",
        "",
        f"CPU: {cpu['model']} ({', '.join(cpu['vector_extensions'])}), {cpu['cores']} cores; "
        "grayscale, the default network of each size; batch 64. Command: "
        "`python -m benchmarks.resolution --out docs/results/benchmarks-resolution`.",
        "",
        "| side | parameters | train step (ms) | epoch, 1,000 images (s) | scoring (images/s) "
        "| scoring peak RSS (MiB) by N | LiteRT f32 (MiB) | LiteRT batch 1 (ms) "
        "| max diff edge / SavedModel | load at end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for side, r in sorted(record["sides"].items(), key=lambda item: int(item[0])):
        memory = ", ".join(f"{n}: {v:g}" for n, v in r["scoring_peak_rss_mib"].items())
        diff = r["max_abs_difference"]
        lines.append(
            f"| {side} | {r['parameters']:,} | {1e3 * r['train_step_s_batch64']:.0f} "
            f"| {r['epoch_s'] * 1000 / r['epoch_images']:.1f} | {r['score_images_per_s']:.0f} "
            f"| {memory} | {r['litert_f32_bytes'] / 2**20:.2f} | {r['litert_batch1_1thread_ms']:.2f} "
            f"| {diff['edge_litert_f32']:.1e} / {diff['saved_model']:.1e} "
            f"| {', '.join(map(str, r['load_average_end']))} |"
        )
    lines += ["", "The epoch column is scaled to 1,000 images from the measured epoch "
              "(`epoch_images` in the JSON); validation on 100 images included.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sides", nargs="+", type=int, default=[28, 64, 128, 256])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    counts = SMOKE if args.smoke else FULL
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "resolution.json")
    record = json.load(open(path)) if os.path.exists(path) else {"sides": {}}
    record["environment"] = environment()
    for side in args.sides:
        if str(side) in record["sides"]:
            continue
        record["sides"][str(side)] = measure_side(side, counts)
        with open(path, "w") as out:
            json.dump(record, out, indent=2)
        with open(os.path.join(args.out, "README.md"), "w") as out:
            out.write(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
