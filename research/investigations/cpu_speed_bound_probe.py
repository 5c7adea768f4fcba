"""Probe for the speed targets against the PyTorch release (training >= 1.5x, scoring >= 20x):
how fast could any matmul formulation of this network be on this CPU?

    python research/investigations/cpu_speed_bound_probe.py native
    python research/investigations/cpu_speed_bound_probe.py avx2     # oneDNN and MKL capped at AVX2

For every conv layer of the paper's CAE it times the three GEMMs an im2col formulation of the
layer runs (forward, kernel gradient, input gradient; batch 64 for training, 256 for scoring) and
keeps the fastest of the three as that layer's rate (eight distinct GEMMs per call, so that
dispatch and TensorFlow's two inter-op threads work for it, not against it). The step's analytic multiply-accumulates per
layer (``benchmarks/flops.py``'s accounting: encoder 3 per forward MAC, decoder 9, its first
layer 6; scoring: encoder 1, decoder 3, its first layer 2) divided by those rates give a lower
bound on the time of *any* formulation that runs this network's convolutions as TensorFlow
matmuls, ignoring every im2col / col2im copy. In the same run, interleaved: our compiled train
step and ``per_sample_scores`` at batch 256 against the PyTorch release
(``benchmarks/pytorch_release.py``), so the bound and the targets are read on one machine.
Output: cpu_speed_bound_probe_output.txt.
"""

import os
import sys
import time

from benchmarks.run import ISA_CAPS  # imports neither TensorFlow nor torch

ISA = sys.argv[1] if len(sys.argv) > 1 else "native"
os.environ.update(ISA_CAPS[ISA])  # before TensorFlow or torch loads, as benchmarks.run --isa
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import flops, pytorch_release  # noqa: E402
from benchmarks.common import images, make_model  # noqa: E402

TRAIN_BATCH, SCORE_BATCH = 64, 256


def median_seconds(fn, calls=20):
    for _ in range(3):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gemm_seconds(m, k, n, transpose_a=False, repeats=8):
    """Seconds per (m x k) @ (k x n) GEMM: ``repeats`` distinct ones per call (amortises dispatch)."""
    lefts = [tf.random.normal([k, m] if transpose_a else [m, k]) for _ in range(repeats)]
    b = tf.random.normal([k, n])
    fn = tf.function(lambda lefts, b: tf.add_n(
        [tf.linalg.matmul(a, b, transpose_a=transpose_a)[0, 0] for a in lefts]))
    return median_seconds(lambda: fn(lefts, b).numpy()) / repeats


def layer_gemms(row, batch):
    """(m, k, n, transpose_a) of the forward, kernel-gradient and input-gradient GEMMs."""
    kernel_taps = row["kernel_elements"] // (row["input"][2] * row["output"][2])  # kh * kw
    cin, cout = row["input"][2], row["output"][2]
    if row["part"] == "encoder":  # im2col over output positions
        m = batch * row["output"][0] * row["output"][1]
        return [(m, kernel_taps * cin, cout, False), (kernel_taps * cin, m, cout, True),
                (m, cout, kernel_taps * cin, False)]
    m = batch * row["input"][0] * row["input"][1]  # transposed conv: scatter from input positions
    return [(m, cin, kernel_taps * cout, False), (cin, m, kernel_taps * cout, True),
            (m, kernel_taps * cout, cin, False)]


def bound_ms(rows, batch, macs_per_forward_mac):
    total, lines = 0.0, []
    for index, row in enumerate(rows):
        rates = []
        for m, k, n, transpose_a in layer_gemms(row, batch):
            rates.append(2 * m * k * n / gemm_seconds(m, k, n, transpose_a) / 1e9)
        rate = max(rates)
        first_decoder = row["part"] == "decoder" and rows[index - 1]["part"] == "encoder"
        macs = batch * row["forward_macs"] * macs_per_forward_mac(row["part"], first_decoder)
        total += 2 * macs / rate / 1e9
        lines.append(f"  {row['layer']:18s} best GEMM {rate:6.1f} GFLOP/s (of {', '.join(f'{r:.0f}' for r in rates)})")
    return 1e3 * total, lines


def main():
    model = make_model()
    rows = flops.layer_macs(model)
    train_bound, train_lines = bound_ms(
        rows, TRAIN_BATCH, lambda part, first: 3 if part == "encoder" else (6 if first else 9))
    score_bound, score_lines = bound_ms(
        rows, SCORE_BATCH, lambda part, first: 1 if part == "encoder" else (2 if first else 3))

    model.make_train_function()
    batch = tf.constant(images(TRAIN_BATCH, seed=1))
    score_fn = tf.function(model.per_sample_scores)
    score_input = tf.constant(images(SCORE_BATCH, seed=2))
    release = pytorch_release.Release(threads=os.cpu_count())
    torch_batch = release.tensor(images(TRAIN_BATCH, seed=1))
    torch_images = release.tensor(images(32, seed=3))
    ours_step, torch_step, ours_score, torch_score = [], [], [], []
    for _ in range(5):  # interleaved rounds
        ours_step.append(median_seconds(lambda: float(model.train_function([batch])["loss"]), 6))
        torch_step.append(median_seconds(lambda: release.train_step(torch_batch), 6))
        ours_score.append(SCORE_BATCH / median_seconds(lambda: score_fn(score_input)["score"].numpy(), 4))
        torch_score.append(32 / median_seconds(lambda: [release.score_one(x) for x in torch_images], 2))
    step, torch_ms = 1e3 * np.median(ours_step), 1e3 * np.median(torch_step)
    rate, torch_rate = np.median(ours_score), np.median(torch_score)
    matmul = 2 * 2048**3 / gemm_seconds(2048, 2048, 2048, repeats=1) / 1e9
    print(f"== {ISA} (load {os.getloadavg()[0]:.2f}); 2048x2048 matmul {matmul:.0f} GFLOP/s")
    print(f"training step, batch 64: ours {step:.1f} ms, PyTorch {torch_ms:.1f} ms, ratio {torch_ms / step:.2f}")
    print(f"  target 1.5x: <= {torch_ms / 1.5:.1f} ms; matmul-rate lower bound {train_bound:.1f} ms "
          f"(at best {torch_ms / train_bound:.2f}x PyTorch)")
    print("\n".join(train_lines))
    print(f"scoring: ours {rate:,.0f} images/s (batch 256), PyTorch {torch_rate:,.0f} (batch of one), "
          f"ratio {rate / torch_rate:.1f}")
    bound_rate = SCORE_BATCH / (score_bound / 1e3)
    print(f"  target 20x: >= {20 * torch_rate:,.0f} images/s; matmul-rate upper bound {bound_rate:,.0f} "
          f"images/s (at best {bound_rate / torch_rate:.1f}x PyTorch)")
    print("\n".join(score_lines))


if __name__ == "__main__":
    main()
