"""Probe for the AVX2 speed issue: the decoder's transposed convolutions as one matmul over
2x2 patches (pad, 4 slices, concat, matmul, depth_to_space) instead of Conv2DTranspose.

    python research/investigations/deconv_as_matmul_probe.py std 30      # or: mm 30
    ONEDNN_MAX_CPU_ISA=AVX2 python research/investigations/deconv_as_matmul_probe.py mm 30

Times the GradCon train_step (batch 64, compiled, median of N steps after 5 warm-up steps).
Output: deconv_as_matmul_probe_output.txt.
"""

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from gradcon_tf import GradCon, networks

def deconv_matmul(x, kernel, s):
    K = kernel.shape[0]; t = K // s
    cout, cin = kernel.shape[2], kernel.shape[3]
    H, W = x.shape[1], x.shape[2]
    xp = tf.pad(x, [[0,0],[t-1,t-1],[t-1,t-1],[0,0]])
    patches = tf.concat([xp[:, t-1-a:t-1-a+H+t-1, t-1-b:t-1-b+W+t-1, :] for a in range(t) for b in range(t)], axis=-1)
    w = tf.reshape(kernel, [t, s, t, s, cout, cin])
    w = tf.transpose(w, [0, 2, 5, 1, 3, 4])
    w = tf.reshape(w, [t*t*cin, s*s*cout])
    y = tf.reshape(tf.matmul(tf.reshape(patches, [-1, t*t*cin]), w), [-1, H+t-1, W+t-1, s*s*cout])
    return tf.nn.depth_to_space(y, s)

class MM(keras.layers.Conv2DTranspose):
    def call(self, inputs):
        y = deconv_matmul(inputs, self.kernel, self.strides[0])
        if self.use_bias: y = y + self.bias
        return self.activation(y)


variant = sys.argv[1]
keras.utils.set_random_seed(0)
decoder = networks.build_decoder(1)
if variant == "mm":
    layers = {}
    inputs = keras.Input((3,3,64))
    x = inputs
    for layer in decoder.layers[1:]:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            new = MM(layer.filters, layer.kernel_size, strides=layer.strides, padding="valid", name=layer.name)
            y = new(x); new.set_weights(layer.get_weights()); x = y
        else:
            x = layer(x)
    decoder = keras.Model(inputs, x)
model = GradCon(decoder=decoder)
model.compile()
images = tf.constant(np.random.default_rng(0).uniform(size=(64,28,28,1)).astype(np.float32))
step = tf.function(model.train_step)
for _ in range(5): step(images)
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); out = step(images); float(out["loss"]); times.append(time.perf_counter() - t)
print(variant, os.environ.get("ONEDNN_MAX_CPU_ISA", "default"), "median ms %.1f p10 %.1f" % (1e3*np.median(times), 1e3*np.percentile(times, 10)))
