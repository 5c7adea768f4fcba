"""The paper's convolutional autoencoder (Sec. 5.1, Table 6: 230,721 parameters for 28x28x1).

Encoder: four 4x4 stride-2 convolutions with 32, 32, 64, 64 filters and ReLU, each preceded by
zero padding of 2 on every side (PyTorch ``padding=2`` in the authors' release):
28 -> 15 -> 8 -> 5 -> 3, latent 3x3x64.

Decoder: four 4x4 stride-2 transposed convolutions with 64, 32, 32, C filters, ReLU between and a
sigmoid at the end. PyTorch ``ConvTranspose2d(padding=p)`` gives ``(in - 1) * 2 - 2p + 4``; that is
a 'valid' Keras ``Conv2DTranspose`` followed by ``Cropping2D(p)``. With p = 2, 1, 2, 1:
3 -> 4 -> 8 -> 14 -> 28.

Each Keras layer with weights maps one to one onto a layer of the release (kernel layouts differ
only by a transpose: PyTorch ``Conv2d`` (out, in, kh, kw) vs Keras (kh, kw, in, out);
``ConvTranspose2d`` (in, out, kh, kw) vs Keras (kh, kw, out, in)).

Other working sizes (images above 32 px, :func:`working_size`) get an autoencoder of the same
design with as many stages as the size needs (:func:`stage_sizes`): 4x4 stride-2 convolutions with
zero padding 1 halve each side (floor), until the smaller side is at most 4; filters 32, 32, 64,
64, 128, 128, ... (doubling every two stages, at most 256); the decoder mirrors it with 'valid'
transposed convolutions (side 2n + 2) cropped by 1 on the top/left and by 1 or 0 on the
bottom/right, so that every stage gives back the encoder's size exactly (odd and non-square sizes
included). 64 px: 4 stages to 4x4x64; 128 px: 5 stages to 4x4x128; 256 px: 6 stages to 4x4x128.
"""

import keras
import tensorflow as tf

#: Side length the paper's network works at; images up to 32 px are resized to it (preprocessing).
IMAGE_SIZE = 28
#: Largest input side that keeps the paper's 28x28 network (CIFAR's 32 px, as the release).
PAPER_NETWORK_MAX_SIDE = 32
#: Smallest side of a staged network's input.
MIN_STAGED_SIDE = 8
#: A staged encoder halves until the smaller side is at most this.
LATENT_SIDE = 4
MAX_FILTERS = 256
ENCODER_FILTERS = (32, 32, 64, 64)
DECODER_FILTERS = (64, 32, 32)  # the last layer has as many filters as the image has channels
DECODER_CROPS = (2, 1, 2, 1)  # PyTorch ConvTranspose2d paddings of the release
KERNEL_SIZE = 4
STRIDES = 2


@keras.saving.register_keras_serializable(package="gradcon_tf")
class SliceCropping2D(keras.layers.Cropping2D):
    """``keras.layers.Cropping2D`` whose gradient is a pad (and the pad's gradient a slice).

    Keras' layer slices with strides; its gradient (StridedSliceGrad) took 14 % of a training
    step on CPU, and the second-order term of Eq. 6 differentiates it again (benchmarks/).
    ``tf.slice`` alone is not enough: under XLA its gradient has no gradient. Same outputs.
    """

    def call(self, inputs):
        if self.data_format != "channels_last":
            return super().call(inputs)
        (top, bottom), (left, right) = self.cropping

        @tf.custom_gradient
        def crop(x):
            height = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
            width = x.shape[2] if x.shape[2] is not None else tf.shape(x)[2]
            size = [-1, height - top - bottom, width - left - right, -1]

            def gradient(upstream):
                return tf.pad(upstream, [[0, 0], [top, bottom], [left, right], [0, 0]])

            return tf.slice(x, [0, top, left, 0], size), gradient

        return crop(inputs)


def _torch_default_initializers(fan_in):
    """PyTorch's default Conv init (kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)) for both)."""
    bound = 1.0 / fan_in**0.5
    return (
        keras.initializers.RandomUniform(-bound, bound),
        keras.initializers.RandomUniform(-bound, bound),
    )


def working_size(input_shape):
    """The (height, width) the network works at for images of ``input_shape`` (H, W, C).

    Up to 32 px on both sides: the paper's 28x28 (the release resizes CIFAR's 32 px to 28).
    Larger: the images' own size (resize them beforehand, or pass ``working_size`` to GradCon,
    to work at a smaller one).
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if max(height, width) <= PAPER_NETWORK_MAX_SIDE:
        return (IMAGE_SIZE, IMAGE_SIZE)
    return (height, width)


def size_pair(size):
    """``size`` (an int or (height, width)) as a (height, width) tuple of ints."""
    pair = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(pair) != 2:
        raise ValueError(f"size must be an int or (height, width), got {size!r}.")
    return pair


def is_paper_size(size):
    """Whether ``size`` is the paper's 28x28, which gets the paper's exact network."""
    return size_pair(size) == (IMAGE_SIZE, IMAGE_SIZE)


def stage_sizes(size):
    """(height, width) after each encoder stage of a staged network: the input, then floor
    halvings until the smaller side is at most :data:`LATENT_SIDE` (64 -> 32, 16, 8, 4)."""
    height, width = size_pair(size)
    if min(height, width) < MIN_STAGED_SIDE:
        raise ValueError(
            f"A staged network needs both sides >= {MIN_STAGED_SIDE} px, got {height}x{width}."
        )
    sizes = [(height, width)]
    while min(sizes[-1]) > LATENT_SIDE:
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes


def stage_filters(stages, latent_filters=None):
    """Filters of a staged encoder: 32, 32, 64, 64, 128, 128, ... (at most 256); the last stage
    (the latent's channels) ``latent_filters`` when given (a narrower bottleneck)."""
    filters = tuple(min(32 * 2 ** (i // 2), MAX_FILTERS) for i in range(stages))
    return filters if latent_filters is None else filters[:-1] + (int(latent_filters),)


def _encoder_plan(size, latent_filters=None):
    """(filters, padding) of each encoder convolution for a working ``size``."""
    if is_paper_size(size) and latent_filters is None:
        return [(filters, 2) for filters in ENCODER_FILTERS]
    stages = len(stage_sizes(size)) - 1
    return [(filters, 1) for filters in stage_filters(stages, latent_filters)]


def _decoder_plan(size, channels, latent_filters=None):
    """(filters, cropping) of each decoder transposed convolution, next to the latent first."""
    if is_paper_size(size) and latent_filters is None:
        return list(zip(DECODER_FILTERS + (channels,), DECODER_CROPS))
    sizes = stage_sizes(size)
    encoder_filters = stage_filters(len(sizes) - 1, latent_filters)
    filters = tuple(reversed(encoder_filters[:-1])) + (channels,)
    plan = []
    for index, (small, large) in enumerate(zip(sizes[:0:-1], sizes[-2::-1])):
        # 'valid' 4x4 stride 2: side 2n + 2; crop 1 on the top/left and the rest on the bottom/right.
        cropping = tuple((1, 2 * s + 1 - target) for s, target in zip(small, large))
        plan.append((filters[index], cropping))
    return plan


def latent_shape(size, latent_filters=None):
    """The (h, w, filters) latent of the autoencoder working at ``size``."""
    if is_paper_size(size) and latent_filters is None:
        return (3, 3, ENCODER_FILTERS[-1])
    sizes = stage_sizes(size)
    return (*sizes[-1], stage_filters(len(sizes) - 1, latent_filters)[-1])


def _convolutions(inputs, size=IMAGE_SIZE, latent_filters=None):
    """The encoder's padded stride-2 convolutions with ReLU: (28, 28, C) -> (3, 3, 64) for the
    paper's size, (H, W, C) -> :func:`latent_shape` for others."""
    x = inputs
    in_channels = inputs.shape[-1]
    for index, (filters, padding) in enumerate(_encoder_plan(size, latent_filters), start=1):
        kernel_init, bias_init = _torch_default_initializers(in_channels * KERNEL_SIZE**2)
        x = keras.layers.ZeroPadding2D(padding, name=f"encoder_pad_{index}")(x)
        x = keras.layers.Conv2D(
            filters,
            KERNEL_SIZE,
            strides=STRIDES,
            activation="relu",
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            name=f"encoder_conv_{index}",
        )(x)
        in_channels = filters
    return x


def build_encoder(channels=1, size=IMAGE_SIZE, latent_filters=None, name="encoder"):
    """The encoder for images of ``size`` (int or (height, width)) in [0, 1]: the paper's
    (28, 28, C) -> (3, 3, 64), or the staged design for another size (module docstring)."""
    inputs = keras.Input((*size_pair(size), channels), name="image")
    return keras.Model(inputs, _convolutions(inputs, size, latent_filters), name=name)


def _dense(units, fan_in, name):
    kernel_init, bias_init = _torch_default_initializers(fan_in)  # PyTorch nn.Linear: the same
    return keras.layers.Dense(
        units, kernel_initializer=kernel_init, bias_initializer=bias_init, name=name
    )


def build_vae_encoder(channels=1, name="vae_encoder"):
    """The release's VAE encoder: the CAE's convolutions, flattened to 576, then two linear
    layers giving the mean and the log-variance of the Gaussian posterior (576 each)."""
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, channels), name="image")
    features = keras.layers.Flatten(name="encoder_flatten")(_convolutions(inputs))
    size = features.shape[-1]
    mean = _dense(size, size, "posterior_mean")(features)
    log_variance = _dense(size, size, "posterior_log_variance")(features)
    return keras.Model(inputs, [mean, log_variance], name=name)


def build_latent_projection(name="latent_projection"):
    """The release VAE's linear layer from the 576-d latent back to the decoder's (3, 3, 64) input.

    The release runs it at the start of its decoder; here it stands apart so that the decoder is
    exactly the CAE's and the gradient constraint acts on the same four transposed convolutions.
    """
    shape = (3, 3, ENCODER_FILTERS[-1])
    size = shape[0] * shape[1] * shape[2]
    inputs = keras.Input((size,), name="latent")
    x = _dense(size, size, "latent_dense")(inputs)
    return keras.Model(inputs, keras.layers.Reshape(shape, name="latent_reshape")(x), name=name)


def build_decoder(channels=1, size=IMAGE_SIZE, latent_filters=None, name="decoder",
                  output_activation="sigmoid"):
    """The decoder back to ``size``: the paper's (3, 3, 64) latent -> (28, 28, C) reconstruction
    in (0, 1), or the staged design's mirror for another size (module docstring).
    ``output_activation="linear"``: unbounded outputs (feature maps) instead of the sigmoid.

    Layers are named ``decoder_deconv_{i}`` (i = 1 next to the latent), the order of Table 2.
    """
    inputs = keras.Input(latent_shape(size, latent_filters), name="latent")
    x = inputs
    plan = _decoder_plan(size, channels, latent_filters)
    for index, (filters, crop) in enumerate(plan, start=1):
        last = index == len(plan)
        # PyTorch computes ConvTranspose2d fan_in from weight dim 1, i.e. the *output* channels.
        kernel_init, bias_init = _torch_default_initializers(filters * KERNEL_SIZE**2)
        x = keras.layers.Conv2DTranspose(
            filters,
            KERNEL_SIZE,
            strides=STRIDES,
            padding="valid",
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            name=f"decoder_deconv_{index}",
        )(x)
        x = SliceCropping2D(crop, name=f"decoder_crop_{index}")(x)
        activation = output_activation if last else "relu"
        x = keras.layers.Activation(activation, name=f"decoder_act_{index}")(x)
    return keras.Model(inputs, x, name=name)


def sigmoid_output_bias(decoder):
    """The bias added right before the decoder's final sigmoid, or None if there is none.

    Cropping/padding between that layer and the sigmoid are allowed (the paper's decoder crops).
    """
    seen_sigmoid = False
    for layer in reversed(decoder.layers):
        if isinstance(layer, (keras.layers.Cropping2D, keras.layers.ZeroPadding2D)):
            continue
        activation = getattr(getattr(layer, "activation", None), "__name__", None)
        if isinstance(layer, keras.layers.Activation) and activation == "sigmoid" and not seen_sigmoid:
            seen_sigmoid = True
            continue
        bias = getattr(layer, "bias", None)
        if bias is not None and (seen_sigmoid or activation == "sigmoid"):
            return bias
        return None
    return None


# ---------------------------------------------------------------------- feature autoencoder

#: Channels of the pointwise autoencoder's latent (per feature-map position).
FEATURE_LATENT_CHANNELS = 32


def feature_widths(channels, latent_channels=FEATURE_LATENT_CHANNELS):
    """Channels after each encoder layer of the pointwise autoencoder, as DFR (Yang et al.
    2020) sizes its 1x1 convolutions: ``(C + c) / 2``, ``2c``, ``c`` for C input channels and
    a latent of c."""
    return ((channels + latent_channels) // 2, 2 * latent_channels, latent_channels)


def build_feature_encoder(channels, size, latent_channels=FEATURE_LATENT_CHANNELS,
                          name="feature_encoder"):
    """The pointwise encoder of a feature map (H, W, C): 1x1 convolutions with ReLU to the
    widths of :func:`feature_widths`; each position is encoded on its own."""
    inputs = keras.Input((*size_pair(size), channels), name="features")
    x, in_channels = inputs, channels
    for index, width in enumerate(feature_widths(channels, latent_channels), start=1):
        kernel_init, bias_init = _torch_default_initializers(in_channels)
        x = keras.layers.Conv2D(width, 1, activation="relu", kernel_initializer=kernel_init,
                                bias_initializer=bias_init, name=f"encoder_conv_{index}")(x)
        in_channels = width
    return keras.Model(inputs, x, name=name)


def build_feature_decoder(channels, size, latent_channels=FEATURE_LATENT_CHANNELS,
                          name="feature_decoder"):
    """The pointwise decoder back to (H, W, C) features: 1x1 stride-1 transposed convolutions
    (so that the gradient constraint and the fast scoring path treat them as the paper's
    decoder), ReLU between, linear at the end (standardised features are unbounded)."""
    widths = feature_widths(channels, latent_channels)
    inputs = keras.Input((*size_pair(size), widths[-1]), name="latent")
    x = inputs
    outputs = (*reversed(widths[:-1]), channels)
    for index, width in enumerate(outputs, start=1):
        last = index == len(outputs)
        kernel_init, bias_init = _torch_default_initializers(width)
        x = keras.layers.Conv2DTranspose(
            width, 1, activation=None if last else "relu", kernel_initializer=kernel_init,
            bias_initializer=bias_init, name=f"decoder_deconv_{index}",
        )(x)
    return keras.Model(inputs, x, name=name)
