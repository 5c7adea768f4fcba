"""regional_gradient_probe.regional_parts against an independent computation: for a few images
and windows, the kernel gradients of the window's squared error alone taken with a
GradientTape, their cosine with the reference per decoder layer, minus the mean, and the
window's MSE (random references, an untrained 64 px model).

    python research/investigations/regional_gradient_check.py
"""

import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from regional_gradient_probe import regional_parts, windows  # noqa: E402

from gradcon_tf import GradCon, gradients  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    model = GradCon(input_shape=(64, 64, 1))
    model.compile()
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype("float32"))
    images = rng.uniform(size=(3, 64, 64, 1)).astype("float32")
    recon, grad = regional_parts(model, images, batch=2)
    kernels = gradients.constrained_kernels(model.decoder)
    worst = 0.0
    for n in (0, 2):
        for k in (0, 24, 48):
            y0, y1, x0, x1 = windows(64, 64)[k]
            with tf.GradientTape() as tape:
                error = tf.square(model(images[n : n + 1]) - images[n : n + 1])[:, y0:y1, x0:x1]
                loss = tf.reduce_sum(error)
            cosines = [
                float(tf.reduce_sum(g * r) / (tf.norm(g) * tf.norm(r)))
                for g, r in zip(tape.gradient(loss, kernels), model.reference_gradients)
            ]
            expected = (-np.mean(cosines), float(tf.reduce_mean(error)))
            got = (float(grad[n, k]), float(recon[n, k]))
            worst = max(worst, *(abs(a - b) for a, b in zip(expected, got)))
            print(f"image {n} window {k}: grad {got[0]:.6f} (tape {expected[0]:.6f}), "
                  f"recon {got[1]:.6f} (tape {expected[1]:.6f})")
    print(f"largest difference {worst:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
