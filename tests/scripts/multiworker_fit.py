"""One worker of a MultiWorkerMirroredStrategy fit (TF_CONFIG from the environment), or, with
``--single``, the same fit in one process. Writes the final weights and averages to OUT.npz."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gradcon_tf  # noqa: E402

out, single = sys.argv[1], "--single" in sys.argv
strategy = tf.distribute.OneDeviceStrategy("/cpu:0") if single else (
    tf.distribute.MultiWorkerMirroredStrategy())
images = np.random.default_rng(0).uniform(size=(48, 28, 28, 1)).astype(np.float32)
dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)  # global batches of 16
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = dataset.with_options(options)

keras.utils.set_random_seed(0)
with strategy.scope():
    model = gradcon_tf.GradCon()
    model.compile()
model.fit(dataset, epochs=1, verbose=0)
task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {"index": 0})
if task["index"] == 0:
    arrays = {f"w{i}": w.numpy() for i, w in enumerate(model.trainable_weights)}
    arrays.update({f"r{i}": r.numpy() for i, r in enumerate(model.reference_gradients)})
    arrays["count"] = model.reference_count.numpy()
    np.savez(out, **arrays)
