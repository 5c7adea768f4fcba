"""How ``GradCon.fit`` trains: the input checked, a fresh model started as its ``initialization``
says, the guarded restart of a start whose decoder is dead (docs/initialisation.md; the test is
:mod:`gradcon_tf.collapse`), and training on cached features for a model with a backbone."""

import contextlib
import logging

import keras
import numpy as np
import tensorflow as tf

from gradcon_tf import callbacks as gradcon_callbacks
from gradcon_tf import networks, preprocessing
from gradcon_tf.backbones import features as feature_extractors

#: ``initialization="guarded"`` judges the start after this epoch (or the last, if ``fit`` runs
#: fewer).
GUARD_EPOCH = 2

logger = logging.getLogger("gradcon_tf")


class GuardedFit:
    """``fit`` and what it needs, for :class:`gradcon_tf.model.GradCon` (a mixin)."""

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` on images (labels ignored), checked first; stops at a NaN/inf loss.

        A fresh model starts as ``initialization`` says. With ``"guarded"``, a start whose
        decoder is dead after epoch :data:`GUARD_EPOCH` (or the last, if fewer; judged on
        ``validation_data``, else on training images) is trained again in place: the initial
        weights and optimizer state come back, the output bias is set from ``x``, Eq. 6's
        running averages go on from the abandoned run's (``restart_averages="kept"``, the
        default) or from zero (``"cleared"``) and ``fit`` runs again for ``epochs``. The log
        says so, ``collapsed_starts`` records it and the returned History's ``restarts`` holds
        the abandoned run's history (empty otherwise); callbacks see a second
        ``on_train_begin``.

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
        again from the same draw and optimizer state with the output bias from ``x`` and Eq. 6's
        averages as ``restart_averages`` says."""
        start = self._training_state()
        guard = gradcon_callbacks.StopOnCollapse(images, epoch=GUARD_EPOCH)
        abandoned = self._fit_once(x, y, {**kwargs, "callbacks": [*kwargs["callbacks"], guard]})
        if guard.collapsed_at is None:
            abandoned.restarts = []
            return abandoned
        logger.warning(
            "GradCon: the decoder collapsed after epoch %d (%s); training again from the same "
            "initial weights with the output bias from the data, the running gradient averages "
            "%s (docs/initialisation.md).", guard.collapsed_at, guard.reason,
            "kept from the abandoned run" if self.restart_averages == "kept" else "cleared",
        )
        kept = self._eq6_averages() if self.restart_averages == "kept" else None
        self._restore_training_state(start)
        if kept is not None:
            self._set_eq6_averages(kept)
        self.initialize_output_bias(x, name="x")
        self.collapsed_starts.append(
            {"draw": len(self.collapsed_starts), "blank_after_epoch": guard.collapsed_at}
        )
        watch = gradcon_callbacks.StopOnCollapse(images, epoch=GUARD_EPOCH, stop=False)
        history = self._fit_once(x, y, {**kwargs, "callbacks": [*kwargs["callbacks"], watch]})
        restarted = _restarted_run(history.history, watch.collapsed_at, self.restart_averages)
        logger.warning("GradCon: %s", restarted["summary"])
        history.restarts = [{"after_epoch": guard.collapsed_at, "history": abandoned.history,
                             "restarted_run": restarted}]
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

    def _eq6_averages(self):
        """Eq. 6's running averages and their step count, as NumPy values."""
        return [r.numpy() for r in self.reference_gradients], self.reference_count.numpy()

    def _set_eq6_averages(self, averages):
        references, count = averages
        for reference, value in zip(self.reference_gradients, references):
            reference.assign(value)
        self.reference_count.assign(count)

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


def _restarted_run(logs, collapsed_at, restart_averages):
    """What the run restarted from the mean image did, for the log and ``History.restarts``:
    ``{"epochs", "recon_loss": [first, last], "collapsed_at", "summary"}`` (the validation
    reconstruction loss when there is validation data, else the training one)."""
    key = "val_recon_loss" if logs.get("val_recon_loss") else "recon_loss"
    losses = [float(v) for v in logs.get(key, [])]
    first_last = [losses[0], losses[-1]] if losses else []
    where = "validation" if key.startswith("val") else "training"
    if collapsed_at is not None:
        summary = (f"the restart from the mean image collapsed too (after epoch {collapsed_at}); "
                   "it trained to the end. Try another seed, or initialization='release'.")
    else:
        summary = (f"the restart from the mean image trained {len(losses)} epochs"
                   + (f" ({where} reconstruction loss {first_last[0]:.4g} -> {first_last[1]:.4g})"
                      if losses else "") + ".")
        if restart_averages == "cleared":
            summary += (" With the averages cleared, a restarted run's gradient term can rank "
                        "anomalies less well than a start that did not collapse "
                        "(docs/initialisation.md): check the gradient-alone AUROC.")
    return {"epochs": len(losses), "recon_loss": first_last, "collapsed_at": collapsed_at,
            "summary": summary}
