"""The fast path's tap layouts against a batch-of-one GradientTape loop, for several kernel/stride shapes.

The paper's decoder (kernel 4 = 2 * stride 2) takes the space-to-depth layout; kernels that are not
a multiple of a square stride take the one-slice-per-tap layout. Both must give each sample's own
gradient cosines exactly as a per-sample tape does.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradcon_tf import gradients


def decoder(kernel_sizes, strides, crops, channels=(8, 6, 1), latent=(3, 3, 5)):
    inputs = keras.Input(latent)
    x = inputs
    for index, (kernel, stride, crop, filters) in enumerate(zip(kernel_sizes, strides, crops, channels)):
        last = index == len(channels) - 1
        x = keras.layers.Conv2DTranspose(filters, kernel, strides=stride, padding="valid")(x)
        if crop:
            x = keras.layers.Cropping2D(crop)(x)
        x = keras.layers.Activation("sigmoid" if last else "relu")(x)
    return keras.Model(inputs, x)


def batch_of_one_cosines(model, latents, images, references):
    """Per sample: tape gradient of its own MSE w.r.t. each kernel, cosine in numpy (float64)."""
    kernels = gradients.constrained_kernels(model)
    rows = []
    for latent, image in zip(latents, images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(latent[None]) - image[None]))
        grads = tape.gradient(loss, [k.value for k in kernels])
        row = []
        for g, r in zip(grads, references):
            g, r = g.numpy().astype(np.float64), r.astype(np.float64)
            row.append(np.sum(g * r) / (np.linalg.norm(g) * np.linalg.norm(r)))
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize(
    "kernel_sizes,strides,crops",
    [
        ((4, 4, 4), (2, 2, 2), (1, 0, 1)),  # kernel = 2 * stride: space-to-depth taps
        ((3, 5, 3), (2, 2, 1), (0, 1, 0)),  # kernel not a multiple of the stride: one slice per tap
        ((4, 3, 2), ((2, 1), (1, 1), 2), (0, 0, 0)),  # non-square stride; stride 1; kernel = stride
        ((6, 4, 3), (3, 2, 3), (0, 0, 0)),  # kernel = 2 * stride 3, kernel = stride 3
    ],
)
def test_fast_path_equals_batch_of_one_tape(kernel_sizes, strides, crops):
    keras.utils.set_random_seed(0)
    model = decoder(kernel_sizes, strides, crops)
    plan = gradients.plan_decoder(model)
    assert plan, "these decoders must take the fast path"
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(5, 3, 3, 5)).astype(np.float32)
    images = rng.uniform(size=(5, *model.output_shape[1:])).astype(np.float32)
    references = [rng.normal(size=k.shape).astype(np.float32) for k in gradients.constrained_kernels(model)]

    recon, cosines, reconstructions = gradients.decoder_scores(
        plan, tf.constant(latents), tf.constant(images), [tf.constant(r) for r in references]
    )
    expected = batch_of_one_cosines(model, latents, images, references)
    np.testing.assert_allclose(cosines.numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(reconstructions.numpy(), model(latents).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        recon.numpy(), np.mean((model(latents).numpy() - images) ** 2, axis=(1, 2, 3)), rtol=1e-5
    )
    assert np.std(expected) > 0.01  # the cosines differ between samples and layers


def test_tap_layout_choice():
    step = gradients.TransposedConv(tf.zeros([4, 4, 2, 3]), None, (2, 2))
    assert gradients._block_taps(step) == (2, 2)
    assert gradients._block_taps(gradients.TransposedConv(tf.zeros([3, 3, 2, 3]), None, (2, 2))) is None
    assert gradients._block_taps(gradients.TransposedConv(tf.zeros([4, 4, 2, 3]), None, (2, 1))) is None
    assert gradients._block_taps(gradients.TransposedConv(tf.zeros([4, 4, 2, 3]), None, (1, 1))) is None
