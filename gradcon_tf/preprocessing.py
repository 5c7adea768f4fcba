"""Image checks on the host and the in-graph preprocessing step of the model.

Images are NHWC, either uint8 (scaled by 1/255) or floating point in [0, 1]. The network works at
its working size (the paper's 28x28 for images up to 32 px, :func:`networks.working_size`);
images of another size are resized to it with bilinear interpolation inside the model, as the
authors' release does for CIFAR-10 (32x32 -> 28x28).
"""

import numpy as np
import tensorflow as tf

from gradcon_tf.networks import IMAGE_SIZE


def check_images(images, input_shape, name="images"):
    """Return ``images`` as a numpy array of shape (N, *input_shape), or raise ValueError.

    Accepts uint8, or float in [0, 1] with no NaN/inf. A 3-D array (N, H, W) is taken as
    single-channel when the model has one channel.
    """
    if isinstance(images, (tf.Tensor, tf.Variable)):
        images = images.numpy()
    images = np.asarray(images)
    expected = f"(N, {', '.join(str(d) for d in input_shape)})"
    if images.ndim == 3 and input_shape[-1] == 1:
        images = images[..., None]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{name} must have shape {expected} (NHWC), got shape {images.shape}."
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected at least one image of shape {expected}.")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"{name} must be uint8 (0..255) or float in [0, 1], got dtype {images.dtype}."
        )
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{name} contains NaN or inf values; expected float values in [0, 1].")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{name} has float values in [{low:g}, {high:g}]; expected [0, 1] "
            "(pass uint8 for 0..255 images)."
        )
    return images.astype(np.float32, copy=False)


def check_image_spec(spec, input_shape, name="dataset"):
    """Check a tf.data element spec for images; raise ValueError naming what is wrong."""
    shape = spec.shape
    if shape.rank != 4 or list(shape[1:]) != list(input_shape):
        raise ValueError(
            f"{name} must yield batches of shape (batch, {', '.join(map(str, input_shape))}), "
            f"got {shape}."
        )
    if not (spec.dtype == tf.uint8 or spec.dtype.is_floating):
        raise ValueError(f"{name} must yield uint8 or float images, got {spec.dtype.name}.")


def spread_sample(images, count):
    """At most ``count`` of ``images`` (an array), evenly spread over it."""
    return images[:: max(1, -(-len(images) // count))]


def to_network_input(images, size=(IMAGE_SIZE, IMAGE_SIZE)):
    """Images (uint8 or float in [0, 1], any size) -> float32 (N, *size, C) in [0, 1]."""
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    if (images.shape[1], images.shape[2]) != tuple(size):
        images = tf.image.resize(images, tuple(size), method="bilinear")
    return images


def to_input_resolution(maps, input_shape):
    """(N, h, w) maps at the network's working size -> (N, H, W) of ``input_shape`` (bilinear)."""
    height, width = input_shape[0], input_shape[1]
    if (maps.shape[1], maps.shape[2]) == (height, width):
        return maps
    return tf.image.resize(maps[..., None], (height, width), method="bilinear")[..., 0]
