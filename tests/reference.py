"""Independent, slow reference computations for the tests (not used by the library).

The paper's CAE written directly with tf.nn ops on a flat list of weights, in float64, and the
GradCon objective J = L + alpha * L_grad (Eq. 6) differentiated with nested tapes.
"""

import numpy as np
import tensorflow as tf

DECODER_CROPS = (2, 1, 2, 1)


def cae_forward(weights, images):
    """weights: [enc k1, b1, ..., enc k4, b4, dec k1, b1, ..., dec k4, b4] (Keras layouts)."""
    h = images
    for i in range(4):
        kernel, bias = weights[2 * i], weights[2 * i + 1]
        h = tf.pad(h, [[0, 0], [2, 2], [2, 2], [0, 0]])
        h = tf.nn.relu(tf.nn.conv2d(h, kernel, 2, "VALID") + bias)
    for i in range(4):
        kernel, bias = weights[8 + 2 * i], weights[9 + 2 * i]
        n, size = tf.shape(h)[0], h.shape[1]
        out = (size - 1) * 2 + 4
        h = tf.nn.conv2d_transpose(h, kernel, [n, out, out, kernel.shape[2]], 2, "VALID") + bias
        c = DECODER_CROPS[i]
        h = h[:, c : out - c, c : out - c, :]
        h = tf.sigmoid(h) if i == 3 else tf.nn.relu(h)
    return h


def cosine(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na * nb == 0 else float(np.sum(a * b) / (na * nb))


def objective_and_gradient(weights, references, images, alpha, second_order=True):
    """(J, dJ/dW for every weight) with J = MSE + alpha * (-mean_i cos(dMSE/dphi_i, ref_i))."""
    weights = [tf.Variable(w) for w in weights]
    decoder_kernels = [weights[8 + 2 * i] for i in range(4)]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            recon = tf.reduce_mean(tf.square(cae_forward(weights, images) - images))
        kernel_grads = inner.gradient(recon, decoder_kernels)
        if not second_order:
            kernel_grads = [tf.stop_gradient(g) for g in kernel_grads]
        cosines = []
        for g, r in zip(kernel_grads, references):
            r = tf.constant(r, g.dtype)
            norm = tf.norm(g) * tf.norm(r)
            cosines.append(tf.reduce_sum(g * r) / norm if float(norm) > 0 else tf.zeros((), g.dtype))
        total = recon + alpha * -tf.reduce_mean(tf.stack(cosines))
    return float(total), [g.numpy() for g in outer.gradient(total, weights)]


def as_float64(arrays):
    return [np.asarray(a, np.float64) for a in arrays]
