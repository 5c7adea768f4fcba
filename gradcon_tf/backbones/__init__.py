"""Frozen pretrained backbones for GradCon on features: names, limits and errors (no TensorFlow,
so that the command line checks them at once). The feature extractor itself:
:mod:`gradcon_tf.backbones.features`; the built-in network: :mod:`.efficientnet_lite`."""

#: The built-in backbone and the layers it taps: the ends of blocks 4 and 10 (stride 8, 40
#: channels; stride 16, 112 channels), the mid-level features PatchCore-style methods use.
EFFICIENTNET_LITE0 = "efficientnet_lite0"
EFFICIENTNET_LITE0_LAYERS = ("block_4", "block_10")
#: Names ``--backbone`` takes besides a keras.applications model: "none" trains on pixels.
BACKBONES = (EFFICIENTNET_LITE0, "none")
#: The input side the built-in backbone works at unless told otherwise (ImageNet's).
DEFAULT_IMAGE_SIZE = 224
#: Images given to a model with a backbone must be at least this large a side.
MIN_IMAGE_SIDE = 32
#: The input side must be a multiple of this (the coarsest tap's stride), and at least twice it.
SIZE_MULTIPLE = 16
#: keras.applications models' input range, by how their ``preprocess_input`` works: "raw" 0-255
#: (the model normalises inside), "tf" [-1, 1], "torch" ImageNet mean/std. Others ("caffe", BGR)
#: are not offered: pass a keras.Model that takes [0, 1] RGB images instead.
_APPLICATION_INPUTS = {
    "EfficientNet": "raw", "ConvNeXt": "raw", "RegNet": "raw", "MobileNetV3": "raw",
    "MobileNet": "tf", "Xception": "tf", "Inception": "tf", "NASNet": "tf",
    "DenseNet": "torch",
}


class BackboneError(ValueError):
    """A backbone that cannot be built as asked (unknown name, wrong weights, bad size)."""



class BackboneError(ValueError):
    """A backbone that cannot be built as asked (unknown name, wrong weights, bad size)."""
