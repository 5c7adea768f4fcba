"""LiteRT scorer speed: latency per image at batch 1 (one thread) and throughput at batch 32.

    python benchmarks/bench_litert.py [EXPORT_DIR] [--out docs/results/export/bench_litert.json]

EXPORT_DIR holds ``gradcon_f32.tflite`` and ``gradcon_f16.tflite`` (and, if present,
``gradcon_dynamic_int8.tflite``) as written by ``python -m export``. Without it, a freshly initialised paper CAE (with non-zero reference
gradients) is exported to a temporary directory first: the speed does not depend on the weights.
Timings are of the signature runner's call (what the edge demo does), uint8 images, after warm-up:
the plain signature (``score_uint8``) and, under ``maps``, the one with the anomaly maps
(``maps_uint8``).
Target: <= 0.75 ms per 28x28x1 image at batch 1 on one core.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from gradcon_tf.portable.signatures import MAPS_UINT8_SIGNATURE, UINT8_SIGNATURE  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 0.75


def export_fresh_model(directory):
    sys.path.insert(0, REPO)
    import keras

    from export.exporter import export_model
    from gradcon_tf import GradCon

    keras.utils.set_random_seed(0)
    model = GradCon()
    for reference in model.reference_gradients:  # as after training: non-zero references
        reference.assign(np.random.default_rng(0).normal(size=reference.shape).astype(np.float32))
    return export_model(model, directory, targets=("f32", "f16", "dynamic_int8"))


def timed_calls(runner, images, repeats, warmup):
    for _ in range(warmup):
        runner(images=images)
    times = np.empty(repeats)
    for index in range(repeats):
        start = time.perf_counter()
        runner(images=images)
        times[index] = time.perf_counter() - start
    return times


def bench_model(path, repeats, batch_repeats, threads):
    """The plain signature's timings, and the map signature's under ``maps`` when the model has
    one (the anomaly maps: ``gradcon_tf.GradCon.score(maps=True)``)."""
    from ai_edge_litert.interpreter import Interpreter

    result = {"path": os.path.relpath(path), "bytes": os.path.getsize(path)}
    result.update(bench_signature(path, UINT8_SIGNATURE, repeats, batch_repeats, threads))
    if MAPS_UINT8_SIGNATURE in Interpreter(model_path=path).get_signature_list():
        result["maps"] = bench_signature(path, MAPS_UINT8_SIGNATURE, repeats, batch_repeats, threads)
    return result


def bench_signature(path, signature, repeats, batch_repeats, threads):
    """Batch-1 latency on one thread and batch-32 time per image of one signature."""
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    result = {"signature": signature}
    interpreter = Interpreter(model_path=path, num_threads=1)
    runner = interpreter.get_signature_runner(signature)
    single = timed_calls(runner, rng.integers(0, 256, (1, 28, 28, 1), dtype=np.uint8), repeats, 200)
    result["batch1_1thread_ms"] = {
        "p50": 1e3 * float(np.percentile(single, 50)),
        "p99": 1e3 * float(np.percentile(single, 99)),
        "mean": 1e3 * float(single.mean()),
        "min": 1e3 * float(single.min()),
        "runs": repeats,
    }
    batch = rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)
    for thread_count in sorted({1, threads}):
        interpreter = Interpreter(model_path=path, num_threads=thread_count)
        runner = interpreter.get_signature_runner(signature)
        times = timed_calls(runner, batch, batch_repeats, 10)
        result[f"batch32_{thread_count}thread_images_per_s"] = float(32 / np.median(times))
        result[f"batch32_{thread_count}thread_ms_per_image"] = 1e3 * float(np.median(times)) / 32
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", nargs="?", help="output of `python -m export` (default: fresh model)")
    parser.add_argument("--repeats", type=int, default=3000, help="batch-1 runs per model")
    parser.add_argument("--batch-repeats", type=int, default=100, help="batch-32 runs per model")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="N for the N-thread run")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as workdir:
        directory = args.export_dir
        if directory is None:
            directory = workdir
            export_fresh_model(directory)
        report = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "load_average_at_start": os.getloadavg()[0],
            "target_ms_per_image_batch1_1thread": TARGET_MS,
            "models": {},
        }
        for tag in ("f32", "f16", "dynamic_int8"):
            path = os.path.join(directory, f"gradcon_{tag}.tflite")
            if tag != "f32" and tag != "f16" and not os.path.exists(path):
                continue  # optional variant
            report["models"][tag] = bench_model(path, args.repeats, args.batch_repeats, args.threads)
            if args.export_dir is None:
                report["models"][tag]["path"] = f"gradcon_{tag}.tflite (fresh paper CAE)"
    import ai_edge_litert

    report["ai_edge_litert"] = ai_edge_litert.__version__
    report["load_average_at_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
