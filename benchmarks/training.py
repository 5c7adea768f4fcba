"""The training-step benchmark: graph and XLA steps at batch 64 and the parts of a step."""

import tempfile
import time

import numpy as np

from benchmarks.common import RELEASE, TRAIN_BATCH, TraceCounter, images, log, make_model, matmul_case


#: The case name of the PyTorch anchor (``benchmarks/pytorch_release.py``).
PYTORCH = "pytorch release"


def pytorch_anchor_case(settings):
    """A case timing the release's step in PyTorch on the same batch, or None without torch."""
    import os

    from benchmarks import pytorch_release

    if not pytorch_release.available():
        log("training: torch is not installed: no PyTorch anchor (pip install torch==2.13.0)")
        return None
    release = pytorch_release.Release(threads=os.cpu_count())
    batch = release.tensor(images(TRAIN_BATCH, seed=1))
    for _ in range(settings.train_warmup):
        release.train_step(batch)

    def case():
        out = []
        for _ in range(settings.train_steps_per_round):
            start = time.perf_counter()
            release.train_step(batch)
            out.append(time.perf_counter() - start)
        return out

    return case


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
    anchor = pytorch_anchor_case(settings)
    if anchor is not None:
        cases[PYTORCH] = anchor
    log(f"training: {settings.rounds} rounds x {settings.train_steps_per_round} steps, graph and XLA")
    results, loads = interleaved(cases, settings.rounds)

    from benchmarks import scoring_profile

    with tempfile.TemporaryDirectory() as logdir:
        ops = scoring_profile.op_profile(
            lambda: float(models["graph"].train_function([batch])["loss"]), settings.train_steps_per_round, logdir
        )
    per_round_median = {name: [float(np.median(r)) for r in results[name]] for name in results}
    timed = ("graph", "xla") + ((PYTORCH,) if PYTORCH in results else ())
    step_ms = {name: summary(1e3 * np.asarray(flatten(results[name]))) for name in timed}
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
        # The anchor timed in the same rounds: its step time over ours, round by round.
        "speedup_vs_pytorch_same_round": {
            name: summary([a / b for a, b in zip(per_round_median[PYTORCH], per_round_median[name])])
            for name in ("graph", "xla")
        } if PYTORCH in results else None,
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
