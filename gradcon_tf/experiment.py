"""Train GradCon on one inlier class and measure how well its scores find the outliers."""

import keras
import numpy as np

from gradcon_tf import evaluation, filters, loss_weights, preprocessing
from gradcon_tf.callbacks import EpochProgress, KeepBestWeights
from gradcon_tf.model import DEFAULT_ALPHA, GradCon
from gradcon_tf.recipe import METHODS as METHOD_NAMES
from gradcon_tf.recipe import Recipe
from gradcon_tf.vae import GradConVAE

#: The data weights of a model on features measure at most this many images' features.
FEATURE_SAMPLE = 512

#: The autoencoders of Table 1 -> (model class, alpha). Without the constraint (alpha 0) the
#: running averages of the decoder gradients are still kept, so the gradient loss is a score too.
METHODS = dict(zip(METHOD_NAMES, [
    (GradCon, DEFAULT_ALPHA),  # gradcon: CAE + Grad
    (GradCon, 0.0),  # cae
    (GradConVAE, 0.0),  # vae
    (GradConVAE, DEFAULT_ALPHA),  # vae-grad
]))


def method_arguments(method, weights="paper", images=None):
    """alpha and beta of the model of Table 1 named ``method`` (beta: the paper's 4 * 0.03), or
    with ``weights="data"`` both scaled to ``images``' pixel variance (:mod:`loss_weights`)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return loss_weights.loss_weights(weights, images, alpha=METHODS[method][1])


def build_model(method, input_shape, initialization="guarded", weights=None, **options):
    """The model of Table 1 named ``method``, for images shaped ``input_shape``, started as
    ``initialization`` says (:data:`gradcon_tf.recipe.INITIALIZATIONS`); ``weights``: its
    alpha and beta (default :func:`method_arguments`); ``options``: ``GradCon``'s
    ``image_score``, ``remove_illumination``, ``restart_averages``, ``backbone``."""
    model_class = METHODS[method][0]
    weights = weights if weights is not None else method_arguments(method)
    return model_class(input_shape=input_shape, initialization=initialization, **weights, **options)


def train_one_class(split, epochs=None, seed=0, verbose=1, callbacks=(), recipe=None, **options):
    """Fit the recipe's model (default GradCon) on ``split.train``, selected by validation loss,
    and calibrate its threshold on ``split.validation`` at the recipe's ``fpr``.

    ``recipe``: a :class:`~gradcon_tf.recipe.Recipe` (default: the paper's); ``epochs`` and
    ``options`` (recipe fields by name, e.g. ``loss_weights="data"``) replace its values; None
    leaves a value as it is.

    The same run as ``keras.utils.set_random_seed(seed)``, ``build_model(...)``,
    ``compile(learning_rate=...)`` and ``fit(split.train, validation_data=split.validation,
    epochs=..., batch_size=..., callbacks=[KeepBestWeights(checkpoint_every)])``:
    ``GradCon.fit`` starts as ``initialization`` says, the guarded restart included. The weights
    (running averages included) of the epoch with the lowest ``val_loss`` are kept; the model's
    ``selected_epoch`` says which, ``collapsed_starts`` which starts collapsed. ``verbose=1``
    shows one progress bar over epochs (one line per epoch off a terminal), 2 Keras' per-epoch
    lines, 0 nothing.

    ``loss_weights="data"`` scales alpha and beta to the training images' pixel variance
    (:mod:`gradcon_tf.loss_weights`; the filtered images with ``remove_illumination``), or with a
    ``backbone`` to the standardised features, times ``loss_weights.FEATURE_ALPHA_SHARE``.

    Global state: ``seed`` seeds the process's random generators (Python, NumPy, TensorFlow:
    ``keras.utils.set_random_seed``); clearing Keras' session after the run is the caller's.
    """
    recipe = (recipe or Recipe()).replace(epochs=epochs, **options)
    if verbose == 1:
        callbacks, verbose = [EpochProgress(), *callbacks], 0
    keras.utils.set_random_seed(seed)
    model = _compiled_model(recipe, split.train)
    model.fit(split.train, validation_data=split.validation, epochs=recipe.epochs,
              batch_size=recipe.batch_size, verbose=verbose,
              callbacks=[KeepBestWeights(every=recipe.checkpoint_every), *callbacks])
    model.calibrate(split.validation, fpr=recipe.fpr)
    return model


def _compiled_model(recipe, images):
    """The recipe's model for ``images`` (the training images), its alpha and beta set,
    compiled."""
    if recipe.backbone:
        model = build_model(recipe.method, images.shape[1:], recipe.initialization,
                            method_arguments(recipe.method), image_score=recipe.image_score,
                            remove_illumination=recipe.remove_illumination,
                            restart_averages=recipe.restart_averages,
                            backbone=_backbone_for(recipe.backbone, images))
        _set_feature_loss_weights(model, recipe.method, recipe.loss_weights, images)
    else:
        seen = as_the_network_sees(images, recipe.remove_illumination)
        model = build_model(recipe.method, images.shape[1:], recipe.initialization,
                            method_arguments(recipe.method, recipe.loss_weights, seen),
                            image_score=recipe.image_score,
                            remove_illumination=recipe.remove_illumination,
                            restart_averages=recipe.restart_averages)
    model.compile(learning_rate=recipe.learning_rate)
    return model


def _backbone_for(backbone, images):
    """``backbone``: a name, or a function of the images' channels that builds the extractor."""
    return backbone(images.shape[-1]) if callable(backbone) else backbone


def _set_feature_loss_weights(model, method, weights, images):
    """The backbone's standardisation set from ``images``, then alpha and beta from (a sample
    of) their features: ``weights="data"`` scales them to the features' variance, times
    ``loss_weights.FEATURE_ALPHA_SHARE``."""
    model.adapt_backbone(images)
    features = model.extract_features(
        preprocessing.spread_sample(np.asarray(images), FEATURE_SAMPLE))
    alpha_and_beta = method_arguments(method, weights, features)
    share = loss_weights.FEATURE_ALPHA_SHARE if weights == "data" else 1.0
    model.alpha, model.beta = (alpha_and_beta[k] * share for k in ("alpha", "beta"))


def as_the_network_sees(images, remove_illumination):
    """``images`` (a spread-out sample of at most ``loss_weights.MAX_IMAGES``) with the
    illumination removed when the model removes it: what the data weights measure."""
    if not remove_illumination:
        return images
    images = preprocessing.spread_sample(np.asarray(images), loss_weights.MAX_IMAGES)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return filters.remove_illumination(images.astype(np.float32) / scale).numpy()


def initialization_record(model):
    """What a run record says of the start: ``{"draw", "output_bias_from_data", "collapsed"}``,
    and for a guarded restart ``"restarted_run"``: its epochs, first and last reconstruction
    loss and whether it collapsed too (``GradCon.fit``)."""
    record = {
        "draw": len(model.collapsed_starts),
        "output_bias_from_data": model.starts_from_mean_image,
        "collapsed": list(model.collapsed_starts),
    }
    for restart in getattr(getattr(model, "history", None), "restarts", None) or []:
        record["restarted_run"] = {k: v for k, v in restart["restarted_run"].items()
                                   if k != "summary"}
    return record


def evaluate_one_class(model, split):
    """AUROC of each score kind (by ``GradCon.score()`` key) and of each decoder layer's cosine
    on ``split.test``, and the test rates at the model's threshold."""
    outputs = model.score(split.test)
    labels = split.test_is_anomaly
    record = evaluation.evaluate(outputs, labels)
    kinds = evaluation.score_kinds(outputs)
    result = {key: record[name]["auroc"] for name, (key, _) in kinds.items()}
    result["layers"] = [layer["auroc"] for layer in record["layers"]]
    if "is_anomaly" in outputs:
        result["test_false_positive_rate"] = float(np.mean(outputs["is_anomaly"][~labels]))
        result["test_true_positive_rate"] = float(np.mean(outputs["is_anomaly"][labels]))
    return result
