"""Train 3 steps with MirroredStrategy on 2 logical CPUs and on one device; print the differences.

Run as a subprocess (logical devices must be set before TensorFlow starts). Prints one JSON line.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import gradcon_tf  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
rng = np.random.default_rng(0)
images = rng.uniform(size=(16 * steps, 28, 28, 1)).astype(np.float32)


def train(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = gradcon_tf.GradCon()
        model.compile()
    model.fit(images, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return model


single = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))


def relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


print(json.dumps({
    "replicas": mirrored.distribute_strategy.num_replicas_in_sync,
    "steps": int(mirrored.reference_count.numpy()),
    "single_steps": int(single.reference_count.numpy()),
    "weights": max(relative(a.numpy(), b.numpy()) for a, b in
                   zip(mirrored.trainable_weights, single.trainable_weights)),
    "references": max(relative(a.numpy(), b.numpy()) for a, b in
                      zip(mirrored.reference_gradients, single.reference_gradients)),
    "reference_norm_ratio": [float(np.linalg.norm(a.numpy()) / np.linalg.norm(b.numpy())) for a, b in
                             zip(mirrored.reference_gradients, single.reference_gradients)],
}))
