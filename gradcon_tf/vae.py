"""The VAE and VAE + Grad of Table 1: GradCon's training and scoring on a variational autoencoder.

``J = L + Omega + alpha * L_grad`` (Eq. 6) with L the binary cross-entropy of a Bernoulli decoder
and Omega the KL divergence of the Gaussian posterior from N(0, I) (Sec. 5.2). Both are the
per-sample negative ELBO terms divided by the number of pixels, so that L is a per-pixel mean as
the CAE's MSE is and alpha keeps its meaning. ``alpha=0`` is the plain VAE. Each sample gets three
scores: its reconstruction error, its latent loss Omega (``latent``) and its gradient loss.
"""

import keras
import tensorflow as tf

from gradcon_tf import networks
from gradcon_tf.model import GradCon

#: Where :meth:`GradConVAE.save_own_variables` stores the latent sampling state.
SAMPLING_STATE_KEY = "latent_sampling_state"


@keras.saving.register_keras_serializable(package="gradcon_tf")
class GradConVAE(GradCon):
    """Variational autoencoder of the authors' release with the gradient constraint.

    The encoder gives the posterior mean and log-variance (576 each); in training the latent is
    sampled (reparameterisation), otherwise it is the mean. A linear layer maps it to the
    (3, 3, 64) input of the paper's decoder, whose four kernels are constrained as in GradCon.

    Args:
      seed: seed of the latent sampling (default: drawn from Keras' global seed).
      Other arguments: as :class:`gradcon_tf.GradCon`.

    The sampling state (seed and draw counter) is saved with the model, so that training resumed
    from a saved model draws the same noise as training straight through.
    """

    reconstruction_loss = "bce"
    _nested_models = ("encoder", "decoder", "latent_projection")

    def __init__(
        self, input_shape=(28, 28, 1), encoder=None, latent_projection=None, seed=None, **kwargs
    ):
        if encoder is None:
            encoder = networks.build_vae_encoder(int(input_shape[-1]))
        super().__init__(input_shape, encoder=encoder, **kwargs)
        self.latent_projection = (
            latent_projection if latent_projection is not None else networks.build_latent_projection()
        )
        self.seed = seed
        self.sampling_seed = keras.random.SeedGenerator(seed, name="latent_sampling_seed")
        self.latent_loss_tracker = keras.metrics.Mean(name="latent_loss")

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}

    def save_own_variables(self, store):
        """The model's variables and the sampling state (Keras saves no SeedGenerator state)."""
        super().save_own_variables(store)
        store[SAMPLING_STATE_KEY] = self.sampling_seed.state

    def load_own_variables(self, store):
        """Files saved before the sampling state was stored load with a fresh one."""
        super().load_own_variables({k: store[k] for k in store.keys() if k != SAMPLING_STATE_KEY})
        if SAMPLING_STATE_KEY in store:
            self.sampling_seed.state.assign(store[SAMPLING_STATE_KEY])

    def encode(self, network_input, training=False):
        """(decoder input, per-sample Omega = KL(q(z|x) || N(0, I)) / pixels)."""
        mean, log_variance = self.encoder(network_input, training=training)
        latent = mean
        if training:  # reparameterisation: z = mu + sigma * eps
            noise = keras.random.normal(tf.shape(mean), seed=self.sampling_seed)
            latent = mean + tf.exp(0.5 * log_variance) * noise
        pixels = network_input.shape[1] * network_input.shape[2] * network_input.shape[3]
        divergence = -0.5 * tf.reduce_sum(
            1.0 + log_variance - tf.square(mean) - tf.exp(log_variance), axis=-1
        )
        return self.latent_projection(latent, training=training), divergence / pixels
