"""Where the scoring time goes: the fast path ``gradients.decoder_scores`` cut into its pieces.

The pieces are the library's own ops (``gradients._deconv_forward``, ``_output_gradient_taps``,
``_per_sample_cosine``, ``tf.nn.conv2d`` for input gradients...), run step by step in the order
``decoder_scores`` runs them, each as its own ``tf.function`` on the tensors the previous pieces
produced. The cosines the pieces give are checked against ``decoder_scores`` (``max_abs_diff``).
Each layer's per-sample cosine is one piece (whichever way the library computes it: per-sample
gradients and their sums, or Gram matrices without them); the gathering of its output-gradient
taps (slices, concat, reshapes: memory traffic, no arithmetic) is also timed alone, for
information (it is inside the cosine piece). Its MFLOP are those of the direct method (per-sample
gradient + two sums), as in ``flops.py``. This follows the library's private helpers: when
``gradients.py`` changes its fast path, update the cut here (``tests/test_benchmarks.py`` fails
until then).

:func:`op_profile` is the other view, robust to such changes: ``tf.profiler`` traces of the whole
``per_sample_scores`` function, the time of every TF op summed by op type.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from gradcon_tf import gradients


@dataclasses.dataclass
class Piece:
    name: str
    category: str
    fn: object  # a tf.function
    args: tuple
    flops: int = 0  # per batch; 0 for memory-bound / elementwise pieces
    bytes_out: int = 0  # size of the output it materialises


def _nbytes(result):
    return sum(int(np.prod(t.shape)) * t.dtype.size for t in tf.nest.flatten(result))


def _elementwise(step):
    def run(x):
        if isinstance(step, gradients.Crop):
            return gradients._crop(x, step.cropping)
        if isinstance(step, gradients.Pad):
            return gradients._pad(x, step.padding)
        if step.name == "relu":
            return tf.nn.relu(x)
        if step.name == "sigmoid":
            return tf.sigmoid(x)
        return x

    return tf.function(run)


def _elementwise_backward(step):
    def run(grad, output):
        if isinstance(step, gradients.Activation):
            if step.name == "relu":
                return grad * tf.cast(output > 0, grad.dtype)
            if step.name == "sigmoid":
                return grad * output * (1.0 - output)
            return grad
        if isinstance(step, gradients.Crop):
            return gradients._pad(grad, step.cropping)
        return gradients._crop(grad, step.padding)

    return tf.function(run)


def _compiled(fn, step):
    """``tf.function`` of ``fn(*tensors, step)`` with ``step`` fixed (not a traced argument)."""
    return tf.function(lambda *tensors: fn(*tensors, step))


def _per_sample_cosine(inputs, output_grad, reference, step):
    """The per-sample kernel-gradient cosine of one layer, as ``decoder_scores`` computes it."""
    dot, squared_norm = gradients._per_sample_products(inputs, output_grad, step, reference)
    return gradients._cosine(dot, squared_norm, tf.reduce_sum(tf.square(reference)))


def _input_gradient(grad, step):
    """dL/d(input) of a 'valid' transposed conv: a strided conv2d, as ``decoder_scores`` does it."""
    sh, sw = step.strides
    return tf.nn.conv2d(grad, step.kernel, strides=(1, sh, sw, 1), padding="VALID")


def _taps(grad, step):
    """The output-gradient taps of a 'valid' transposed conv (its input size from its output size)."""
    (kh, kw), (sh, sw) = step.kernel.shape[:2], step.strides
    height, width = (grad.shape[1] - kh) // sh + 1, (grad.shape[2] - kw) // sw + 1
    return gradients._output_gradient_taps(grad, step, height, width)


def pieces(model, images):
    """The pieces of one ``per_sample_scores`` call on ``images`` (a fixed batch), in order.

    Returns (list of :class:`Piece`, check) where check compares the pieces' cosines and recon
    with ``gradients.decoder_scores`` on the same batch.
    """
    steps = gradients.plan_decoder(model.decoder)
    if not steps:
        raise ValueError("the scoring profile needs the fast path (a decoder plan_decoder knows)")
    batch = int(images.shape[0])
    out = []

    def add(name, category, fn, args, flops=0):
        result = fn(*args)
        out.append(Piece(name, category, fn, args, flops, _nbytes(result)))
        return result

    encoder = tf.function(lambda x: model.encoder(model.preprocess(x), training=False))
    preprocess = tf.function(model.preprocess)
    network_input = preprocess(images)
    encoder_macs = sum(
        int(np.prod(layer.output.shape[1:3])) * int(np.prod(layer.kernel.shape))
        for layer in model.encoder.layers
        if hasattr(layer, "kernel")
    )
    latents = add("encoder forward (preprocess + 4 conv)", "encoder forward", encoder, (images,),
                  2 * batch * encoder_macs)

    activations = [latents]
    deconv_index = 0
    for step in steps:
        x = activations[-1]
        if isinstance(step, gradients.TransposedConv):
            deconv_index += 1
            fn = _compiled(gradients._deconv_forward, step)
            macs = int(np.prod(x.shape[1:3])) * int(np.prod(step.kernel.shape))
            x = add(f"deconv{deconv_index} forward (conv2d_transpose + bias)", "decoder forward",
                    fn, (x,), 2 * batch * macs)
        else:
            kind = type(step).__name__.lower() if not isinstance(step, gradients.Activation) else step.name
            x = add(f"deconv{deconv_index} forward {kind}", "elementwise (forward and backward)",
                    _elementwise(step), (x,))
        activations.append(x)
    reconstructions = activations[-1]
    output_gradient = tf.function(
        lambda r, x: (
            gradients.per_sample_reconstruction_error(x, r),
            gradients.reconstruction_error_gradient(x, r),
        )
    )
    recon, grad = add("MSE and dL/dx_hat", "elementwise (forward and backward)", output_gradient,
                      (reconstructions, network_input))

    references = [r.value for r in model.reference_gradients]
    cosines = []
    for index in range(len(steps) - 1, -1, -1):
        step, step_input, step_output = steps[index], activations[index], activations[index + 1]
        if not isinstance(step, gradients.TransposedConv):
            kind = step.name if isinstance(step, gradients.Activation) else type(step).__name__.lower()
            grad = add(f"deconv{deconv_index} backward {kind}", "elementwise (forward and backward)",
                       _elementwise_backward(step), (grad, step_output))
            continue
        kh, kw, cout, cin = step.kernel.shape
        height, width = int(step_input.shape[1]), int(step_input.shape[2])
        macs = height * width * kh * kw * cout * cin
        shape = f"H*W={height * width}, in={cin}, taps*out={kh * kw * cout}"
        add(f"deconv{deconv_index} gather output-gradient taps (inside the cosine below)",
            "(tap gathering, inside the per-sample cosines)", _compiled(_taps, step), (grad,))
        cosine = _compiled(_per_sample_cosine, step)
        reference = references[deconv_index - 1]
        cosines.append(add(
            f"deconv{deconv_index} per-sample kernel-gradient cosine ({shape})",
            "per-sample kernel-gradient cosines (taps, matmuls, sums)", cosine, (step_input, grad, reference),
            2 * batch * (macs + 2 * int(np.prod(step.kernel.shape))),
        ))
        if index > 0:
            conv = _compiled(_input_gradient, step)
            grad = add(f"deconv{deconv_index} input gradient (conv2d)", "decoder input gradients",
                       conv, (grad,), 2 * batch * macs)
        deconv_index -= 1
    piece_cosines = tf.stack(cosines[::-1], axis=1)
    expected_recon, expected_cosines, _ = gradients.decoder_scores(
        steps, latents, network_input, model.reference_gradients
    )
    check = {
        "max_abs_diff_cosines": float(tf.reduce_max(tf.abs(piece_cosines - expected_cosines))),
        "max_abs_diff_recon": float(tf.reduce_max(tf.abs(recon - expected_recon))),
    }
    return out, check


# ----------------------------------------------------------------------------------------------
# tf.profiler view: time per TF op type inside a compiled function.

#: Op type -> what it does in GradCon scoring/training (for the summary; unknown types: "other").
OP_ROLES = {
    "Conv2DBackpropInput": "transposed conv (decoder forward) / conv input gradient",
    "Conv2D": "conv (encoder forward, decoder input gradients)",
    "PadWithFusedConv2D": "conv (encoder forward, pad fused)",
    "FusedConv2D": "conv (encoder forward)",
    "Conv2DBackpropFilter": "conv kernel gradient",
    "Conv2DBackpropFilterWithBias": "conv kernel + bias gradient",
    "StridedSliceGrad": "data movement (gradient of a crop: zero-pad)",
    "ReluGrad": "elementwise (ReLU derivative)",
    "SigmoidGrad": "elementwise (sigmoid derivative)",
    "BiasAddGrad": "reduction (bias gradient)",
    "AddN": "gradient accumulation",
    "Relu": "elementwise (ReLU)",
    "Sigmoid": "elementwise (sigmoid)",
    "Rsqrt": "elementwise (cosine norms)",
    "Cast": "elementwise (cast)",
    "Sub": "elementwise",
    "AddV2": "elementwise",
    "RealDiv": "elementwise",
    "Maximum": "elementwise (norm clamp)",
    "BatchMatMulV2": "batched matmul (per-sample kernel gradients)",
    "MatMul": "matmul",
    "StridedSlice": "data movement (slices, taps)",
    "ConcatV2": "data movement (concat, taps)",
    "SpaceToDepth": "data movement (taps)",
    "Pad": "data movement (pad / un-crop)",
    "Transpose": "data movement (transpose)",
    "Reshape": "data movement (reshape)",
    "Mul": "elementwise (cosine products, ReLU/sigmoid derivatives)",
    "Square": "elementwise (squared norms, MSE)",
    "Sum": "reductions (cosine dot products and norms, MSE)",
    "Mean": "reductions (MSE)",
}


def _op_type(op_type):
    for prefix in ("_MklNative", "_Mkl"):
        if op_type.startswith(prefix):
            return op_type[len(prefix):]
    return op_type


def op_profile(fn, calls, logdir):
    """Run ``fn()`` ``calls`` times under ``tf.profiler``; time per op type and the top ops, per call.

    Times are the op events of TensorFlow's executor threads (``tf_Compute``) on the host plane:
    with two inter-op threads ops can overlap, so their sum may exceed the wall time.
    """
    import collections
    import glob
    import time

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    fn()
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    wall = time.perf_counter() - start
    tf.profiler.experimental.stop()
    paths = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True), key=lambda p: os.path.getmtime(p))
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    by_type, by_op = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name.replace("::", ""):
                    continue  # executor bookkeeping (ExecutorState::Process), not an op
                op_name, op_type = name.rsplit(":", 1)
                op_type = _op_type(op_type)
                by_type[op_type] += event.duration_ps / 1e9  # ms
                by_op[(op_name, op_type)] += event.duration_ps / 1e9
    total = sum(by_type.values())
    return {
        "calls": calls,
        "wall_ms_per_call": 1e3 * wall / calls,
        "op_ms_per_call": total / calls,
        "by_op_type": [
            {"op_type": t, "role": OP_ROLES.get(t, "other"), "ms_per_call": v / calls, "share": v / total}
            for t, v in by_type.most_common()
        ],
        "top_ops": [
            {"op": n, "op_type": t, "ms_per_call": v / calls, "share": v / total}
            for (n, t), v in by_op.most_common(15)
        ],
    }
