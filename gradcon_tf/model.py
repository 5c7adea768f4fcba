"""GradCon: a convolutional autoencoder trained with a directional gradient constraint (Eq. 6).

Training minimises ``J = L + Omega + alpha * L_grad`` (Omega, the latent loss, is 0 for the CAE;
see :mod:`gradcon_tf.vae`) with

    L_grad = -mean_i cos(dL/dphi_i (this batch), avg_{t<k} dJ/dphi_i (past steps)),

over the decoder kernels ``phi_i``. The running averages of the *total-loss* gradients live in
non-trainable variables of the model, so they are saved, restored and distributed with it. Samples
are scored by ``L + beta * L_grad`` (beta = 4 alpha), each with the gradient of its own loss.
"""

import contextlib
import copy
import json
import logging
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from gradcon_tf import callbacks as gradcon_callbacks
from gradcon_tf import _compat as compat
from gradcon_tf import _files as files
from gradcon_tf import (
    backbones, calibration, filters, gradients, model_files, networks, optimizers, preprocessing,
)
from gradcon_tf.calibration import CalibrationWarning
from gradcon_tf.backbones import features as feature_extractors
from gradcon_tf.local_score import local_score
from gradcon_tf.portable.signatures import MAP_NAMES

DEFAULT_ALPHA = 0.03
DEFAULT_LEARNING_RATE = 1e-3
#: PyTorch's Adam default, which the authors' release trains with (Keras' default is 1e-7).
ADAM_EPSILON = 1e-8
DEFAULT_BATCH_SIZE = 64
#: Where :meth:`GradCon.save_own_variables` stores the sorted calibration scores.
CALIBRATION_SCORES_KEY = "calibration_scores"
#: Where it stores the calibration images' map scales (:attr:`GradCon.map_scales`).
MAP_SCALES_KEY = "map_scales"
#: Where it stores what training recorded (``selected_epoch``, ``collapsed_starts``), as JSON.
TRAINING_RECORD_KEY = "training_record"
#: How :meth:`GradCon.fit` starts a fresh model (docs/initialisation.md): ``guarded`` (the
#: default) from PyTorch's draw, as the authors' release, and again from the same draw with the
#: output bias from data if that start collapses; ``release`` from PyTorch's draw whatever
#: happens; ``data`` always with the output bias from data.
INITIALIZATIONS = ("guarded", "release", "data")
#: ``guarded`` judges the start after this epoch (or the last, if ``fit`` runs fewer).
GUARD_EPOCH = 2

logger = logging.getLogger("gradcon_tf")


def _distributed_replica_context():
    """The replica context when running on several replicas of a tf.distribute strategy."""
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return None
    return replica


@keras.saving.register_keras_serializable(package="gradcon_tf")
class GradCon(keras.Model):
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
      initialization: how :meth:`fit` starts a fresh model, one of :data:`INITIALIZATIONS`.
        ``"guarded"`` (default): PyTorch's draw, as the authors' release; if the decoder is dead
        after epoch :data:`GUARD_EPOCH` (:func:`gradcon_tf.collapse.is_collapsed`),
        the weights go back to that draw, the bias before the final sigmoid is set to the logit
        of the mean training intensity (training starts from the mean image) and training
        starts again, for the full ``epochs``. ``"release"``: PyTorch's draw whatever happens.
        ``"data"``: always the output bias from data.
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
    IMAGE_SCORES = ("mean", "local")

    def __init__(
        self,
        input_shape=(28, 28, 1),
        alpha=DEFAULT_ALPHA,
        beta=None,
        encoder=None,
        decoder=None,
        initialization="guarded",
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
        self.image_shape = tuple(int(d) for d in input_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"input_shape must be (H, W, C), got {input_shape}.")
        self.alpha = float(alpha)
        self.beta = 4.0 * self.alpha if beta is None else float(beta)
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
        self._inputs_are_features = False  # fit() on cached features (see _training_on_features)
        self._extract_features = None  # the compiled preprocess, made on first use
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

    # ------------------------------------------------------------------ configuration

    def get_config(self):
        config = super().get_config()
        config.update(
            input_shape=list(self.image_shape),
            working_size=list(self.working_size),
            alpha=self.alpha,
            beta=self.beta,
            initialization=self.initialization,
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

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` on images (labels ignored), checked first; stops at a NaN/inf loss.

        A fresh model starts as ``initialization`` says. With ``"guarded"``, a start whose
        decoder is dead after epoch :data:`GUARD_EPOCH` (or the last, if fewer; judged on
        ``validation_data``, else on training images) is trained again in place: the initial
        weights and optimizer state come back, the output bias is set from ``x`` and ``fit``
        runs again for ``epochs``. The log says so, ``collapsed_starts`` records it and the
        returned History's ``restarts`` holds the abandoned run's history (empty otherwise);
        callbacks see a second ``on_train_begin``.

        A :class:`gradcon_tf.callbacks.StopOnNonFiniteLoss` guard is added unless the callbacks
        already hold one (or Keras' ``TerminateOnNaN``). Empty ``x`` is a ValueError.
        """
        x = self._check_input(x)
        validation = kwargs.get("validation_data")
        if validation is not None and not isinstance(validation, (tuple, list)):
            kwargs["validation_data"] = (self._check_input(validation, "validation_data"),)
            validation = kwargs["validation_data"]
        fresh = int(self.reference_count.numpy()) == 0
        if fresh and self.initialization == "data":
            self.initialize_output_bias(x, name="x")
        callbacks = list(kwargs.get("callbacks") or [])
        guards = (gradcon_callbacks.StopOnNonFiniteLoss, keras.callbacks.TerminateOnNaN)
        if not any(isinstance(c, guards) for c in callbacks):
            callbacks.append(gradcon_callbacks.StopOnNonFiniteLoss())
        kwargs["callbacks"] = callbacks
        if self.backbone is not None:
            if fresh and not feature_extractors.is_adapted(self.backbone):
                self.adapt_backbone(x)
            if isinstance(x, np.ndarray):
                return self._fit_on_features(x, y, kwargs)
        # A decoder without an output sigmoid cannot collapse so (gradcon_tf.collapse).
        guarded = networks.sigmoid_output_bias(self.decoder) is not None
        if fresh and self.initialization == "guarded" and guarded:
            judged = x if validation is None else validation[0]
            return self._fit_guarded(x, y, kwargs, self._images_to_judge(judged))
        return self._fit_once(x, y, kwargs)

    def _fit_guarded(self, x, y, kwargs, images):
        """``fit`` from the release's draw; if the decoder is dead after :data:`GUARD_EPOCH`,
        again from the same draw and optimizer state with the output bias from ``x``."""
        start = self._training_state()
        guard = gradcon_callbacks.StopOnCollapse(images, epoch=GUARD_EPOCH)
        abandoned = self._fit_once(x, y, {**kwargs, "callbacks": [*kwargs["callbacks"], guard]})
        if guard.collapsed_at is None:
            abandoned.restarts = []
            return abandoned
        logger.warning(
            "GradCon: the decoder collapsed after epoch %d (%s); training again from the same "
            "initial weights with the output bias from the data (docs/initialisation.md).",
            guard.collapsed_at, guard.reason,
        )
        self._restore_training_state(start)
        self.initialize_output_bias(x, name="x")
        self.collapsed_starts.append(
            {"draw": len(self.collapsed_starts), "blank_after_epoch": guard.collapsed_at}
        )
        watch = gradcon_callbacks.StopOnCollapse(images, epoch=GUARD_EPOCH, stop=False)
        history = self._fit_once(x, y, {**kwargs, "callbacks": [*kwargs["callbacks"], watch]})
        if watch.collapsed_at is not None:
            logger.warning(
                "GradCon: the restart from the mean image collapsed too (after epoch %d); it "
                "trained to the end. Try another seed, or initialization='release'.",
                watch.collapsed_at,
            )
        history.restarts = [{"after_epoch": guard.collapsed_at, "history": abandoned.history}]
        return history

    def _fit_on_features(self, x, y, kwargs):
        """``keras.Model.fit`` on the backbone's features of ``x`` (and of the validation
        images), computed once: an epoch costs the autoencoder only."""
        validation = kwargs.get("validation_data")
        if validation is not None:
            images = validation[0] if isinstance(validation[0], np.ndarray) else None
            if images is None:
                raise ValueError("with a backbone, give validation_data as an array like x")
            kwargs = {**kwargs, "validation_data": (self.extract_features(images),)}
        with self._training_on_features():
            return self._fit_once(self.extract_features(x), y, kwargs)

    @contextlib.contextmanager
    def _training_on_features(self):
        """train_step and test_step take features, not images, inside this block."""
        self._inputs_are_features = True
        self._remake_compiled_functions()
        try:
            yield
        finally:
            self._inputs_are_features = False
            self._remake_compiled_functions()

    def extract_features(self, images, batch_size=64):
        """The backbone's standardised features of ``images`` (an array), as one float32 array."""
        if self._extract_features is None:  # preprocess does not depend on alpha or beta
            self._extract_features = tf.function(self.preprocess, reduce_retracing=True)
        extract = self._extract_features
        return np.concatenate([
            extract(images[i : i + batch_size]).numpy() for i in range(0, len(images), batch_size)
        ])

    def adapt_backbone(self, images, max_images=2000, batch_size=64):
        """Set the backbone's feature standardisation from (a spread-out sample of at most
        ``max_images`` of) ``images``: an array or a dataset of batches."""
        if isinstance(images, tf.data.Dataset):
            images = self._images_to_judge(images, max_images)
        images = preprocessing.spread_sample(images, max_images)
        batches = (self.resize(images[i : i + batch_size])
                   for i in range(0, len(images), batch_size))
        feature_extractors.adapt_feature_extractor(self.backbone, batches)

    def _fit_once(self, x, y, kwargs):
        """``keras.Model.fit``, and a ValueError when a dataset of unknown length yielded nothing
        (Keras only warns)."""
        count_before = int(self.reference_count.numpy())
        history = super().fit(x, y, **kwargs)
        trained_nothing = int(self.reference_count.numpy()) == count_before
        if trained_nothing and isinstance(x, tf.data.Dataset) and not any(True for _ in x.take(1)):
            raise ValueError("x is empty: no batches")
        return history

    def _images_to_judge(self, data, count=1024):
        """Up to ``count`` images of ``data`` (an array, a dataset or PyDataset of batches)."""
        if not isinstance(data, (tf.data.Dataset, keras.utils.PyDataset)):
            return data[:count]
        batches, total = [], 0
        source = data if isinstance(data, tf.data.Dataset) else (data[i] for i in range(len(data)))
        for batch in source:
            batches.append(np.asarray(self._unpack_images(batch)))
            total += len(batches[-1])
            if total >= count:
                break
        if not batches:
            raise ValueError("x is empty: no batches")
        return np.concatenate(batches)[:count]

    def _training_state(self):
        """The model's weights and its optimizer's variables (built first), to start again from."""
        if not self.optimizer.built:
            with self.distribute_strategy.scope():  # as fit() would build it
                self.optimizer.build(self.trainable_variables)
        return self.get_weights(), [v.numpy() for v in self.optimizer.variables]

    def _restore_training_state(self, state):
        weights, optimizer_values = state
        self.set_weights(weights)
        for variable, value in zip(self.optimizer.variables, optimizer_values):
            variable.assign(value)

    def initialize_output_bias(self, images, max_batches=64, name="images"):
        """Set the bias before the final sigmoid to logit(mean intensity per channel) of ``images``.

        ``images``: an array, or a dataset of batches (the first ``max_batches`` are used).
        Does nothing for a decoder without such a bias. Returns the per-channel mean, or None.
        ``name``: what errors call ``images``.
        """
        bias = networks.sigmoid_output_bias(self.decoder)
        if bias is None or images is None or isinstance(images, keras.utils.PyDataset):
            return None
        if isinstance(images, tf.data.Dataset):
            batches = [self._unpack_images(b) for b in images.take(max_batches)]
            if not batches:
                raise ValueError(f"{name} is empty: no batches")
            images = tf.concat(batches, axis=0)
        else:
            images = images[:: max(1, len(images) // 10_000)]  # a spread-out sample is enough
        network_input = self.preprocess(tf.convert_to_tensor(images))
        mean = tf.reduce_mean(network_input, axis=[0, 1, 2])
        if mean.shape[-1] != bias.shape[-1]:
            return None
        mean = tf.clip_by_value(mean, 1e-3, 1.0 - 1e-3)
        bias.assign(tf.math.log(mean / (1.0 - mean)))
        return mean.numpy()

    def _check_input(self, data, name="x"):
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            spec = spec[0] if isinstance(spec, tuple) else spec
            preprocessing.check_image_spec(spec, self.image_shape, name)
            if int(data.cardinality()) == 0:
                raise ValueError(f"{name} is empty: no batches")
            return data
        if data is None or isinstance(data, keras.utils.PyDataset):
            return data
        return preprocessing.check_images(data, self.image_shape, name)

    def save(self, filepath, overwrite=True, **kwargs):
        """``keras.Model.save``, written under a temporary name and renamed (crash-safe)."""
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False.")
        with files.atomic_output(filepath) as temporary:
            super().save(temporary, overwrite=True, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """``keras.Model.save_weights``, crash-safe like :meth:`save` (BackupAndRestore uses it)."""
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists and overwrite=False.")
        with files.atomic_output(filepath) as temporary:
            super().save_weights(temporary, overwrite=True, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=True, **kwargs):
        """``keras.Model.export`` for GradCon: the scoring SavedModel at ``filepath``.

        Its signatures (``serving_default`` for float images, ``score_uint8``) compute the
        per-sample scores, gradients included, as :func:`gradcon_tf.export.export_model` writes
        them; ``gradcon export`` also writes TF Serving's version folder and the LiteRT models.
        """
        if format != "tf_saved_model" or kwargs:
            raise ValueError(
                f"GradCon.export writes the scoring SavedModel only (format='tf_saved_model'); "
                f"for LiteRT and TF Serving's layout use `gradcon export MODEL.keras --out DIR`."
            )
        import tensorflow as tf

        from gradcon_tf.scoring_graph import ScoringModule

        module = ScoringModule(self)
        with files.atomic_output(os.fspath(filepath), directory=True) as temporary:
            tf.saved_model.save(module, temporary, signatures=module.signatures())
        if verbose:
            print(f"Saved the GradCon scoring SavedModel to {filepath} (`gradcon export` also "
                  "writes the LiteRT models).")

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

    # ------------------------------------------------------------------ thresholds

    @property
    def threshold(self):
        """Decision threshold on the score (None until set or calibrated)."""
        value = float(keras.ops.convert_to_numpy(self._threshold))
        return None if math.isnan(value) else value

    @threshold.setter
    def threshold(self, value):
        if value is None:
            self._threshold.assign(float("nan"))
            return
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"threshold must be a finite number, got {value}.")
        self._threshold.assign(value)

    def calibrate(self, normal_images, fpr=0.05, batch_size=256, maps=True):
        """Set the threshold so that at most ``fpr`` of held-out *normal* images score above it,
        and keep their sorted scores: :meth:`score` then also returns conformal p-values.
        ``maps``: also keep the 99th percentile of their anomaly maps (:attr:`map_scales`), the
        shared scale of overlays (``gradcon score --maps DIR --map-scale calibration``): about
        twice the time; memory holds one batch of maps and at most
        :data:`calibration.MAP_SAMPLE_SIZE` squared values per image and map.

        Warns (:class:`CalibrationWarning`) when the images are too few for ``fpr``: fewer than
        :data:`calibration.MIN_SCORES_ABOVE_THRESHOLD` of them above the threshold, or ``1/(n+1) > fpr``
        (no p-value can then be as low as ``fpr``).
        """
        fpr = calibration.checked_fpr(fpr)  # before any scoring
        scores, samples = [], {name: [] for name in MAP_NAMES}
        for part in self._scored_batches(normal_images, batch_size, maps):
            scores.append(part["score"])
            for name in samples if maps else ():
                samples[name].append(calibration.map_sample(part[name]))
        scores = np.concatenate(scores)
        if maps:
            self.map_scales = calibration.map_scales(samples)
        self.calibration_scores = np.sort(scores.astype(np.float64))
        self.threshold = calibration.threshold_at(scores, fpr)
        problem = calibration.calibration_shortfall(len(scores), fpr)
        if problem:
            warnings.warn(problem, CalibrationWarning, stacklevel=2)
        return self.threshold

    def p_values(self, scores):
        """Conformal p-values of ``scores`` against the calibration scores (normal images):
        ``(1 + #{calibration scores >= s}) / (n + 1)`` (:func:`calibration.conformal_p_values`)."""
        if self.calibration_scores is None:
            raise ValueError("no calibration scores: call calibrate() with normal images first.")
        return calibration.conformal_p_values(self.calibration_scores, scores)

    def save_own_variables(self, store):
        """The model's variables, the calibration scores when there are some, and what training
        recorded (``selected_epoch``, ``collapsed_starts``)."""
        super().save_own_variables(store)
        if self.calibration_scores is not None:
            store[CALIBRATION_SCORES_KEY] = self.calibration_scores
        if self.map_scales is not None:
            store[MAP_SCALES_KEY] = np.array([self.map_scales[n] for n in MAP_NAMES], np.float64)
        record = {"selected_epoch": self.selected_epoch, "collapsed_starts": self.collapsed_starts}
        store[TRAINING_RECORD_KEY] = np.frombuffer(json.dumps(record).encode(), np.uint8)

    def load_own_variables(self, store):
        """Files without calibration scores load without (score() gives no p_value); files
        without a training record load with ``selected_epoch`` None, files without map scales
        with ``map_scales`` None."""
        extras = (CALIBRATION_SCORES_KEY, MAP_SCALES_KEY, TRAINING_RECORD_KEY)
        super().load_own_variables({k: store[k] for k in store.keys() if k not in extras})
        if CALIBRATION_SCORES_KEY in store:
            self.calibration_scores = np.asarray(store[CALIBRATION_SCORES_KEY], np.float64)
        if MAP_SCALES_KEY in store:
            values = np.asarray(store[MAP_SCALES_KEY], np.float64)
            self.map_scales = dict(zip(MAP_NAMES, map(float, values)))
        if TRAINING_RECORD_KEY in store:
            record = json.loads(np.asarray(store[TRAINING_RECORD_KEY], np.uint8).tobytes())
            self.selected_epoch = record["selected_epoch"]
            self.collapsed_starts = list(record["collapsed_starts"])


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


def load_model(path):
    """Load a saved GradCon model (Keras safe mode), or raise an error saying what ``path`` is."""
    path = model_files.check_model_file(path)
    try:
        model = keras.models.load_model(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: cannot load a Keras model ({error})") from None
    if not isinstance(model, GradCon):
        raise ValueError(f"{path}: not a GradCon model (it holds a {type(model).__name__}).")
    return model
