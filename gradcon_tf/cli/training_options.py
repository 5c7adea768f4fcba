"""The training options ``train``, ``evaluate`` and ``reproduce`` share, their defaults, and the
choice between a labelled dataset and image folders."""

from gradcon_tf import recipe
from gradcon_tf.backbones import FEATURE_EPOCHS, NO_BACKBONE, recipe_defaults
from gradcon_tf.cli import common
from gradcon_tf.cli.common import UserError

DATA_HELP = (
    "dataset: digits (scikit-learn's 8x8 digits, bundled), mnist:DIR, fashion_mnist:DIR, "
    "idx:DIR (IDX files, gzipped or not), cifar10:PATH (python batches: tarball or folder), "
    "folder:DIR (one sub-folder per class), npz:FILE (x_train, y_train, x_test, y_test), "
    "tfds:NAME[:DATA_DIR] (prepared TFDS data; never downloads)"
)
#: The labelled dataset of train and evaluate when neither --data nor --normal is given.
DEFAULT_DATA = "digits"


def add_training_arguments(parser, command, default_epochs, backbone=False):
    """--data, --epochs, --seed, the recipe's options of ``command`` and --quiet."""
    parser.add_argument("--data", help=f"{DATA_HELP} (default: {DEFAULT_DATA})")
    on_features = (f"; {FEATURE_EPOCHS} on a backbone's features, as --normal trains by default"
                   if backbone else "")
    parser.add_argument("--epochs", type=common.positive_int,
                        help=f"training epochs (default: {default_epochs}{on_features})")
    parser.add_argument("--seed", type=common.seed, default=0, help="split and initial weights")
    recipe.add_arguments(parser, command, argument_type)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.set_defaults(default_epochs=default_epochs)


def argument_type(field):
    """The argparse type of a recipe field with a check: the command line's error format."""
    meta = field.metadata
    return common.number(type(field.default), meta["check"], meta["expected"])


def training_only(args, command):
    """The options given that only training reads (not --batch-size, which scoring reads too)."""
    given = [f"--{name}" for name in ("epochs",) if getattr(args, name) is not None]
    given += ["--seed"] if args.seed != 0 else []
    values = recipe.given(args, command)  # an option left to the command is None: not given
    unset = {f.name: None if f.metadata["command_default"] else f.default
             for f in recipe.command_fields(command)}
    given += [f.metadata["flag"] for f in recipe.command_fields(command)
              if f.name != "batch_size" and values.get(f.name) != unset[f.name]]
    return given


def fill_recipe_defaults(args):
    """--epochs and --image-score not given: the command's, or the recipe on features."""
    on_features = getattr(args, "backbone", None) not in (None, NO_BACKBONE)
    defaults = recipe_defaults(on_features, args.default_epochs)
    if args.epochs is None:
        args.epochs = defaults["epochs"]
    if args.image_score is None:
        args.image_score = defaults["image_score"]


def recipe_of(args, command, **defaults):
    """The recipe of ``command``'s options (their defaults resolved by
    :func:`fill_recipe_defaults`): loss weights by default ``data`` for image folders."""
    folders = "data" if getattr(args, "normal", None) else "paper"
    return recipe.from_args(args, command, epochs=args.epochs, image_score=args.image_score,
                            loss_weights=folders, **defaults)


def choose_source(args, folders, labelled, folder_options):
    """A labelled dataset or image folders (``folders``, the options that choose them, given or
    not), not both: True for folders. ``labelled``, ``folder_options``: {option: value}."""
    given = [option for option, value in labelled.items() if value is not None]
    if not folders:
        for option, value in folder_options.items():
            if value is not None:
                raise UserError(f"{option} applies to image folders (--normal DIR ...)")
        args.data = args.data or DEFAULT_DATA
        return False
    if given:
        raise UserError(f"give either image folders (--normal DIR ...) or {' '.join(given)}, "
                        "not both")
    return True


def check_data(args):
    """--data names data that can be read (before TensorFlow)."""
    if args.data:
        from gradcon_tf import data

        data.check_spec(args.data)
