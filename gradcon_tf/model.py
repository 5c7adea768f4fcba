"""GradCon: a convolutional autoencoder trained with a directional gradient constraint (Eq. 6).

Training minimises ``J = L + Omega + alpha * L_grad`` (Omega, the latent loss, is 0 for the CAE;
see :mod:`gradcon_tf.vae`) with

    L_grad = -mean_i cos(dL/dphi_i (this batch), avg_{t<k} dJ/dphi_i (past steps)),

over the decoder kernels ``phi_i``. The running averages of the *total-loss* gradients live in
non-trainable variables of the model, so they are saved, restored and distributed with it. Samples
are scored by ``L + beta * L_grad`` (beta = 4 alpha), each with the gradient of its own loss.
"""

import copy
import math

import keras
import numpy as np
import tensorflow as tf

from gradcon_tf import _compat as compat
from gradcon_tf import backbones, filters, gradients, networks, optimizers, preprocessing
from gradcon_tf.backbones import features as feature_extractors
from gradcon_tf.calibration import Calibrated
from gradcon_tf.fitting import GuardedFit
from gradcon_tf.local_score import local_score
from gradcon_tf.recipe import (
    DEFAULT_LEARNING_RATE, IMAGE_SCORES, INITIALIZATIONS, RESTART_AVERAGES,
)
from gradcon_tf.saving import SavedState

DEFAULT_ALPHA = 0.03
#: PyTorch's Adam default, which the authors' release trains with (Keras' default is 1e-7).
ADAM_EPSILON = 1e-8


def _distributed_replica_context():
    """The replica context when running on several replicas of a tf.distribute strategy."""
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return None
    return replica


@keras.saving.register_keras_serializable(package="gradcon_tf")
class GradCon(GuardedFit, Calibrated, SavedState, keras.Model):
    """GradCon anomaly detector (Kwon et al., ECCV 2020).

    Args:
      input_shape: (H, W, C) of the images given to the model.
      working_size: (height, width) the network works at; images are resized to it (bilinear) in
        :meth:`preprocess`. Default :func:`gradcon_tf.networks.working_size`: the paper's 28x28
        network for images up to 32 px, else the images' own size with as many encoder/decoder
        stages as it needs. Given encoder/decoder: their input size.
      alpha: weight of the gradient loss in training, Eq. 6 (paper: 0.03).
      beta: weight of the gradient loss in the anomaly score (paper: 4 * alpha, the default).
      encoder, decoder: Keras models to use instead of the paper's CAE. The encoder maps
        (*working_size, C) images to a latent, the decoder maps it back. The gradient
        constraint acts on every trainable variable of the decoder named ``kernel``: Dense,
        Conv2D, Conv2DTranspose, DepthwiseConv2D kernels alike, not biases, normalization
        weights, SeparableConv2D kernels or frozen layers (:func:`gradients.constrained_kernels`).
        Scoring takes the fast path only for chains of 'valid' Conv2DTranspose, cropping, padding
        and ReLU/sigmoid layers (:func:`gradients.plan_decoder`), else the generic one.
      initialization: how :meth:`fit` starts a fresh model, one of
        :data:`gradcon_tf.recipe.INITIALIZATIONS`.
        ``"guarded"`` (default): PyTorch's draw, as the authors' release; if the decoder is dead
        after epoch :data:`gradcon_tf.fitting.GUARD_EPOCH` (:func:`gradcon_tf.collapse.is_collapsed`),
        the weights go back to that draw, the bias before the final sigmoid is set to the logit
        of the mean training intensity (training starts from the mean image) and training
        starts again, for the full ``epochs``. ``"release"``: PyTorch's draw whatever happens.
        ``"data"``: always the output bias from data.
      restart_averages: Eq. 6's running averages at a guarded restart, one of
        :data:`gradcon_tf.recipe.RESTART_AVERAGES`: ``"kept"`` (default) goes on from those the
        abandoned run reached, whose first steps anchor the reference directions as a healthy
        start's do (research/restart/); ``"cleared"`` starts them from zero.
      output_bias_from_data: the argument ``initialization`` replaced (True: ``"data"``, False:
        ``"release"``); configs of models saved before it hold it.
      image_score: the image's anomaly score, one of :data:`IMAGE_SCORES`. ``"mean"`` (default,
        the paper's): recon + beta * grad_loss, means over the image. ``"local"``: the mean of
        the top 1 % of the blurred score map (:func:`gradcon_tf.local_score.local_score`),
        where a small defect is not averaged away; every score then computes the maps (about
        twice the scoring time).
      remove_illumination: the network input is each image minus its Gaussian blur, around
        mid-grey (:func:`gradcon_tf.filters.remove_illumination`): exposure and light gradients
        out, local structure in. Part of :meth:`preprocess`, so training, scoring and the
        exported graphs all see the filtered images.
      backbone: GradCon on pretrained features. A frozen feature extractor
        (:func:`gradcon_tf.backbones.features.feature_extractor`, or its name, e.g.
        ``"efficientnet_lite0"``) between the resized images and the autoencoder: the
        autoencoder (default: pointwise, :func:`networks.build_feature_encoder`) reconstructs
        the standardised multi-scale feature map, Eq. 6 acts on its decoder kernels and the
        score is the feature reconstruction error + beta * gradient loss; maps are at the
        features' stride, resized to the input. ``working_size`` is then the side images are
        resized to for the backbone (default 224). The extractor is part of the model (saved in
        its file, exported with it) and not trained; ``fit`` sets its standardisation from the
        first training images and trains on their features computed once.

    ``alpha``, ``beta`` and ``threshold`` may be changed on a built model, also from a callback
    during ``fit()``; the next step, ``evaluate()``, ``score()`` or ``predict()`` uses the new
    value (``beta`` does not follow a changed ``alpha``).
    """

    #: The reconstruction error L (gradients.per_sample_reconstruction_error): MSE for the CAE.
    reconstruction_loss = "mse"
    #: Keras models held by the model, serialized in its config.
    _nested_models = ("encoder", "decoder")
    #: The image scores a model can give (``image_score``).
    IMAGE_SCORES = IMAGE_SCORES

    def __init__(
        self,
        input_shape=(28, 28, 1),
        alpha=DEFAULT_ALPHA,
        beta=None,
        encoder=None,
        decoder=None,
        initialization="guarded",
        restart_averages="kept",
        working_size=None,
        output_bias_from_data=None,
        image_score="mean",
        remove_illumination=False,
        backbone=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if image_score not in self.IMAGE_SCORES:
            raise ValueError(f"image_score must be one of {self.IMAGE_SCORES}, got {image_score!r}.")
        self._image_score = image_score
        self._remove_illumination = bool(remove_illumination)
        if output_bias_from_data is not None:
            initialization = "data" if output_bias_from_data else "release"
        if initialization not in INITIALIZATIONS:
            raise ValueError(
                f"initialization must be one of {INITIALIZATIONS}, got {initialization!r}."
            )
        self.initialization = initialization
        if restart_averages not in RESTART_AVERAGES:
            raise ValueError(
                f"restart_averages must be one of {RESTART_AVERAGES}, got {restart_averages!r}."
            )
        self.restart_averages = restart_averages
        self.image_shape = tuple(int(d) for d in input_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"input_shape must be (H, W, C), got {input_shape}.")
        self.alpha = float(alpha)
        self.beta = 4.0 * self.alpha if beta is None else float(beta)
        self._build_networks(encoder, decoder, working_size, backbone)
        self._inputs_are_features = False  # fit() on cached features (see _training_on_features)
        self._extract_features = None  # the compiled preprocess, made on first use
        self._add_state_weights()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recon_loss_tracker = keras.metrics.Mean(name="recon_loss")
        self.grad_loss_tracker = keras.metrics.Mean(name="grad_loss")
        self.latent_loss_tracker = None  # models with a latent loss Omega set a tracker
        self._decoder_plan = None  # fast-path description of the decoder, made on first use
        self._score_functions = {}  # maps -> compiled per_sample_scores, made on first use
        self.calibration_scores = None  # sorted scores of held-out normal images (calibrate)
        #: {map name: scale}: the 99th percentile of the calibration images' maps (calibrate),
        #: one colour scale for every image's overlay; None for models calibrated without it.
        self.map_scales = None
        #: The epoch (1-based) whose weights model selection kept (callbacks.KeepBestWeights).
        self.selected_epoch = None
        #: The starts that collapsed before the one these weights trained from, in order:
        #: ``{"draw": k, "blank_after_epoch": e}`` (draw 0 is the first start).
        self.collapsed_starts = []
        self.built = True

    def _build_networks(self, encoder, decoder, working_size, backbone):
        """The backbone (None on pixels), ``working_size``, and the encoder and decoder given or
        built for what the autoencoder reconstructs: the images, or the backbone's features."""
        channels = self.image_shape[-1]
        self.backbone = _feature_extractor(backbone, working_size, self.image_shape)
        if self.backbone is None:
            self.working_size = _working_size(working_size, encoder, self.image_shape)
            size, build_encoder, build_decoder = (
                self.working_size, networks.build_encoder, networks.build_decoder)
        else:
            self.working_size = tuple(int(d) for d in self.backbone.inputs[0].shape[1:3])
            *size, channels = (int(d) for d in self.backbone.outputs[0].shape[1:])
            build_encoder, build_decoder = (
                networks.build_feature_encoder, networks.build_feature_decoder)
        self.encoder = encoder if encoder is not None else build_encoder(channels, size)
        self.decoder = decoder if decoder is not None else build_decoder(channels, size)

    def _add_state_weights(self):
        """Eq. 6's running averages and step count, and the threshold: non-trainable weights, so
        that they are saved, restored and distributed with the model (in this order)."""
        kernels = gradients.constrained_kernels(self.decoder)
        if not kernels:
            raise ValueError("The decoder has no trainable kernels for the gradient constraint.")
        # Eq. 6: avg_{t<k} dJ/dphi_i, one per decoder kernel, and k - 1 (the number of steps seen).
        self.reference_gradients = [
            self.add_weight(
                shape=kernel.shape,
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
                name=f"reference_gradient_{index}",
            )
            for index, kernel in enumerate(kernels, start=1)
        ]
        self.reference_count = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="reference_count",
        )
        # NaN = not calibrated yet. Stored as a weight so that it is saved with the model.
        self._threshold = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float("nan")),
            trainable=False,
            aggregation="only_first_replica",
            name="threshold",
        )

    # ------------------------------------------------------------------ configuration

    def get_config(self):
        config = super().get_config()
        config.update(
            input_shape=list(self.image_shape),
            working_size=list(self.working_size),
            alpha=self.alpha,
            beta=self.beta,
            initialization=self.initialization,
            restart_averages=self.restart_averages,
            image_score=self.image_score,
            remove_illumination=self.remove_illumination,
        )
        for key in self._nested_models:
            config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        if self.backbone is not None:
            config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        return config

    @property
    def image_score(self):
        """How the image's score is made from its parts (``image_score`` of the constructor).
        Training does not depend on it; changing it on a trained model clears the threshold and
        the calibration scores, made on the other score: :meth:`calibrate` again."""
        return self._image_score

    @image_score.setter
    def image_score(self, value):
        if value not in self.IMAGE_SCORES:
            raise ValueError(f"image_score must be one of {self.IMAGE_SCORES}, got {value!r}.")
        if value != self._image_score:
            self._image_score = value
            self.threshold, self.calibration_scores = None, None
            self._remake_compiled_functions()

    @property
    def remove_illumination(self):
        """Whether :meth:`preprocess` removes the illumination (fixed at construction: the
        weights trained on what it gives)."""
        return self._remove_illumination

    @property
    def starts_from_mean_image(self):
        """Whether these weights trained from the output bias set from data."""
        return self.initialization == "data" or (
            self.initialization == "guarded" and bool(self.collapsed_starts)
        )

    @property
    def alpha(self):
        """Weight of the gradient loss in training, Eq. 6."""
        return self._alpha

    @alpha.setter
    def alpha(self, value):
        self._alpha = float(value)
        self._remake_compiled_functions()

    @property
    def beta(self):
        """Weight of the gradient loss in the anomaly score."""
        return self._beta

    @beta.setter
    def beta(self, value):
        self._beta = float(value)
        self._remake_compiled_functions()

    def _remake_compiled_functions(self):
        """Replace the compiled functions, which hold alpha and beta as traced constants.

        Keras' are remade rather than dropped: fit() looks ``train_function`` up at every step,
        so a callback may change alpha during training.
        """
        self._score_functions = {}
        for name in ("train", "test", "predict"):
            if getattr(self, f"{name}_function", None) is not None:
                getattr(self, f"make_{name}_function")(force=True)

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes nested dicts
        for key in (*cls._nested_models, "backbone"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def compile(self, optimizer=None, jit_compile=False, learning_rate=None, **kwargs):
        """The paper's Adam (epsilon 1e-8 on sqrt(v_hat), as the release's PyTorch Adam:
        :class:`gradcon_tf.optimizers.CorrectedEpsilonAdam`) at ``learning_rate`` (default the
        paper's 1e-3) unless ``optimizer`` is given. XLA is off by default (slower on CPU here)."""
        if optimizer is not None and learning_rate is not None:
            raise ValueError("give optimizer or learning_rate, not both: learning_rate is the "
                             "default optimizer's.")
        if optimizer is None:
            rate = DEFAULT_LEARNING_RATE if learning_rate is None else float(learning_rate)
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"learning_rate must be a positive number, got {learning_rate}.")
            optimizer = optimizers.CorrectedEpsilonAdam(rate, epsilon=ADAM_EPSILON)
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """Re-compile on load (Keras skips this for an overridden ``compile``)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # so its saved state can be restored

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.recon_loss_tracker, self.grad_loss_tracker]
        if self.latent_loss_tracker is not None:
            trackers.append(self.latent_loss_tracker)
        return trackers

    # ------------------------------------------------------------------ forward pass

    def preprocess(self, images):
        """The autoencoder's input and target: the images as :meth:`resize` gives them, or their
        features when the model has a ``backbone``."""
        resized = self.resize(images)
        return resized if self.backbone is None else self.backbone(resized, training=False)

    def resize(self, images):
        """uint8 -> /255, float32, resized (bilinear) to ``working_size`` when it differs; the
        illumination removed when the model does (``remove_illumination``)."""
        network_input = preprocessing.to_network_input(images, self.working_size)
        if self.remove_illumination:
            network_input = filters.remove_illumination(network_input)
        return network_input

    def encode(self, network_input, training=False):
        """(decoder input, per-sample latent loss Omega or None). The CAE has no latent loss."""
        return self.encoder(network_input, training=training), None

    def call(self, images, training=False):
        """The reconstruction (N, *working_size, C) of the preprocessed images."""
        latents, _ = self.encode(self.preprocess(images), training=training)
        return self.decoder(latents, training=training)

    # ------------------------------------------------------------------ training

    @property
    def constrained_kernels(self):
        return gradients.constrained_kernels(self.decoder)

    def gradient_loss(self, kernel_gradients):
        """Eq. 6: -mean_i cos(dL/dphi_i, avg dJ/dphi_i). Zero while no average exists yet."""
        cosines = [
            gradients.cosine_similarity(g, r)
            for g, r in zip(kernel_gradients, self.reference_gradients)
        ]
        return -tf.reduce_mean(tf.stack(cosines))

    def _loss_terms(self, images, training):
        """(L, Omega, L_grad) for a batch. The inner tape watches only the decoder kernels.

        Under a ``tf.distribute`` strategy each replica sees part of the global batch; the inner
        gradients are averaged over replicas (a differentiable all-reduce) so that L_grad is the
        cosine of the *global* batch gradient, as on one device.
        """
        kernels = [k.value for k in self.constrained_kernels]
        # Once: it is both the input and the target. Cached features are that already.
        network_input = images if self._inputs_are_features else self.preprocess(images)
        with tf.GradientTape(watch_accessed_variables=False) as inner_tape:
            inner_tape.watch(kernels)
            latents, latent_losses = self.encode(network_input, training=training)
            reconstructions = self.decoder(latents, training=training)
            recon_loss = tf.reduce_mean(
                gradients.per_sample_reconstruction_error(
                    network_input, reconstructions, self.reconstruction_loss
                )
            )
        # Omega does not depend on the decoder, so dL/dphi_i = d(L + Omega)/dphi_i.
        kernel_gradients = inner_tape.gradient(recon_loss, kernels)
        replica = _distributed_replica_context()
        if replica is not None:
            kernel_gradients = replica.all_reduce(tf.distribute.ReduceOp.MEAN, kernel_gradients)
        latent_loss = 0.0 if latent_losses is None else tf.reduce_mean(latent_losses)
        return recon_loss, latent_loss, self.gradient_loss(kernel_gradients)

    def _unpack_images(self, data):
        if isinstance(data, (tuple, list)):
            data = data[0]  # (images,) or (images, ignored_labels)
        return data

    def train_step(self, data):
        images = self._unpack_images(data)
        replica = _distributed_replica_context()
        replicas = 1 if replica is None else replica.num_replicas_in_sync
        # The outer tape watches every trainable variable (encoder and decoder).
        with tf.GradientTape() as outer_tape:
            recon_loss, latent_loss, grad_loss = self._loss_terms(images, training=True)
            loss = recon_loss + latent_loss + self.alpha * grad_loss
            # The optimizer sums the replicas' gradients: each contributes 1/replicas of J.
            replica_loss = loss / replicas
        trainable = self.trainable_variables
        total_gradients = outer_tape.gradient(replica_loss, trainable)
        position = {id(v): i for i, v in enumerate(trainable)}
        kernel_gradients = [total_gradients[position[id(k)]] for k in self.constrained_kernels]
        if replica is not None:
            kernel_gradients = replica.all_reduce(tf.distribute.ReduceOp.SUM, kernel_gradients)
        self.optimizer.apply(total_gradients, trainable)
        self.update_reference_gradients(kernel_gradients)
        return self._record(images, loss, recon_loss, latent_loss, grad_loss)

    def update_reference_gradients(self, total_gradients):
        """Running mean over steps: avg_k = avg_{k-1} + (dJ/dphi^k - avg_{k-1}) / k."""
        count = tf.cast(self.reference_count + 1, "float32")
        averages = [
            reference.assign_add((gradient - reference) / count)
            for reference, gradient in zip(self.reference_gradients, total_gradients)
        ]
        # Counted only once this step's averages exist: at the end of each epoch over a dataset
        # of unknown length Keras runs the step on the exhausted iterator, and the ops that do
        # not depend on the (missing) batch still run.
        with tf.control_dependencies(averages):
            self.reference_count.assign_add(1)

    def test_step(self, data):
        images = self._unpack_images(data)
        recon_loss, latent_loss, grad_loss = self._loss_terms(images, training=False)
        loss = recon_loss + latent_loss + self.alpha * grad_loss
        return self._record(images, loss, recon_loss, latent_loss, grad_loss)

    def _record(self, images, loss, recon_loss, latent_loss, grad_loss):
        """Update the loss trackers, each batch weighted by its size (a short last batch counts
        for its size, as the release's epoch averages do)."""
        size = tf.cast(tf.shape(images)[0], "float32")
        self.loss_tracker.update_state(loss, sample_weight=size)
        self.recon_loss_tracker.update_state(recon_loss, sample_weight=size)
        self.grad_loss_tracker.update_state(grad_loss, sample_weight=size)
        if self.latent_loss_tracker is not None:
            self.latent_loss_tracker.update_state(latent_loss, sample_weight=size)
        return compat.logs_for_distribution({m.name: m.result() for m in self.metrics})

    # ------------------------------------------------------------------ scoring

    def per_sample_scores(self, images, maps=False):
        """Per-sample score, recon, grad_loss and layer cosines of a batch, as tensors (and
        ``latent``, the latent loss, for a model that has one). ``score`` is as
        :attr:`image_score` says: the mean's (recon + beta * grad_loss) or the local score of the
        score map at the working size.

        ``maps``: also the anomaly maps, (N, H, W) at the input's resolution: ``recon_map`` (the
        pixel's reconstruction error, averaged over channels; its mean is ``recon``),
        ``grad_map`` (where the image's gradient disagrees with the reference: the mean over
        layers of max(-m_i, 0), m_i the layer's cosine spread over the pixels,
        :func:`gradients.cosine_maps`) and ``score_map`` = recon_map + beta * grad_map. Maps are
        computed at ``working_size`` and resized (bilinear) to another input size.

        Uses the closed-form fast path when the decoder is a chain of layers
        :func:`gradients.plan_decoder` knows, else the generic vectorized-tape path.
        """
        network_input = self.preprocess(images)
        latents, latent_losses = self.encode(network_input, training=False)
        if self._decoder_plan is None:
            self._decoder_plan = gradients.plan_decoder(self.decoder) or ()
        local = self.image_score == "local"
        if self._decoder_plan:
            results = gradients.decoder_scores(
                self._decoder_plan,
                latents,
                network_input,
                self.reference_gradients,
                self.reconstruction_loss,
                maps=maps or local,
            )
        else:
            results = gradients.generic_decoder_scores(
                self.decoder,
                latents,
                network_input,
                [r.value for r in self.reference_gradients],
                self.reconstruction_loss,
                maps=maps or local,
            )
        recon, cosines, reconstructions = results[:3]
        grad_loss = -tf.reduce_mean(cosines, axis=1)
        outputs = {
            "score": recon + self.beta * grad_loss,
            "recon": recon,
            "grad_loss": grad_loss,
            "layer_cosines": cosines,
        }
        if latent_losses is not None:
            outputs["latent"] = latent_losses
        if maps or local:
            pixel_errors = gradients.per_pixel_reconstruction_error(
                network_input, reconstructions, self.reconstruction_loss
            )
            recon_map = tf.reduce_mean(pixel_errors, axis=-1)
            grad_map = tf.reduce_mean(tf.nn.relu(-results[3]), axis=-1)
        if local:
            outputs["score"] = local_score(recon_map + self.beta * grad_map)
        if maps:
            outputs["recon_map"] = preprocessing.to_input_resolution(recon_map, self.image_shape)
            outputs["grad_map"] = preprocessing.to_input_resolution(grad_map, self.image_shape)
            outputs["score_map"] = outputs["recon_map"] + self.beta * outputs["grad_map"]
        return outputs

    def predict_step(self, data):
        """``predict()`` (Keras' API) gives the scores of :meth:`per_sample_scores` (``score``,
        ``recon``, ``grad_loss``, ``layer_cosines``); :meth:`score` is the door that also
        decides (``is_anomaly``, ``p_value``) and is faster."""
        return self.per_sample_scores(self._unpack_images(data))

    def score(self, images, batch_size=512, verbose=0, maps=False):
        """Anomaly scores of ``images``: a dict of numpy arrays, one row per sample.

        ``score`` = recon + beta * grad_loss (higher = more anomalous), ``recon`` (the sample's
        MSE), ``grad_loss`` (-mean cosine), ``layer_cosines`` (N, decoder layers), and
        ``is_anomaly`` (score > threshold) once a threshold is set, ``p_value`` (conformal, see
        :meth:`p_values`) once the model is calibrated. ``maps``: also ``recon_map``,
        ``grad_map`` and ``score_map``, (N, H, W) each (see :meth:`per_sample_scores`).
        Images: uint8 or float in [0, 1], as an array or a ``tf.data.Dataset`` of batches
        (streamed: memory stays flat in N, except for the maps).
        """
        parts = list(self._scored_batches(images, batch_size, maps, verbose))
        outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if self.threshold is not None:
            outputs["is_anomaly"] = outputs["score"] > self.threshold
        if self.calibration_scores is not None:
            outputs["p_value"] = self.p_values(outputs["score"])
        return outputs

    def _scored_batches(self, images, batch_size, maps, verbose=0):
        """{output: numpy array} of :meth:`per_sample_scores` per batch of ``images``."""
        images = self._check_input(images, "images")
        if isinstance(images, tf.data.Dataset):
            batches = (self._unpack_images(b) for b in images.prefetch(tf.data.AUTOTUNE))
            steps = None
        else:
            batches = (images[i : i + batch_size] for i in range(0, len(images), batch_size))
            steps = -(-len(images) // batch_size)
        # The compiled per_sample_scores, called batch by batch: Keras' predict() around the
        # same function cost about a third of the throughput here (benchmarks/).
        maps = bool(maps)
        if maps not in self._score_functions:
            self._score_functions[maps] = tf.function(
                lambda batch: self.per_sample_scores(batch, maps=maps), reduce_retracing=True
            )
        score_function = self._score_functions[maps]
        progress = keras.utils.Progbar(steps, unit_name="batch") if verbose else None
        empty = True
        for batch in batches:
            yield {k: v.numpy() for k, v in score_function(batch).items()}
            empty = False
            if progress is not None:
                progress.add(1)
        if empty:  # a dataset of unknown length that yielded nothing
            raise ValueError("images is empty: no batches")



def _feature_extractor(backbone, working_size, image_shape):
    """``backbone`` as a feature extractor for images of ``image_shape``: None, a built one, or
    the name of one, at ``working_size`` (default :data:`backbones.DEFAULT_IMAGE_SIZE`)."""
    if backbone is None or backbone == "none":
        return None
    if min(image_shape[:2]) < backbones.MIN_IMAGE_SIDE:
        raise backbones.BackboneError(
            f"images of {image_shape[0]}x{image_shape[1]} px are too small for a backbone "
            f"(at least {backbones.MIN_IMAGE_SIDE} px a side)"
        )
    if isinstance(backbone, keras.Model):
        return backbone
    size = networks.size_pair(working_size or backbones.DEFAULT_IMAGE_SIZE)
    if size[0] != size[1]:
        raise backbones.BackboneError(f"a backbone works on square images, got {size}")
    return feature_extractors.feature_extractor(backbone, size[0], channels=image_shape[-1])


def _working_size(requested, encoder, image_shape):
    """The network's (height, width): as requested, else the given encoder's, else the default."""
    if requested is not None:
        return networks.size_pair(requested)
    if encoder is not None:
        shape = encoder.inputs[0].shape if getattr(encoder, "inputs", None) else None
        if shape is not None and shape[1] is not None and shape[2] is not None:
            return (int(shape[1]), int(shape[2]))
    return networks.working_size(image_shape)
