"""The scoring benchmarks: model.score and the raw scoring function against a batch-of-one loop, and the scoring profile."""

import tempfile
import time

import numpy as np

from benchmarks.common import RELEASE, images, log, make_model, matmul_case


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


#: The case name of the PyTorch anchor (``benchmarks/pytorch_release.py``).
PYTORCH = "pytorch release (batch of one)"


def pytorch_scoring_case(settings, loop_input):
    """A case timing the release's batch-of-one scoring in PyTorch, or None without torch."""
    import os

    from benchmarks import pytorch_release

    if not pytorch_release.available():
        return None
    release = pytorch_release.Release(threads=os.cpu_count())
    inputs = release.tensor(loop_input)
    release.score_one(inputs[0])

    def case():
        n = settings.loop_images_per_round
        start = time.perf_counter()
        for i in range(n):
            release.score_one(inputs[i])
        return n / (time.perf_counter() - start)

    return case


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
        "model_score": model._score_functions[False].experimental_get_tracing_count(),
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
    anchor = pytorch_scoring_case(settings, loop_input)
    if anchor is not None:
        cases[PYTORCH] = anchor
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
        # The anchor timed in the same rounds: our throughput over its, round by round.
        "ratio_vs_pytorch_same_round": {
            n: summary([a / b for a, b in zip(results[n], results[PYTORCH])])
            for n in throughput_names if n != PYTORCH
        } if PYTORCH in results else None,
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
                "model_score": model._score_functions[False].experimental_get_tracing_count(),
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
