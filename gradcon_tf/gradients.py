"""Per-sample decoder-kernel gradients and their cosine to the reference gradients (Eq. 6).

For scoring, every sample's gradient is the gradient of *its own* reconstruction loss
``L_b = mean((x_hat_b - x_b)^2)`` with respect to the decoder kernels ``phi_i``, and the gradient
loss is ``L_grad_b = -mean_i cos(dL_b/dphi_i, avg dJ/dphi_i)``.

Two implementations, checked against each other and against a batch-of-one GradientTape loop:

* :func:`decoder_scores` (fast path) runs the decoder forward and *by hand* backward with plain
  TensorFlow ops (conv2d_transpose, conv2d, strided slices, batched matmuls), so the same function
  serves Keras scoring, the SavedModel and a builtin-only LiteRT graph. It needs a decoder that is a
  chain of layers :func:`plan_decoder` understands (the paper's decoder is one).
* :func:`generic_decoder_scores` vectorizes a per-sample GradientTape over the batch; it works for
  any differentiable decoder.

With ``maps=True`` both also spread each layer's cosine over the output pixels
(:func:`cosine_maps`: the anomaly maps of ``GradCon.score(maps=True)``).

Transposed convolution, stride s, 'valid' padding: ``y[s*i + p, s*j + q, o] += x[i, j, c] W[p, q, o, c]``,
so ``dL/dW[p, q, o, c] = sum_ij x[i, j, c] dL/dy[s*i + p, s*j + q, o]``: a (c x HW) @ (HW x o) product
per kernel tap, done for all taps and samples as one batched matmul (the taps gathered with a
space-to-depth and a few slices; the reference reordered to match, as the cosine only needs both
in the same order).
"""

import dataclasses
import warnings

import keras
import tensorflow as tf

#: Guards cosines against a zero vector (the empty reference average before the first step).
COSINE_EPSILON = 1e-8


def cosine_similarity(a, b, axis=None):
    """``<a, b> / (max(|a|, eps) max(|b|, eps))``, reduced over ``axis`` (all axes if None).

    Each norm is clamped on its own (as PyTorch's ``cosine_similarity``), so tiny but non-zero
    gradients keep their exact cosine, and a zero reference gives 0. ``rsqrt`` of the clamped
    squared norm avoids ``sqrt(0)``, whose gradient (inf * 0) would be NaN.
    """
    return _cosine(
        tf.reduce_sum(a * b, axis=axis),
        tf.reduce_sum(tf.square(a), axis=axis),
        tf.reduce_sum(tf.square(b), axis=axis),
    )


def _cosine(dot, squared_norm_a, squared_norm_b):
    """The cosine from its three sums, each norm clamped at ``COSINE_EPSILON``."""
    inverse_norm_a = tf.math.rsqrt(tf.maximum(squared_norm_a, COSINE_EPSILON**2))
    inverse_norm_b = tf.math.rsqrt(tf.maximum(squared_norm_b, COSINE_EPSILON**2))
    return dot * inverse_norm_a * inverse_norm_b


def constrained_kernels(decoder):
    """The decoder kernels phi_i the gradient constraint acts on (Eq. 6), latent side first.

    Every trainable variable named ``kernel``, in ``decoder.trainable_weights`` order: the kernels
    of Dense, Conv2D, Conv2DTranspose, DepthwiseConv2D (and of any layer that names a weight
    so). Not biases, normalization weights, SeparableConv2D's ``depthwise_kernel`` /
    ``pointwise_kernel``, embeddings, or the weights of frozen layers. The paper's decoder has
    four: its transposed convolutions.
    """
    return [w for w in decoder.trainable_weights if w.name == "kernel"]


#: Reconstructions are clipped to [eps, 1 - eps] inside the binary cross-entropy (Keras' epsilon).
BCE_EPSILON = 1e-7


def per_pixel_reconstruction_error(images, reconstructions, loss="mse"):
    """The reconstruction error of each pixel and channel, shape (N, H, W, C).

    ``loss``: ``"mse"`` (squared error: the CAE, Sec. 5.1) or ``"bce"`` (binary cross-entropy of
    a Bernoulli decoder: the VAE of Table 1).
    """
    if loss == "mse":
        return tf.square(reconstructions - images)
    if loss == "bce":
        clipped = tf.clip_by_value(reconstructions, BCE_EPSILON, 1.0 - BCE_EPSILON)
        return -(images * tf.math.log(clipped) + (1.0 - images) * tf.math.log(1.0 - clipped))
    raise ValueError(f"loss must be 'mse' or 'bce', got {loss!r}")


def per_sample_reconstruction_error(images, reconstructions, loss="mse"):
    """``L_b`` of each sample: :func:`per_pixel_reconstruction_error` averaged over its pixels and
    channels, shape (N,)."""
    return tf.reduce_mean(per_pixel_reconstruction_error(images, reconstructions, loss), axis=[1, 2, 3])


def reconstruction_error_gradient(images, reconstructions, loss="mse"):
    """``dL_b / d x_hat_b`` of :func:`per_sample_reconstruction_error`, by hand (fast path)."""
    pixels = reconstructions.shape[1] * reconstructions.shape[2] * reconstructions.shape[3]
    if loss == "mse":
        return (2.0 / pixels) * (reconstructions - images)
    if loss == "bce":
        inside = (reconstructions >= BCE_EPSILON) & (reconstructions <= 1.0 - BCE_EPSILON)
        clipped = tf.clip_by_value(reconstructions, BCE_EPSILON, 1.0 - BCE_EPSILON)
        gradient = (clipped - images) / (clipped * (1.0 - clipped) * pixels)
        return gradient * tf.cast(inside, gradient.dtype)
    raise ValueError(f"loss must be 'mse' or 'bce', got {loss!r}")


# ----------------------------------------------------------------------------------------------
# Fast path: a decoder described as a chain of simple steps, differentiated by hand.


@dataclasses.dataclass(frozen=True)
class TransposedConv:
    kernel: object  # (kh, kw, out, in) variable or tensor, as Keras and tf.nn store it
    bias: object  # (out,) or None
    strides: tuple


@dataclasses.dataclass(frozen=True)
class Crop:
    cropping: tuple  # ((top, bottom), (left, right))


@dataclasses.dataclass(frozen=True)
class Pad:
    padding: tuple  # ((top, bottom), (left, right))


@dataclasses.dataclass(frozen=True)
class Activation:
    name: str  # "relu", "sigmoid" or "linear"


_ACTIVATIONS = {"relu", "sigmoid", "linear"}


def _activation_name(fn):
    name = getattr(fn, "__name__", None)
    return name if name in _ACTIVATIONS else None


def _plan_layer(layer):
    """The steps for one Keras layer, or None if the fast path does not know it."""
    if isinstance(layer, keras.layers.InputLayer):
        return []
    if isinstance(layer, keras.layers.Conv2DTranspose):
        activation = _activation_name(layer.activation)
        simple = (
            layer.padding == "valid"
            and layer.data_format == "channels_last"
            and tuple(layer.dilation_rate) == (1, 1)
            and layer.output_padding is None
            and activation is not None
        )
        if not simple:
            return None
        steps = [TransposedConv(layer.kernel, layer.bias, tuple(layer.strides))]
        return steps + ([Activation(activation)] if activation != "linear" else [])
    if isinstance(layer, keras.layers.Cropping2D) and layer.data_format == "channels_last":
        return [Crop(tuple(tuple(c) for c in layer.cropping))]
    if isinstance(layer, keras.layers.ZeroPadding2D) and layer.data_format == "channels_last":
        return [Pad(tuple(tuple(p) for p in layer.padding))]
    if isinstance(layer, keras.layers.Activation):
        activation = _activation_name(layer.activation)
        return None if activation is None else [Activation(activation)]
    if isinstance(layer, keras.layers.ReLU):
        plain = layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0
        return [Activation("relu")] if plain else None
    return None


def plan_decoder(decoder):
    """Describe ``decoder`` as a chain of fast-path steps, or return None if it is not one.

    The chain is checked with public Keras attributes: each layer's (first-call) ``input`` is the
    previous layer's ``output``, and the last one's is the decoder's output, so branches and
    layers called twice are refused. If a decoder of fast-path layers has attributes that cannot
    be read so (another Keras), this warns and returns None: scoring then takes the generic path
    (same scores, slower).
    """
    steps = []
    for layer in decoder.layers:
        layer_steps = _plan_layer(layer)
        if layer_steps is None:
            return None
        steps.extend(layer_steps)
    n_kernels = sum(isinstance(s, TransposedConv) for s in steps)
    if n_kernels != len(constrained_kernels(decoder)):
        return None
    try:
        chain = _is_chain(decoder)
    except (AttributeError, ValueError, TypeError, IndexError) as error:
        warnings.warn(
            f"gradcon_tf: cannot read the layer graph of decoder {decoder.name!r} ({error!r}); "
            "scoring uses the generic vectorized-tape path instead of the fast path.",
            stacklevel=2,
        )
        return None
    return tuple(steps) if chain else None


def _is_chain(decoder):
    """Whether ``decoder`` is one input, then each of its layers applied once to the last output."""
    if len(getattr(decoder, "inputs", None) or []) != 1 or len(decoder.outputs) != 1:
        return False
    previous_output = decoder.inputs[0]
    for layer in decoder.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.input is not previous_output:
            return False
        previous_output = layer.output
    return previous_output is decoder.outputs[0]


def _transposed_conv(x, kernel, strides):
    """A 'valid' transposed convolution of ``x`` with a (kh, kw, out, in) ``kernel``, no bias."""
    kh, kw, out_channels, _ = kernel.shape
    sh, sw = strides
    height, width = x.shape[1], x.shape[2]
    output_shape = tf.stack(
        [tf.shape(x)[0], (height - 1) * sh + kh, (width - 1) * sw + kw, out_channels]
    )
    return tf.nn.conv2d_transpose(x, kernel, output_shape, strides=(1, sh, sw, 1), padding="VALID")


def _deconv_forward(x, step):
    y = _transposed_conv(x, step.kernel, step.strides)
    return y if step.bias is None else y + step.bias


def _crop(x, cropping):
    (top, bottom), (left, right) = cropping
    return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right, :]


def _pad(x, padding):
    return tf.pad(x, [[0, 0], list(padding[0]), list(padding[1]), [0, 0]])


def _block_taps(step):
    """(kh / s, kw / s) when the kernel size is a multiple of a square stride s >= 2, else None."""
    kh, kw = step.kernel.shape[:2]
    sh, sw = step.strides
    if sh == sw >= 2 and kh % sh == 0 and kw % sw == 0:
        return kh // sh, kw // sw
    return None


def _output_gradient_taps(output_grad, step, height, width):
    """(N, H*W, kh*kw*out): for each input position (i, j), dL/dy at (s*i + p, s*j + q) for all taps.

    When the kernel size is a multiple of the stride (the paper's 4 = 2 * 2), write p = s*a + u:
    ``y[s*i + p] = space_to_depth(y, s)[i + a][u]``, so (kh/s)(kw/s) slices of the space-to-depth
    blocks hold every tap, ordered (a, b, u, v, out): 4 slices instead of 16 and about twice as fast
    in LiteRT. Otherwise one strided slice per tap, ordered (p, q, out).
    :func:`_reference_in_tap_order` lays the reference out the same way.
    """
    kh, kw, out_channels, _ = step.kernel.shape
    sh, sw = step.strides
    blocks = _block_taps(step)
    if blocks is not None:
        space = tf.nn.space_to_depth(output_grad, sh)  # (N, H - 1 + kh/s, W - 1 + kw/s, s*s*out)
        taps = [
            space[:, a : a + height, b : b + width, :] for a in range(blocks[0]) for b in range(blocks[1])
        ]
    else:
        taps = [
            output_grad[:, p : p + sh * (height - 1) + 1 : sh, q : q + sw * (width - 1) + 1 : sw, :]
            for p in range(kh)
            for q in range(kw)
        ]
    taps = tf.concat(taps, axis=-1)  # (N, H, W, kh*kw*out)
    return tf.reshape(taps, [-1, height * width, kh * kw * out_channels])


def _reference_in_tap_order(reference, step):
    """A (kh, kw, out, in) kernel-shaped tensor as (in, kh*kw*out), in the order of the taps."""
    kh, kw, out_channels, in_channels = step.kernel.shape
    blocks = _block_taps(step)
    if blocks is None:
        return tf.reshape(tf.transpose(reference, [3, 0, 1, 2]), [in_channels, -1])  # (p, q, out)
    s = step.strides[0]
    reference = tf.reshape(reference, [blocks[0], s, blocks[1], s, out_channels, in_channels])
    reference = tf.transpose(reference, [5, 0, 2, 1, 3, 4])  # (in, a, b, u, v, out)
    return tf.reshape(reference, [in_channels, kh * kw * out_channels])


def _per_sample_products(inputs, output_grad, step, reference):
    """(<g_b, R>, |g_b|^2) of a 'valid' transposed conv for each sample b, shapes (N,), where
    g_b = dL_b/dW is the sample's kernel gradient and R the reference.

    ``inputs`` (N, H, W, in) is the layer input, ``output_grad`` (N, H', W', out) the gradient at
    its (uncropped, pre-bias) output. With X_b (HW x in) the inputs and D_b (HW x taps*out) the
    output gradients gathered per input position, g_b = X_b^T D_b and R the reference as (in x
    taps*out):

    * few input positions (HW < in, the paper's first two layers): never form g_b.
      <g_b, R> = <X_b R, D_b> (one large matmul for the whole batch) and
      |g_b|^2 = <X_b X_b^T, D_b D_b^T> (two small HW x HW Gram matrices per sample);
    * otherwise: g_b by one batched matmul, then both sums from it.
    """
    height, width, in_channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
    positions = height * width
    taps = _output_gradient_taps(output_grad, step, height, width)  # (N, HW, T)
    flat_inputs = tf.reshape(inputs, [-1, positions, in_channels])  # (N, HW, in)
    reference = _reference_in_tap_order(reference, step)  # (in, T)
    if positions < in_channels:
        projected = tf.matmul(tf.reshape(flat_inputs, [-1, in_channels]), reference)
        projected = tf.reshape(projected, [-1, positions, reference.shape[1]])
        dot = tf.reduce_sum(projected * taps, axis=[1, 2])
        input_gram = tf.matmul(flat_inputs, flat_inputs, transpose_b=True)
        gradient_gram = tf.matmul(taps, taps, transpose_b=True)
        squared_norm = tf.reduce_sum(input_gram * gradient_gram, axis=[1, 2])
    else:
        per_sample = tf.matmul(flat_inputs, taps, transpose_a=True)  # (N, in, T)
        dot = tf.reduce_sum(per_sample * reference, axis=[1, 2])
        squared_norm = tf.reduce_sum(tf.square(per_sample), axis=[1, 2])
    return dot, squared_norm


def _forward(steps, latents):
    """The input of every step, then the decoder's output."""
    activations = [latents]
    for step in steps:
        x = activations[-1]
        if isinstance(step, TransposedConv):
            x = _deconv_forward(x, step)
        elif isinstance(step, Crop):
            x = _crop(x, step.cropping)
        elif isinstance(step, Pad):
            x = _pad(x, step.padding)
        elif step.name == "relu":
            x = tf.nn.relu(x)
        elif step.name == "sigmoid":
            x = tf.sigmoid(x)
        activations.append(x)
    return activations


def _output_tangent(steps, activations, index, direction):
    """d(output)/dt of the decoder when kernel ``steps[index]`` moves to W + t * ``direction``:
    the transposed conv of the step's input with ``direction``, carried forward (linearised)
    through the later steps. Shape of the decoder's output."""
    tangent = _transposed_conv(activations[index], direction, steps[index].strides)
    for later in range(index + 1, len(steps)):
        step, step_output = steps[later], activations[later + 1]
        if isinstance(step, TransposedConv):
            tangent = _transposed_conv(tangent, step.kernel, step.strides)
        elif isinstance(step, Crop):
            tangent = _crop(tangent, step.cropping)
        elif isinstance(step, Pad):
            tangent = _pad(tangent, step.padding)
        elif step.name == "relu":
            tangent = tangent * tf.cast(step_output > 0, tangent.dtype)
        elif step.name == "sigmoid":
            tangent = tangent * step_output * (1.0 - step_output)
    return tangent


def cosine_maps(output_grad, tangents, squared_norms, reference_squared_norms):
    """Each layer's gradient cosine spread over the output pixels, (N, H, W, layers).

    For kernel phi_i with reference R_i, <dL_b/dphi_i, R_i> = sum_y dL_b/dx_hat(y) . tau_i(y),
    with tau_i = d x_hat / d phi_i [R_i] the output's change along R_i (the kernel gradient is
    the output gradient pulled back, Eq. 6's inner tape). So

        m_i(y) = H W <dL_b/dx_hat(y), tau_i(y)> / (|dL_b/dphi_i| |R_i|)

    averages over the H x W pixels to the sample's cosine for layer i exactly: negative where the
    pixel pulls the sample's gradient away from the reference. ``tangents``: tau_i per layer;
    the norms as :func:`_cosine` takes them (clamped alike), shapes (N,) and ().
    """
    pixels = output_grad.shape[1] * output_grad.shape[2]
    maps = []
    for tangent, squared_norm, reference_squared_norm in zip(
        tangents, squared_norms, reference_squared_norms
    ):
        density = tf.reduce_sum(output_grad * tangent, axis=-1)  # (N, H, W)
        scale = _cosine(float(pixels), squared_norm, reference_squared_norm)  # (N,)
        maps.append(density * scale[:, None, None])
    return tf.stack(maps, axis=-1)


def decoder_scores(steps, latents, images, references, loss="mse", maps=False):
    """Fast path. Per-sample reconstruction error and per-layer gradient cosines.

    Args:
      steps: the decoder as returned by :func:`plan_decoder`.
      latents: (N, ...) encoder outputs.
      images: (N, H, W, C) the images the decoder should reconstruct (after preprocessing).
      references: one tensor per transposed conv, shaped like its kernel (kh, kw, out, in).
      loss: the reconstruction error, see :func:`per_sample_reconstruction_error`.
      maps: also return the per-layer cosine maps (:func:`cosine_maps`).

    Returns:
      (recon (N,), cosines (N, n_layers), reconstructions (N, H, W, C)), and with ``maps`` the
      cosine maps (N, H, W, n_layers) fourth.
    """
    activations = _forward(steps, latents)
    reconstructions = activations[-1]
    recon = per_sample_reconstruction_error(images, reconstructions, loss)
    output_grad = reconstruction_error_gradient(images, reconstructions, loss)  # dL_b / d x_hat_b
    grad = output_grad
    dots, squared_norms, layers = [], [], []
    reference_index = len(references)
    for index in range(len(steps) - 1, -1, -1):
        step, step_input, step_output = steps[index], activations[index], activations[index + 1]
        if isinstance(step, Activation):
            if step.name == "relu":
                grad = grad * tf.cast(step_output > 0, grad.dtype)
            elif step.name == "sigmoid":
                grad = grad * step_output * (1.0 - step_output)
        elif isinstance(step, Crop):
            grad = _pad(grad, step.cropping)
        elif isinstance(step, Pad):
            grad = _crop(grad, step.padding)
        else:
            reference_index -= 1
            dot, squared_norm = _per_sample_products(
                step_input, grad, step, references[reference_index]
            )
            dots.append(dot)
            squared_norms.append(squared_norm)
            layers.append(index)
            if index > 0:  # the gradient at the input of the first layer is not needed
                sh, sw = step.strides
                grad = tf.nn.conv2d(grad, step.kernel, strides=(1, sh, sw, 1), padding="VALID")
    dots, squared_norms, layers = dots[::-1], squared_norms[::-1], layers[::-1]
    reference_squared_norms = [tf.reduce_sum(tf.square(r)) for r in references]
    cosines = tf.stack(
        [_cosine(*terms) for terms in zip(dots, squared_norms, reference_squared_norms)], axis=1
    )
    if not maps:
        return recon, cosines, reconstructions
    tangents = [
        _output_tangent(steps, activations, index, reference)
        for index, reference in zip(layers, references)
    ]
    layer_maps = cosine_maps(output_grad, tangents, squared_norms, reference_squared_norms)
    return recon, cosines, reconstructions, layer_maps


# ----------------------------------------------------------------------------------------------
# Generic path: any differentiable decoder, one GradientTape per sample, vectorized.


def generic_decoder_scores(decoder, latents, images, references, loss="mse", maps=False):
    """Per-sample scores for any decoder; same outputs as :func:`decoder_scores`.

    The cosine maps take the output tangents of the whole batch at once from a forward-mode
    accumulator (the kernels are shared by the samples), one per kernel.
    """
    kernels = constrained_kernels(decoder)

    def one_sample(args):
        latent, image = args
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([k.value for k in kernels])
            reconstruction = decoder(latent[None], training=False)
            error = per_sample_reconstruction_error(image[None], reconstruction, loss)[0]
        grads = tape.gradient(error, [k.value for k in kernels])
        cosines = tf.stack([cosine_similarity(g, r) for g, r in zip(grads, references)])
        squared_norms = tf.stack([tf.reduce_sum(tf.square(g)) for g in grads])
        return error, cosines, reconstruction[0], squared_norms

    recon, cosines, reconstructions, squared_norms = tf.vectorized_map(
        one_sample, (latents, images), fallback_to_while_loop=True
    )
    if not maps:
        return recon, cosines, reconstructions
    tangents = []
    for kernel, reference in zip(kernels, references):
        with tf.autodiff.ForwardAccumulator(kernel.value, reference) as accumulator:
            output = decoder(latents, training=False)
        tangents.append(accumulator.jvp(output))
    output_grad = reconstruction_error_gradient(images, reconstructions, loss)
    reference_squared_norms = [tf.reduce_sum(tf.square(r)) for r in references]
    layer_maps = cosine_maps(
        output_grad, tangents, tf.unstack(squared_norms, axis=1), reference_squared_norms
    )
    return recon, cosines, reconstructions, layer_maps
