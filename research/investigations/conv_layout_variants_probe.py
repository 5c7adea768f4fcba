"""Probe for the CPU speed targets: the same GradCon train step with the CAE's convolutions
written other ways, interleaved against the library's step (batch 64, compiled, same weights).

    python research/investigations/conv_layout_variants_probe.py native
    python research/investigations/conv_layout_variants_probe.py avx2     # oneDNN and MKL capped at AVX2

Variants (each model's layers patched in place; the loss of the first step is checked equal):

* ``s2d-decoder``: each stride-2 4x4 transposed conv + crop as a stride-1 2x2 conv producing the
  four output phases, then ``depth_to_space`` (crop 2 falls on whole phases: nothing computed
  that is cropped);
* ``s2d-all``: the same, and each encoder pad + stride-2 conv as a stride-1 2x2 conv over
  ``space_to_depth`` of the padded input;
* ``explicit-padding``: pads and crops folded into the convolutions' explicit paddings.

Output: conv_layout_variants_probe_output.txt.
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

from benchmarks.common import images, make_model  # noqa: E402


def conv_s2d(x, kernel):
    """ZeroPadding2D(2) + 4x4 stride-2 'valid' conv == 2x2 stride-1 conv over space_to_depth."""
    height, cin, cout = x.shape[1], kernel.shape[2], kernel.shape[3]
    used = 2 * ((height + 4 - 4) // 2 + 1) + 2  # rows the strided conv reads
    x = tf.pad(x, [[0, 0], [2, used - height - 2], [2, used - height - 2], [0, 0]])
    kernel = tf.reshape(kernel, [2, 2, 2, 2, cin, cout])  # (qy, ay, qx, ax, in, out), k = 2q + a
    kernel = tf.reshape(tf.transpose(kernel, [0, 2, 1, 3, 4, 5]), [2, 2, 4 * cin, cout])
    return tf.nn.conv2d(tf.nn.space_to_depth(x, 2), kernel, 1, "VALID")


def deconv_s2d(x, kernel, crop):
    """4x4 stride-2 'valid' transposed conv + crop: y[2j + a] = sum_q x[j - q] W[2q + a]."""
    cout, cin = kernel.shape[2], kernel.shape[3]
    kernel = tf.reshape(kernel, [2, 2, 2, 2, cout, cin])
    kernel = tf.reshape(tf.transpose(kernel, [0, 2, 1, 3, 4, 5]), [2, 2, 4 * cout, cin])
    kernel = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])  # correlation, (2, 2, in, 4 out)
    if crop == 2:  # the phases 1 .. n-1 only
        return tf.nn.depth_to_space(tf.nn.conv2d(x, kernel, 1, "VALID"), 2)
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    full = tf.nn.depth_to_space(tf.nn.conv2d(x, kernel, 1, "VALID"), 2)
    return full[:, crop:-crop, crop:-crop, :]


def deconv_explicit(x, kernel, crop, filters):
    size = 2 * x.shape[1] + 2 - 2 * crop
    shape = [tf.shape(x)[0], size, size, filters]
    return tf.nn.conv2d_transpose(x, kernel, shape, 2, [[0, 0], [crop, crop], [crop, crop], [0, 0]])


def patch(model, variant):
    crops = {}
    for layer in model.decoder.layers:
        if layer.name.startswith("decoder_crop"):
            crops[layer.name[-1]] = layer.cropping[0][0]
            layer.call = lambda x: x
    for layer in model.decoder.layers:
        if layer.name.startswith("decoder_deconv"):
            crop = crops[layer.name[-1]]
            if variant == "explicit-padding":
                layer.call = lambda x, l=layer, c=crop: deconv_explicit(x, l.kernel, c, l.filters) + l.bias
            else:
                layer.call = lambda x, l=layer, c=crop: deconv_s2d(x, l.kernel, c) + l.bias
    if variant == "s2d-decoder":
        return
    for layer in model.encoder.layers:
        if layer.name.startswith("encoder_pad"):
            layer.call = lambda x: x
        if layer.name.startswith("encoder_conv"):
            if variant == "explicit-padding":
                layer.convolution_op = lambda x, w: tf.nn.conv2d(x, w, 2, [[0, 0], [2, 2], [2, 2], [0, 0]])
            else:
                layer.convolution_op = conv_s2d


def main():
    batch = tf.constant(images(64, seed=1))
    models = {"library": make_model()}
    for variant in ("s2d-decoder", "s2d-all", "explicit-padding"):
        models[variant] = make_model()
        patch(models[variant], variant)
    losses = {}
    for name, model in models.items():
        model.make_train_function()
        losses[name] = float(model.train_function([batch])["loss"])
        for _ in range(4):
            float(model.train_function([batch])["loss"])
    times = {name: [] for name in models}
    for _ in range(6):  # interleaved rounds
        for name, model in models.items():
            for _ in range(5):
                start = time.perf_counter()
                float(model.train_function([batch])["loss"])
                times[name].append(time.perf_counter() - start)
    print(f"== {ISA} (load {os.getloadavg()[0]:.2f})")
    for name in models:
        ms = 1e3 * np.asarray(times[name])
        print(f"{name:17s} first loss {losses[name]:.7f}  step median {np.median(ms):5.1f} ms "
              f"[p10 {np.percentile(ms, 10):5.1f}, p90 {np.percentile(ms, 90):5.1f}]")


if __name__ == "__main__":
    main()
