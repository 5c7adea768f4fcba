"""Frozen pretrained backbones for GradCon on features: names, limits and errors (no TensorFlow,
so that the command line checks them at once). The feature extractor itself:
:mod:`gradcon_tf.backbones.features`; the built-in network: :mod:`.efficientnet_lite`."""

#: The built-in backbone and the layers it taps: the ends of blocks 4 and 10 (stride 8, 40
#: channels; stride 16, 112 channels), the mid-level features PatchCore-style methods use.
EFFICIENTNET_LITE0 = "efficientnet_lite0"
EFFICIENTNET_LITE0_LAYERS = ("block_4", "block_10")
#: The backbone of the folder workflow (``gradcon train --normal``, ``train_on_normal_folder``)
#: unless told otherwise; "none" trains on pixels from scratch (docs/features.md).
DEFAULT_BACKBONE = EFFICIENTNET_LITE0
NO_BACKBONE = "none"
#: The recipe on a backbone's features: longer than on pixels (an epoch costs the small
#: pointwise autoencoder only) and the local image score (docs/features.md).
FEATURE_EPOCHS = 100
FEATURE_IMAGE_SCORE = "local"
#: The epochs on pixels, from scratch (``gradcon train``'s).
PIXEL_EPOCHS = 20
#: The input side the built-in backbone works at unless told otherwise (ImageNet's).
DEFAULT_IMAGE_SIZE = 224
#: Images given to a model with a backbone must be at least this large a side.
MIN_IMAGE_SIDE = 32
#: The input side must be a multiple of this (the coarsest tap's stride), and at least twice it.
SIZE_MULTIPLE = 16


def recipe_defaults(on_features, pixel_epochs=PIXEL_EPOCHS):
    """The epochs and image score of the recipe for what the autoencoder trains on: a
    backbone's features, else pixels (``pixel_epochs``: the command's)."""
    if on_features:
        return {"epochs": FEATURE_EPOCHS, "image_score": FEATURE_IMAGE_SCORE}
    return {"epochs": pixel_epochs, "image_score": "mean"}


class BackboneError(ValueError):
    """A backbone that cannot be built as asked (unknown name, wrong weights, bad size)."""
