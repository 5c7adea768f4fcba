"""The benchmark suite of issue 6: training and scoring speed, LiteRT latency, scoring memory, FLOPs.

    python -m benchmarks.run --out docs/results/benchmarks          # the full run (~6 min on 2 cores)
    python -m benchmarks.run --out OUT --smoke               # a few repeats, small N (tests)

Writes ``OUT/benchmarks.json`` (every figure, with its spread and the machine load) and
``OUT/README.md`` (the summary tables). Sections:

* training step at batch 64, graph and XLA (``compile(jit_compile=True)``): the model's compiled
  train function called on one fixed batch, each step timed; its trace count is checked not to
  grow. In the same rounds, the parts of a step (forward, inner tape, loss gradients, a plain
  autoencoder step without the gradient constraint) for the training profile;
* scoring throughput: ``model.score`` and the raw ``tf.function`` of ``per_sample_scores`` at
  batch 256 and 512, and in the same rounds a batch-of-one GradientTape loop as the authors'
  release scores (one image at a time: forward, gradient of its own MSE w.r.t. the decoder kernels,
  cosines); then the scoring profile (``benchmarks/scoring_profile.py``);
* one real epoch of the reproduction's training (``experiment.train_one_class``, 5,400 images,
  validation on 600) and the 20-epoch wall time from it and from the step time;
* LiteRT latency (``benchmarks/bench_litert.py``) of the same model, exported with ``export``;
* peak RSS while scoring N images streamed through tf.data, one subprocess per N
  (``benchmarks/scoring_memory.py``);
* the fp32 peak of this machine (2048x2048 ``tf.linalg.matmul``), timed inside the training and
  scoring rounds, and the achieved GFLOP/s from the analytic FLOPs (``benchmarks/flops.py``).

Timings on a shared machine are noisy: every section interleaves its cases round by round (order
rotated), reports medians with p10/p90, takes ratios within a round, and records the load average.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The authors' PyTorch release on this machine (issue 6: measured 2026-11-29, interleaved, same
#: run as a straightforward TF build). Not re-measured by this suite.
RELEASE = {
    "train_step_ms_batch64": 77.0,
    "train_step_ms_batch64_other_idle_run": 101.0,
    "scoring_images_per_s": 127.0,
    "source": "issue 6 (authors' PyTorch release on this 2-core machine, 2026-11-29); not re-measured here",
}
#: Issue 6 targets on this machine.
TARGETS = {"scoring_images_per_s": 2500.0, "train_step_ms_batch64": 50.0}
TRAIN_BATCH = 64
MATMUL_N = 2048
EPOCH_IMAGES, VALIDATION_IMAGES, BUDGET_EPOCHS = 5400, 600, 20


@dataclasses.dataclass(frozen=True)
class Settings:
    rounds: int = 11
    train_warmup: int = 5
    train_steps_per_round: int = 12
    score_batches: tuple = (256, 512)
    score_images_per_round: int = 1024  # per raw batched case
    model_score_images: int = 2048  # per model.score call
    loop_images_per_round: int = 128
    profile_rounds: int = 11
    profile_calls: int = 5
    matmul_calls: int = 2
    epochs: int = 3
    epoch_images: int = EPOCH_IMAGES
    validation_images: int = VALIDATION_IMAGES
    litert_targets: tuple = ("f32", "f16", "dynamic_int8")
    litert_repeats: int = 2000
    litert_batch_repeats: int = 50
    memory_images: tuple = (10_000, 60_000)
    memory_parallel: bool = False  # smoke only: probes overlap the other sections


SMOKE = Settings(
    rounds=2, train_warmup=1, train_steps_per_round=2, score_images_per_round=256,
    model_score_images=256, loop_images_per_round=4, profile_rounds=1, profile_calls=1,
    matmul_calls=1, epochs=2, epoch_images=128, validation_images=64, litert_targets=("f32",),
    litert_repeats=20, litert_batch_repeats=2, memory_images=(512, 1536), memory_parallel=True,
)


def log(message):
    print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------- models


def make_model(jit_compile=False, seed=0):
    """The paper's CAE with non-zero running averages (as after training), compiled, optimizer built."""
    import keras

    import gradcon_tf

    keras.utils.set_random_seed(seed)
    model = gradcon_tf.GradCon()
    model.compile(jit_compile=jit_compile)
    rng = np.random.default_rng(seed)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    model.reference_count.assign(100)
    model.optimizer.build(model.trainable_variables)
    return model


class TraceCounter:
    """Wraps a model's step method: its Python body runs once per trace of the compiled function."""

    def __init__(self, model, method):
        self.count = 0
        original = getattr(model, method)

        def counted(data):
            self.count += 1
            return original(data)

        setattr(model, method, counted)


def images(n, seed, channels=1):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, 28, 28, channels)).astype(np.float32)


def matmul_case(calls):
    """fp32 GFLOP/s of a 2048x2048 matmul, one sample per call."""
    import tensorflow as tf

    a = tf.random.normal([MATMUL_N, MATMUL_N], seed=1)
    b = tf.random.normal([MATMUL_N, MATMUL_N], seed=2)
    fn = tf.function(lambda a, b: tf.linalg.matmul(a, b)[0, 0])
    fn(a, b).numpy()

    def case():
        out = []
        for _ in range(calls):
            start = time.perf_counter()
            fn(a, b).numpy()
            out.append(2 * MATMUL_N**3 / (time.perf_counter() - start) / 1e9)
        return out

    return case, fn


# ---------------------------------------------------------------------------------------------- training


def bench_training(settings, flops_per_train_image):
    import tensorflow as tf

    from gradcon_tf import gradients
    from benchmarks.timing import flatten, interleaved, load_average, seconds, summary

    load_start = load_average()
    log("training: building, tracing and compiling (graph, XLA, parts)")
    batch = tf.constant(images(TRAIN_BATCH, seed=1))
    models, counters = {}, {}
    for name, jit in (("graph", False), ("xla", True)):
        model = make_model(jit_compile=jit)
        counters[name] = TraceCounter(model, "train_step")
        model.make_train_function()
        models[name] = model
    compile_s = {}
    for name, model in models.items():
        compile_s[name] = seconds(lambda: float(model.train_function([batch])["loss"]))
        for _ in range(settings.train_warmup):
            float(model.train_function([batch])["loss"])
    traces_after_warmup = {name: c.count for name, c in counters.items()}

    def steps(model):
        def case():
            out = []
            for _ in range(settings.train_steps_per_round):
                start = time.perf_counter()
                float(model.train_function([batch])["loss"])
                out.append(time.perf_counter() - start)
            return out

        return case

    # The parts of a step (graph mode), on a separate model so the timed one is untouched.
    part_model = make_model()

    @tf.function
    def forward(x):
        reconstructions = part_model(x, training=True)
        return tf.reduce_mean(gradients.per_sample_reconstruction_error(part_model.preprocess(x), reconstructions))

    @tf.function
    def forward_inner(x):
        # forward + inner tape (decoder kernel gradients of the MSE) + their cosines: L and L_grad
        recon_loss, _, grad_loss = part_model._loss_terms(x, training=True)
        return recon_loss + grad_loss

    @tf.function
    def loss_gradients(x):
        # J and dJ/dW for every weight (second-order term included), no optimizer update
        with tf.GradientTape() as tape:
            recon_loss, _, grad_loss = part_model._loss_terms(x, training=True)
            loss = recon_loss + part_model.alpha * grad_loss
        return [tf.reduce_sum(g) for g in tape.gradient(loss, part_model.trainable_variables)]

    import keras

    plain = make_model(seed=1)
    plain_optimizer = keras.optimizers.Adam(1e-3)
    plain_optimizer.build(plain.trainable_variables)

    @tf.function
    def plain_autoencoder_step(x):
        # the same network trained on the MSE alone: no inner tape, no gradient constraint
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(gradients.per_sample_reconstruction_error(plain.preprocess(x), plain(x, training=True)))
        plain_optimizer.apply(tape.gradient(loss, plain.trainable_variables), plain.trainable_variables)
        return loss

    parts = {
        "forward (MSE)": forward,
        "forward + inner tape + cosines (L, L_grad)": forward_inner,
        "J and dJ/dW, second order included (no update)": loss_gradients,
        "plain autoencoder step (MSE only, Adam)": plain_autoencoder_step,
    }
    for fn in parts.values():
        tf.nest.map_structure(lambda t: t.numpy(), fn(batch))  # trace and warm up
        fn(batch)

    def part_case(fn):
        def case():
            out = []
            for _ in range(max(1, settings.train_steps_per_round // 2)):
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), fn(batch))
                out.append(time.perf_counter() - start)
            return out

        return case

    matmul, _ = matmul_case(settings.matmul_calls)
    cases = {"graph": steps(models["graph"]), "xla": steps(models["xla"])}
    cases.update({name: part_case(fn) for name, fn in parts.items()})
    cases["matmul"] = matmul
    log(f"training: {settings.rounds} rounds x {settings.train_steps_per_round} steps, graph and XLA")
    results, loads = interleaved(cases, settings.rounds)

    from benchmarks import scoring_profile

    with tempfile.TemporaryDirectory() as logdir:
        ops = scoring_profile.op_profile(
            lambda: float(models["graph"].train_function([batch])["loss"]), settings.train_steps_per_round, logdir
        )
    per_round_median = {name: [float(np.median(r)) for r in results[name]] for name in results}
    step_ms = {name: summary(1e3 * np.asarray(flatten(results[name]))) for name in ("graph", "xla")}
    gflops = {
        name: summary([flops_per_train_image * TRAIN_BATCH / s / 1e9 for s in flatten(results[name])])
        for name in ("graph", "xla")
    }
    peak = summary(flatten(results["matmul"]))
    fraction = {  # achieved (median over steps) / peak (median over this section's matmul samples)
        name: flops_per_train_image * TRAIN_BATCH / (step_ms[name]["median"] / 1e3) / 1e9 / peak["median"]
        for name in ("graph", "xla")
    }
    return {
        "batch_size": TRAIN_BATCH,
        "load_average_start": load_start,
        "load_average_per_round": loads,
        "load_average_end": load_average(),
        "first_call_s": compile_s,
        "warmup_steps": settings.train_warmup,
        "timed_steps_per_mode": settings.rounds * settings.train_steps_per_round,
        "step_ms": step_ms,
        "ratio_xla_over_graph_step_time": summary(
            [x / g for x, g in zip(per_round_median["xla"], per_round_median["graph"])]
        ),
        "speedup_vs_release": {
            name: RELEASE["train_step_ms_batch64"] / step_ms[name]["median"] for name in ("graph", "xla")
        },
        "gflops": gflops,
        "fraction_of_matmul_peak": fraction,
        "matmul_peak_gflops": peak,
        "matmul_samples_gflops": flatten(results["matmul"]),
        "parts_ms": {name: summary(1e3 * np.asarray(flatten(results[name]))) for name in parts},
        "parts_fraction_of_graph_step": {
            name: summary([p / g for p, g in zip(per_round_median[name], per_round_median["graph"])])
            for name in parts
        },
        "trace_count": {
            "after_warmup": traces_after_warmup,
            "at_end": {name: c.count for name, c in counters.items()},
        },
        "tf_profiler_ops_graph_step": ops,
    }


# ---------------------------------------------------------------------------------------------- scoring


def batch_of_one_function(model):
    """The release's way of scoring, compiled: one image, its own MSE, tape over the decoder kernels."""
    import tensorflow as tf

    from gradcon_tf import gradients

    kernels = [k.value for k in model.constrained_kernels]
    references = [r.value for r in model.reference_gradients]

    @tf.function(input_signature=[tf.TensorSpec([1, 28, 28, model.image_shape[-1]], tf.float32)])
    def score_one(image):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(kernels)
            reconstruction = model.decoder(model.encoder(image, training=False), training=False)
            loss = tf.reduce_mean(tf.square(reconstruction - image))
        grads = tape.gradient(loss, kernels)
        cosines = tf.stack([gradients.cosine_similarity(g, r) for g, r in zip(grads, references)])
        return loss + model.beta * -tf.reduce_mean(cosines), loss, cosines

    return score_one


def bench_scoring(settings, flops_per_scored_image):
    import tensorflow as tf

    from benchmarks.timing import flatten, interleaved, load_average, summary

    load_start = load_average()
    log("scoring: building and tracing")
    model = make_model()
    batched = {}
    for size in settings.score_batches:
        fn = tf.function(model.per_sample_scores)
        x = tf.constant(images(size, seed=size))
        fn(x)["score"].numpy()
        batched[size] = (fn, x)
    score_input = images(settings.model_score_images, seed=3)
    model.score(score_input, batch_size=256)
    loop_fn = batch_of_one_function(model)
    loop_input = images(max(16, settings.loop_images_per_round), seed=4)
    loop_fn(loop_input[:1])

    # Same numbers: the loop against the batched path on the same images.
    check_images = loop_input[:16]
    rows = [loop_fn(check_images[i : i + 1]) for i in range(len(check_images))]
    loop_scores = np.array([float(r[0]) for r in rows])
    loop_cosines = np.stack([r[2].numpy() for r in rows])
    fast = model.per_sample_scores(tf.constant(check_images))
    check = {
        "images": len(check_images),
        "max_abs_diff_score": float(np.max(np.abs(loop_scores - fast["score"].numpy()))),
        "max_abs_diff_layer_cosines": float(np.max(np.abs(loop_cosines - fast["layer_cosines"].numpy()))),
    }
    traces_after_warmup = {
        **{f"per_sample_scores_b{s}": fn.experimental_get_tracing_count() for s, (fn, _) in batched.items()},
        "model_score": model._score_function.experimental_get_tracing_count(),
        "batch_of_one": loop_fn.experimental_get_tracing_count(),
    }

    def batched_case(size):
        fn, x = batched[size]
        calls = max(1, settings.score_images_per_round // size)

        def case():
            start = time.perf_counter()
            for _ in range(calls):
                fn(x)["score"].numpy()
            return calls * size / (time.perf_counter() - start)

        return case

    def model_score_case():
        start = time.perf_counter()
        model.score(score_input, batch_size=256)
        return len(score_input) / (time.perf_counter() - start)

    def loop_case():
        n = settings.loop_images_per_round
        start = time.perf_counter()
        for i in range(n):
            float(loop_fn(loop_input[i : i + 1])[0])
        return n / (time.perf_counter() - start)

    matmul, _ = matmul_case(settings.matmul_calls)
    cases = {f"per_sample_scores_b{s}": batched_case(s) for s in settings.score_batches}
    cases["model.score_b256"] = model_score_case
    cases["batch_of_one_loop"] = loop_case
    cases["matmul"] = matmul
    log(f"scoring: {settings.rounds} rounds")
    results, loads = interleaved(cases, settings.rounds)
    throughput_names = [n for n in cases if n != "matmul"]
    out = {
        "load_average_start": load_start,
        "load_average_per_round": loads,
        "images_per_s": {n: summary(results[n]) for n in throughput_names},
        "ratio_vs_batch_of_one_loop_same_round": {
            n: summary([a / b for a, b in zip(results[n], results["batch_of_one_loop"])])
            for n in throughput_names
            if n != "batch_of_one_loop"
        },
        "ratio_vs_release": {
            n: summary(results[n])["median"] / RELEASE["scoring_images_per_s"] for n in throughput_names
        },
        "ratio_model_score_over_raw_same_round": {  # what Keras predict() costs on top of the function
            f"per_sample_scores_b{s}": summary(
                [a / b for a, b in zip(results["model.score_b256"], results[f"per_sample_scores_b{s}"])]
            )
            for s in settings.score_batches
        },
        "gflops": {n: summary([flops_per_scored_image * v / 1e9 for v in results[n]]) for n in throughput_names},
        "fraction_of_matmul_peak": {  # median achieved / median peak of this section's matmul samples
            n: flops_per_scored_image * float(np.median(results[n])) / 1e9 / float(np.median(flatten(results["matmul"])))
            for n in throughput_names
        },
        "matmul_peak_gflops": summary(flatten(results["matmul"])),
        "matmul_samples_gflops": flatten(results["matmul"]),
        "loop_vs_batched_same_numbers": check,
        "trace_count": {
            "after_warmup": traces_after_warmup,
            "at_end": {
                **{f"per_sample_scores_b{s}": fn.experimental_get_tracing_count() for s, (fn, _) in batched.items()},
                "model_score": model._score_function.experimental_get_tracing_count(),
                "batch_of_one": loop_fn.experimental_get_tracing_count(),
            },
        },
        "model_score_images_per_call": len(score_input),
        "loop_images_per_round": settings.loop_images_per_round,
        "load_average_end": load_average(),
    }
    return out, model


def bench_scoring_profile(settings, model, batch=256):
    import tensorflow as tf

    from benchmarks import scoring_profile
    from benchmarks.timing import interleaved, load_average, summary

    load_start = load_average()
    x = tf.constant(images(batch, seed=5))
    pieces, check = scoring_profile.pieces(model, x)
    whole = tf.function(model.per_sample_scores)
    whole(x)
    empty = tf.function(lambda t: t)
    empty(x)

    def timed(fn, args):
        def case():
            start = time.perf_counter()
            for _ in range(settings.profile_calls):
                result = fn(*args)
            tf.nest.map_structure(lambda t: t.numpy(), result)
            return (time.perf_counter() - start) / settings.profile_calls

        return case

    cases = {p.name: timed(p.fn, p.args) for p in pieces}
    cases["whole per_sample_scores"] = timed(whole, (x,))
    cases["empty tf.function call (dispatch overhead)"] = timed(empty, (x,))
    log(f"scoring profile: {len(pieces)} pieces x {settings.profile_rounds} rounds at batch {batch}")
    results, loads = interleaved(cases, settings.profile_rounds)
    ms = {name: summary(1e3 * np.asarray(v)) for name, v in results.items()}
    whole_ms = ms["whole per_sample_scores"]["median"]
    rows = []
    for p in pieces:
        median = ms[p.name]["median"]
        rows.append({
            "piece": p.name,
            "category": p.category,
            "ms": ms[p.name],
            "fraction_of_whole_function": median / whole_ms,
            "mflop": p.flops / 1e6,
            "gflops": p.flops / (median / 1e3) / 1e9 if p.flops else None,
            "output_mib": p.bytes_out / 2**20,
        })
    categories = {}
    for row in rows:
        if row["category"].startswith("("):
            continue  # timed for information, inside another piece
        categories[row["category"]] = categories.get(row["category"], 0.0) + row["ms"]["median"]
    with tempfile.TemporaryDirectory() as logdir:
        ops = scoring_profile.op_profile(lambda: whole(x)["score"].numpy(), settings.profile_calls * 2, logdir)
    return {
        "batch_size": batch,
        "load_average_start": load_start,
        "load_average_per_round": loads,
        "pieces": rows,
        "category_ms": categories,
        "sum_of_pieces_ms": sum(categories.values()),
        "whole_ms": ms["whole per_sample_scores"],
        "dispatch_overhead_ms": ms["empty tf.function call (dispatch overhead)"],
        "pieces_check_against_decoder_scores": check,
        "tf_profiler_ops": ops,
    }


# ---------------------------------------------------------------------------------------------- epochs


def bench_epochs(settings, graph_step_ms):
    import keras

    from gradcon_tf import experiment
    from benchmarks.timing import load_average

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    rng = np.random.default_rng(6)
    split = types.SimpleNamespace(
        train=rng.integers(0, 256, (settings.epoch_images, 28, 28, 1), dtype=np.uint8),
        validation=rng.integers(0, 256, (settings.validation_images, 28, 28, 1), dtype=np.uint8),
    )
    load_start = load_average()
    timer = EpochTimer()
    log(f"epochs: {settings.epochs} epochs of {settings.epoch_images} images (experiment.train_one_class)")
    start = time.perf_counter()
    experiment.train_one_class(split, epochs=settings.epochs, verbose=0, callbacks=[timer])
    total = time.perf_counter() - start
    later = timer.seconds[1:] or timer.seconds
    steps_per_epoch = -(-EPOCH_IMAGES // TRAIN_BATCH)
    return {
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "measured_epochs": settings.epochs,
        "images_per_epoch": settings.epoch_images,
        "validation_images": settings.validation_images,
        "epoch_s": timer.seconds,
        "train_one_class_wall_s": total,
        "budget": {"epochs": BUDGET_EPOCHS, "images_per_epoch": EPOCH_IMAGES, "steps_per_epoch": steps_per_epoch},
        "budget_wall_s_from_measured_epochs": (
            max(0.0, timer.seconds[0] - float(np.median(later)))  # tracing, once
            + BUDGET_EPOCHS * float(np.median(later)) * EPOCH_IMAGES / settings.epoch_images
        ),
        "budget_wall_s_from_step_time": BUDGET_EPOCHS * steps_per_epoch * graph_step_ms / 1e3,
        "note": (
            "from measured epochs: (first epoch - median later epoch: tracing, once) + 20 x the median "
            "later epoch of train_one_class (fit with validation), the epochs scaled to 5,400 images "
            "when fewer were used; "
            "from step time: 20 x 85 steps x the median graph step (no validation, no tracing)"
        ),
    }


# ---------------------------------------------------------------------------------------------- LiteRT


def bench_litert_section(settings, model):
    from benchmarks import bench_litert
    from benchmarks.timing import load_average
    from export.exporter import export_model

    load_start = load_average()
    with tempfile.TemporaryDirectory() as directory:
        log(f"LiteRT: exporting {list(settings.litert_targets)}")
        export_model(model, directory, targets=settings.litert_targets)
        results = {}
        for tag in settings.litert_targets:
            path = os.path.join(directory, f"gradcon_{tag}.tflite")
            results[tag] = bench_litert.bench_model(
                path, settings.litert_repeats, settings.litert_batch_repeats, os.cpu_count()
            )
            results[tag]["path"] = f"gradcon_{tag}.tflite (the scoring section's model)"
    import ai_edge_litert

    return {
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "ai_edge_litert": ai_edge_litert.__version__,
        "target_ms_per_image_batch1_1thread": bench_litert.TARGET_MS,
        "models": results,
    }


# ---------------------------------------------------------------------------------------------- memory


def start_memory_probe(count):
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.scoring_memory", "--images", str(count)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def finish_memory_probe(process):
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"scoring_memory failed ({process.returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def _second_half_growth(timeline):
    """RSS at the end minus RSS half-way through (images), from a (images, RSS MiB) timeline."""
    half = timeline[-1][0] / 2
    middle = min(timeline, key=lambda point: abs(point[0] - half))
    return timeline[-1][1] - middle[1]


def memory_summary(runs):
    small, large = runs[0], runs[-1]
    key = "peak_rss_streaming_mib" if large["peak_rss_streaming_mib"] is not None else "sampled_peak_rss_streaming_mib"
    return {
        "runs": runs,
        "peak_figure": key,
        "peak_growth_mib": large[key] - small[key],
        "increase_over_rss_before_mib": [run[key] - run["rss_before_mib"] for run in runs],
        "rss_growth_second_half_of_largest_mib": _second_half_growth(large["rss_timeline_mib"]),
        "peak_ratio_large_over_small": large[key] / small[key],
        "images_ratio": large["images"] / small["images"],
    }


# ---------------------------------------------------------------------------------------------- report


def environment():
    import keras
    import tensorflow as tf

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "processor": platform.processor() or None,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "git_commit": git("rev-parse", "HEAD"),
        "library_files_modified_in_worktree": (git("status", "--porcelain", "--", "gradcon_tf") or "").splitlines(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
    }


def fmt(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def spread(s, digits=1, scale=1.0):
    return f"{fmt(s['median'] * scale, digits)} [{fmt(s['p10'] * scale, digits)}, {fmt(s['p90'] * scale, digits)}]"


def ops_tables(ops, what, rows=12):
    """Markdown: time per TF op type (tf.profiler) and the most expensive single ops."""
    lines = [
        "",
        f"tf.profiler, {what} ({ops['calls']} calls traced; wall {ops['wall_ms_per_call']:.1f} ms per call, "
        f"op time {ops['op_ms_per_call']:.1f} ms per call summed over TF's executor threads, which overlap):",
        "",
        "| op type | role | ms per call | share of op time |",
        "|---|---|---|---|",
    ]
    for row in ops["by_op_type"][:rows]:
        lines.append(f"| {row['op_type']} | {row['role']} | {row['ms_per_call']:.2f} | {100 * row['share']:.1f} % |")
    lines += ["", "Most expensive ops: " + "; ".join(
        f"`{row['op']}` ({row['op_type']}) {row['ms_per_call']:.2f} ms" for row in ops["top_ops"][:8]) + ".", ""]
    return lines


def markdown(report, command):
    env, tr, sc, fl = report["environment"], report["training"], report["scoring"], report["flops"]
    prof, ep, lite, mem = report["scoring_profile"], report["epochs"], report.get("litert"), report["memory"]
    peak = report["matmul_peak_gflops"]
    lines = [
        "# GradCon benchmarks (issue 6)",
        "",
        f"Run {env['date_utc']} on {env['machine']} ({', '.join(env['gpus']) or 'no GPU'}), TensorFlow "
        f"{env['tensorflow']}, Keras {env['keras']}, commit `{(env['git_commit'] or '?')[:10]}`"
        + (f" (library files modified in the work tree: {', '.join(env['library_files_modified_in_worktree'])})"
           if env["library_files_modified_in_worktree"] else "") + ".",
        "",
        f"**Machine load** (1/5/15-min load average; 2 cores, other jobs running): start "
        f"{env['load_average_start']}, end {report['load_average_end']}; per section below. The "
        "shared machine makes single timings noisy: cases are interleaved round by round, figures are "
        "medians with [p10, p90], ratios are taken within a round. The least-contended runs are the "
        "p10 of a time and the p90 of a throughput.",
        "",
        "Regenerate: `" + command + "`" + (" (**smoke mode: tiny repeats, not figures to quote**)" if report["smoke"] else ""),
        "",
        "## Summary",
        "",
        "| figure | this run: median [p10, p90] | release (issue 6) | speed vs release: median (least contended: p10 time, p90 throughput) | % of fp32 matmul peak (medians) |",
        "|---|---|---|---|---|",
    ]
    release_step = RELEASE["train_step_ms_batch64"]
    for name, label in (("graph", "training step, batch 64, graph (ms)"), ("xla", "training step, batch 64, XLA (ms)")):
        lines.append(
            f"| {label} | {spread(tr['step_ms'][name])} | {release_step:.0f} | "
            f"{tr['speedup_vs_release'][name]:.2f}x ({release_step / tr['step_ms'][name]['p10']:.2f}x) | "
            f"{100 * tr['fraction_of_matmul_peak'][name]:.0f} % |"
        )
    for name, label in (
        ("model.score_b256", "scoring, `model.score` (batch 256), images/s"),
        *[(f"per_sample_scores_b{s}", f"scoring, raw `per_sample_scores` tf.function, batch {s}, images/s")
          for s in report["settings"]["score_batches"]],
        ("batch_of_one_loop", "scoring, batch-of-one tape loop (release style, tf.function), images/s"),
    ):
        lines.append(
            f"| {label} | {spread(sc['images_per_s'][name], 0)} | {RELEASE['scoring_images_per_s']:.0f} | "
            f"{sc['ratio_vs_release'][name]:.2f}x ({sc['images_per_s'][name]['p90'] / RELEASE['scoring_images_per_s']:.2f}x) | "
            f"{100 * sc['fraction_of_matmul_peak'][name]:.1f} % |"
        )
    if lite and "f32" in lite["models"]:
        f32 = lite["models"]["f32"]
        rate = f32["batch32_1thread_images_per_s"]
        lines.append(
            f"| scoring, LiteRT f32, batch 32, 1 thread (median of {report['settings']['litert_batch_repeats']} "
            f"calls), images/s | {rate:,.0f} | {RELEASE['scoring_images_per_s']:.0f} | "
            f"{rate / RELEASE['scoring_images_per_s']:.2f}x | {100 * fl['scored_image']['total'] * rate / 1e9 / peak['median']:.1f} % |"
        )
        lines.append(
            f"| LiteRT f32, batch 1, 1 thread, ms per image: p50 [p99] | {f32['batch1_1thread_ms']['p50']:.3f} "
            f"[{f32['batch1_1thread_ms']['p99']:.3f}] | | | |"
        )
    lines.append(f"| fp32 peak, {MATMUL_N}x{MATMUL_N} matmul (GFLOP/s) | {spread(peak)} | | | 100 % |")
    b256 = sc["ratio_vs_batch_of_one_loop_same_round"].get("per_sample_scores_b256")
    lines += [
        "",
        "* Release figures: issue 6 (the authors' PyTorch code on this machine, another run, not "
        "re-measured here). In brackets, our least-contended runs against them: an optimistic bound.",
        f"* Batched vs batch-of-one loop, same rounds: raw batch 256 "
        f"{spread(b256, 1) if b256 else '-'}x, `model.score` "
        f"{spread(sc['ratio_vs_batch_of_one_loop_same_round']['model.score_b256'])}x. Same numbers: "
        f"max |score difference| {sc['loop_vs_batched_same_numbers']['max_abs_diff_score']:.1e} over "
        f"{sc['loop_vs_batched_same_numbers']['images']} images. `model.score` / raw batch-256 "
        f"function, same rounds: {spread(sc['ratio_model_score_over_raw_same_round']['per_sample_scores_b256'], 2)} "
        "(the cost of Keras `predict` around the same function).",
        f"* XLA / graph step time, same rounds: {spread(tr['ratio_xla_over_graph_step_time'], 2)}. "
        f"First call (trace + compile): graph {tr['first_call_s']['graph']:.1f} s, XLA {tr['first_call_s']['xla']:.1f} s. "
        f"Trace counts after warm-up {tr['trace_count']['after_warmup']}, at the end {tr['trace_count']['at_end']} "
        "(no retracing).",
        f"* Achieved: training {spread(tr['gflops']['graph'])} GFLOP/s (graph), scoring "
        f"{spread(sc['gflops']['per_sample_scores_b256'] if 'per_sample_scores_b256' in sc['gflops'] else sc['gflops']['model.score_b256'])} "
        f"GFLOP/s (raw, batch 256), from the analytic FLOPs below.",
        f"* Load average per round: training {tr['load_average_per_round']}, scoring {sc['load_average_per_round']}.",
        f"* Targets of issue 6: scoring >= {TARGETS['scoring_images_per_s']:,.0f} images/s, training step <= "
        f"{TARGETS['train_step_ms_batch64']:.0f} ms (1.5x the release). This suite measures; it changes nothing.",
        "",
        "## Whole-MNIST one-class training at the reproduction budget",
        "",
        f"{ep['budget']['epochs']} epochs x {ep['budget']['images_per_epoch']:,} images (batch 64, "
        f"{ep['budget']['steps_per_epoch']} steps per epoch):",
        "",
        f"* **measured**: {ep['measured_epochs']} real epochs of `experiment.train_one_class` "
        f"({ep['images_per_epoch']:,} images, validation on {ep['validation_images']}) took "
        f"{', '.join(f'{s:.1f}' for s in ep['epoch_s'])} s; 20 epochs = tracing once (first - later) + 20 x median later epoch = "
        f"**{ep['budget_wall_s_from_measured_epochs'] / 60:.1f} min** "
        f"({ep['budget_wall_s_from_measured_epochs']:.0f} s; load {ep['load_average_start']} -> {ep['load_average_end']});",
        f"* **computed** from the step time: 20 x {ep['budget']['steps_per_epoch']} steps x "
        f"{tr['step_ms']['graph']['median']:.1f} ms = {ep['budget_wall_s_from_step_time']:.0f} s "
        "(no validation, no tracing).",
        "",
        "## Training profile (batch 64, graph mode, same rounds as the steps)",
        "",
        "| part | ms: median [p10, p90] | share of a full step: median of same-round ratios | share, p10 / p10 (least contended) |",
        "|---|---|---|---|",
    ]
    step = tr["step_ms"]["graph"]
    lines.append(f"| full GradCon step (Eq. 6, Adam, running averages) | {spread(step)} | 100 % | 100 % |")
    for name, s in tr["parts_ms"].items():
        lines.append(
            f"| {name} | {spread(s)} | {100 * tr['parts_fraction_of_graph_step'][name]['median']:.0f} % | "
            f"{100 * s['p10'] / step['p10']:.0f} % |"
        )
    lines += ops_tables(tr["tf_profiler_ops_graph_step"], "one graph-mode training step")
    ti = fl["training_image"]["items"]
    lines += [
        "",
        "Analytic MFLOP per training image: " + ", ".join(f"{k.replace('_', ' ')} {v / 1e6:.1f}" for k, v in ti.items())
        + f"; total {fl['training_image']['total'] / 1e6:.1f} ({64 * fl['training_image']['total'] / 1e9:.2f} GFLOP per step).",
        "",
        f"## Scoring profile (fast path cut into its pieces, batch {prof['batch_size']})",
        "",
        f"Whole `per_sample_scores`: {spread(prof['whole_ms'], 2)} ms per batch; sum of the pieces "
        f"{prof['sum_of_pieces_ms']:.2f} ms (each piece also pays one tf.function dispatch, "
        f"{prof['dispatch_overhead_ms']['median']:.3f} ms). Pieces reproduce `decoder_scores` "
        f"(max |cosine difference| {prof['pieces_check_against_decoder_scores']['max_abs_diff_cosines']:.1e}). "
        f"Load {prof['load_average_start']} -> {prof['load_average_per_round'][-1]}.",
        "",
        "| category | ms (sum of its pieces' medians) | share of the sum of pieces |",
        "|---|---|---|",
    ]
    total = prof["sum_of_pieces_ms"]
    for category, ms in sorted(prof["category_ms"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {category} | {ms:.2f} | {100 * ms / total:.0f} % |")
    lines += [
        "",
        "| piece | ms: median [p10, p90] | share of the sum of pieces | MFLOP | GFLOP/s | output MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in prof["pieces"]:
        lines.append(
            f"| {row['piece']} | {spread(row['ms'], 3)} | "
            f"{'(inside)' if row['category'].startswith('(') else format(100 * row['ms']['median'] / total, '.1f') + ' %'} | "
            f"{fmt(row['mflop'] or None, 1)} | {fmt(row['gflops'], 1)} | {row['output_mib']:.2f} |"
        )
    lines += ops_tables(prof["tf_profiler_ops"], f"one `per_sample_scores` call at batch {prof['batch_size']}")
    si = fl["scored_image"]["items"]
    lines += [
        "",
        "## Analytic FLOPs (2 FLOPs per MAC; formulas in `benchmarks/flops.py`)",
        "",
        f"Per scored 28x28x1 image: **{fl['scored_image']['total'] / 1e6:.2f} MFLOP** = "
        + " + ".join(f"{k.replace('_', ' ')} {v / 1e6:.2f}" for k, v in si.items())
        + f". Per training image: **{fl['training_image']['total'] / 1e6:.1f} MFLOP**.",
        "",
        "| layer | in -> out | forward MACs | formula |",
        "|---|---|---|---|",
    ]
    for row in fl["layers"]:
        lines.append(
            f"| {row['layer']} | {'x'.join(map(str, row['input']))} -> {'x'.join(map(str, row['output']))} | "
            f"{row['forward_macs']:,} | {row['formula']} |"
        )
    lines += [
        "",
        "## Scoring memory, streamed (tf.data from a generator, batch 256, one process per N)",
        "",
        "| images | RSS before streaming (MiB) | peak RSS while streaming (MiB) | sampled peak (MiB) | peak before streaming: import, build, warm-up (MiB) | images/s |",
        "|---|---|---|---|---|---|",
    ]
    for run in mem["runs"]:
        lines.append(
            f"| {run['images']:,} | {run['rss_before_mib']:.0f} | {fmt(run['peak_rss_streaming_mib'], 0)} | "
            f"{run['sampled_peak_rss_streaming_mib']:.0f} | {run['peak_rss_before_streaming_mib']:.0f} | {run['images_per_s']:.0f} |"
        )
    lines += [
        "",
        f"{mem['images_ratio']:.0f}x the images, peak {mem['peak_ratio_large_over_small']:.3f}x "
        f"({mem['peak_growth_mib']:+.1f} MiB); peak above the RSS before streaming: "
        + ", ".join(f"{v:+.1f}" for v in mem["increase_over_rss_before_mib"]) + " MiB.",
        "",
        f"RSS while the {mem['runs'][-1]['images']:,} images stream (images generated so far: MiB): "
        + ", ".join(f"{n:,}: {v:.0f}" for n, v in mem["runs"][-1]["rss_timeline_mib"])
        + f". Second half of the run: {mem['rss_growth_second_half_of_largest_mib']:+.1f} MiB.",
        "",
    ]
    if lite:
        lines += [
            "## LiteRT (the same model exported with `export`; `benchmarks/bench_litert.py`)",
            "",
            "| model | batch 1, 1 thread: p50 ms [p99] | batch 32, 1 thread, images/s | batch 32, all threads, images/s |",
            "|---|---|---|---|",
        ]
        threads = os.cpu_count()
        for tag, m in lite["models"].items():
            b1 = m["batch1_1thread_ms"]
            lines.append(
                f"| {tag} | {b1['p50']:.3f} [{b1['p99']:.3f}] | {m['batch32_1thread_images_per_s']:.0f} | "
                f"{m.get(f'batch32_{threads}thread_images_per_s', m['batch32_1thread_images_per_s']):.0f} |"
            )
        lines += ["", f"Load {lite['load_average_start']} -> {lite['load_average_end']}.", ""]
    lines += [
        "## GPU",
        "",
        "Not run: no GPU was available to this session." if not env["gpus"] else f"Ran on {env['gpus']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for benchmarks.json and README.md")
    parser.add_argument("--smoke", action="store_true", help="few repeats, small N (for tests)")
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--skip-litert", action="store_true")
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else Settings()
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=args.rounds, profile_rounds=args.rounds)
    command = "python -m benchmarks.run --out " + args.out + (" --smoke" if args.smoke else "") + (
        f" --rounds {args.rounds}" if args.rounds else "") + (" --skip-litert" if args.skip_litert else "")
    started = time.perf_counter()
    probes = [start_memory_probe(n) for n in settings.memory_images] if settings.memory_parallel else None

    import gradcon_tf

    from benchmarks import flops

    report = {"smoke": args.smoke, "command": command, "settings": dataclasses.asdict(settings),
              "environment": environment(), "release": RELEASE, "targets": TARGETS}
    report["flops"] = flops.per_image(gradcon_tf.GradCon())
    train_flops = report["flops"]["training_image"]["total"]
    score_flops = report["flops"]["scored_image"]["total"]
    report["training"] = bench_training(settings, train_flops)
    report["scoring"], model = bench_scoring(settings, score_flops)
    report["scoring_profile"] = bench_scoring_profile(settings, model)
    from benchmarks.timing import summary

    report["matmul_peak_gflops"] = summary(
        report["training"]["matmul_samples_gflops"] + report["scoring"]["matmul_samples_gflops"]
    )
    report["epochs"] = bench_epochs(settings, report["training"]["step_ms"]["graph"]["median"])
    if not args.skip_litert:
        report["litert"] = bench_litert_section(settings, model)
    log(f"memory: scoring {list(settings.memory_images)} images streamed, one process each")
    if probes is None:
        runs = [finish_memory_probe(start_memory_probe(n)) for n in settings.memory_images]
    else:
        runs = [finish_memory_probe(p) for p in probes]
    report["memory"] = memory_summary(runs)
    report["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    report["wall_s"] = time.perf_counter() - started

    from gradcon_tf import files

    os.makedirs(args.out, exist_ok=True)
    files.write_text(os.path.join(args.out, "benchmarks.json"), json.dumps(report, indent=1) + "\n")
    files.write_text(os.path.join(args.out, "README.md"), markdown(report, command) + "\n")
    log(f"wrote {args.out}/benchmarks.json and README.md in {report['wall_s']:.0f} s")
    return report


if __name__ == "__main__":
    main()
