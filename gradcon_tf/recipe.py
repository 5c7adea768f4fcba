"""The training recipe: how one model is trained, each option declared once.

A :class:`Recipe` is what :func:`gradcon_tf.experiment.train_one_class` trains with. Each field
holds its default, its check and, when a ``gradcon`` command takes it, its flag, help and the
commands that take it: the commands build their options from the fields
(:func:`add_arguments`) and a recipe from the options (:func:`from_args`); ``gradcon reproduce``
records the recipe in its settings (:mod:`gradcon_tf.reproduction.store`). No TensorFlow here:
the command line reads it before TensorFlow loads.
"""

import dataclasses
import math

DEFAULT_BATCH_SIZE = 64
#: The paper's Adam learning rate.
DEFAULT_LEARNING_RATE = 1e-3
#: How ``GradCon.fit`` starts a fresh model (docs/initialisation.md): ``guarded`` (the default)
#: from PyTorch's draw, as the authors' release, and again from the same draw with the output
#: bias from data if that start collapses; ``release`` from PyTorch's draw whatever happens;
#: ``data`` always with the output bias from data.
INITIALIZATIONS = ("guarded", "release", "data")
#: Eq. 6's running averages at a guarded restart (``GradCon(restart_averages=...)``): ``kept``
#: from the abandoned run (the default), or ``cleared``.
RESTART_AVERAGES = ("kept", "cleared")
#: The autoencoders of Table 1 (gradcon = CAE + Grad; ``experiment.METHODS``).
METHODS = ("gradcon", "cae", "vae", "vae-grad")
#: The image scores (``GradCon.image_score``).
IMAGE_SCORES = ("mean", "local")
#: alpha and beta: the paper's, or scaled to the training data (:mod:`gradcon_tf.loss_weights`).
LOSS_WEIGHTS = ("paper", "data")

TRAINING = ("train", "evaluate")
ALL = ("train", "evaluate", "reproduce")


def _option(default, check=None, expected=None, flag=None, commands=(), help=None,
            command_default=False, checked_elsewhere=False, **argparse_kw):
    """A recipe field: ``default``; ``check(value)`` or membership in ``choices`` must hold
    (else a ValueError saying ``expected``); the flag, help and argparse arguments of the
    ``commands`` that take it. ``command_default``: the option's default depends on the command
    or its data (its argparse default is then None: not given). ``checked_elsewhere``: the
    ``choices`` are the command line's; the code that uses the value checks it."""
    metadata = {"check": check, "expected": expected, "flag": flag, "commands": commands,
                "help": help, "command_default": command_default,
                "checked_elsewhere": checked_elsewhere, "argparse": argparse_kw}
    return dataclasses.field(default=default, metadata=metadata)


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_number(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one model trains. ``epochs``: training epochs; ``batch_size``; ``fpr``: the
    false-positive rate the threshold is calibrated at; ``method``: the autoencoder of Table 1;
    ``initialization``: how ``fit`` starts (:data:`INITIALIZATIONS`); ``restart_averages``:
    Eq. 6's averages at a guarded restart (:data:`RESTART_AVERAGES`); ``checkpoint_every``:
    model selection among epochs 1, 1 + k, ... and the last;
    ``loss_weights``: alpha and beta, ``paper`` or ``data``; ``image_score``,
    ``remove_illumination`` and ``backbone``: ``GradCon``'s; ``learning_rate``: Adam's."""

    epochs: int = _option(20, _positive_int, "a positive integer")
    batch_size: int = _option(
        DEFAULT_BATCH_SIZE, _positive_int, "a positive integer", "--batch-size", ALL,
        "training batch size", metavar="N")
    fpr: float = _option(
        0.05, lambda v: 0.0 < v < 1.0, "a number between 0 and 1", "--fpr", TRAINING,
        "false-positive rate of the threshold")
    method: str = _option(
        "gradcon", flag="--method", commands=("reproduce",), choices=METHODS,
        help="autoencoder of Table 1 (gradcon = CAE + Grad)",
        checked_elsewhere=True)  # experiment.METHODS, which a study may extend
    initialization: str = _option(
        "guarded", flag="--init", commands=ALL, choices=INITIALIZATIONS,
        help="guarded: PyTorch's draw as the release, trained again from it with "
        "the output bias from data when the decoder is dead after epoch 2; release: PyTorch's "
        "draw whatever happens; data: always the output bias from data (docs/initialisation.md)")
    restart_averages: str = _option(
        "kept", flag="--restart-averages", commands=ALL, choices=RESTART_AVERAGES,
        help="with --init guarded, Eq. 6's running averages when a dead start trains again: "
        "kept from the abandoned run (default; research/restart/) or cleared to zero")
    checkpoint_every: int = _option(
        1, _positive_int, "a positive integer", "--checkpoint-every", ("reproduce",),
        "model selection among epochs 1, 1+K, ... and the last, as the authors' release writes "
        "checkpoints (it uses 5)", metavar="K")
    loss_weights: str = _option(
        "paper", flag="--loss-weights", commands=ALL, choices=LOSS_WEIGHTS,
        help="alpha and beta: the paper's (0.03, 0.12), or scaled to the training images' "
        "variance (data); default: data for image folders and --protocol elpv, else paper "
        "(docs/own_images.md)", command_default=True)
    image_score: str = _option(
        "mean", flag="--image-score", commands=ALL, choices=IMAGE_SCORES,
        help="the image's score: the paper's means over the image (the default on pixels), or "
        "local: the top 1%% of the blurred score map, for small defects (docs/own_images.md; the "
        "default on a backbone's features)", command_default=True)
    remove_illumination: bool = _option(
        False, lambda v: isinstance(v, bool), "True or False", "--remove-illumination", ALL,
        "the network sees each image minus its Gaussian blur: exposure and light gradients "
        "out, local structure in (docs/own_images.md)", action="store_true")
    learning_rate: float = _option(
        DEFAULT_LEARNING_RATE, _positive_number, "a positive number", "--learning-rate", ALL,
        "Adam's learning rate (the paper's; docs/own_images.md on lower rates for longer runs)",
        metavar="LR")
    #: A backbone's name, or a function of the images' channels that builds the feature
    #: extractor; None: on pixels. ``gradcon train`` has its own options for it.
    backbone: object = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, meta = getattr(self, field.name), field.metadata
            choices = meta.get("argparse", {}).get("choices")
            if choices is not None and not meta["checked_elsewhere"] and value not in choices:
                raise ValueError(f"{field.name} must be one of {choices}, got {value!r}")
            if meta.get("check") is not None and not _holds(meta["check"], value):
                raise ValueError(f"{field.name} must be {meta['expected']}, got {value!r}")

    def replace(self, **changes):
        """This recipe with ``changes`` (checked); None values leave a field as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _holds(check, value):
    try:
        return bool(check(value))
    except TypeError:
        return False


def command_fields(command):
    """The recipe fields ``command`` takes as options, in declaration order."""
    return [f for f in dataclasses.fields(Recipe) if command in f.metadata.get("commands", ())]


def _dest(field):
    return field.metadata["flag"].lstrip("-").replace("-", "_")


def add_arguments(parser, command, argument_type):
    """The options of ``command`` from the recipe's fields. ``argument_type(field)``: the
    argparse type of a field that has a check (the command line's error format)."""
    for field in command_fields(command):
        meta = field.metadata
        kwargs = dict(meta["argparse"])
        if meta["check"] is not None and "action" not in kwargs:
            kwargs["type"] = argument_type(field)
        default = None if meta["command_default"] else field.default
        parser.add_argument(meta["flag"], dest=_dest(field), default=default, help=meta["help"],
                            **kwargs)


def given(args, command):
    """{field name: value} of the recipe options in ``command``'s parsed ``args``, given or
    defaulted; those left to the command (None) left out."""
    values = {f.name: getattr(args, _dest(f)) for f in command_fields(command)}
    return {name: value for name, value in values.items() if value is not None}


def from_args(args, command, **defaults):
    """The recipe of ``command``'s parsed ``args``: the options given, else ``defaults``
    (the command's own, e.g. ``loss_weights`` for image folders), else the fields'."""
    return Recipe().replace(**{**defaults, **given(args, command)})
