"""gradcon-tf: GradCon anomaly detection from backpropagated gradients, in TensorFlow/Keras."""

from gradcon_tf.model import GradCon, load_model
from gradcon_tf.networks import build_decoder, build_encoder
from gradcon_tf.vae import GradConVAE

__version__ = "0.1.0"
__all__ = ["GradCon", "GradConVAE", "load_model", "build_encoder", "build_decoder", "__version__"]
