"""The training options ``train``, ``evaluate`` and ``reproduce`` share, their defaults, and the
choice between a labelled dataset and image folders."""

from gradcon_tf.backbones import FEATURE_EPOCHS, FEATURE_IMAGE_SCORE, NO_BACKBONE
from gradcon_tf.cli import common
from gradcon_tf.cli.common import UserError

DATA_HELP = (
    "dataset: digits (scikit-learn's 8x8 digits, bundled), mnist:DIR, fashion_mnist:DIR, "
    "idx:DIR (IDX files, gzipped or not), cifar10:PATH (python batches: tarball or folder), "
    "folder:DIR (one sub-folder per class), npz:FILE (x_train, y_train, x_test, y_test), "
    "tfds:NAME[:DATA_DIR] (prepared TFDS data; never downloads)"
)
INIT_HELP = (
    "guarded: PyTorch's draw as the release, trained again from it with the output bias from "
    "data when the decoder is dead after epoch 2; release: PyTorch's draw whatever happens; "
    "data: always the output bias from data (docs/initialisation.md)"
)
#: The labelled dataset of train and evaluate when neither --data nor --normal is given.
DEFAULT_DATA = "digits"
#: The options only training reads, with their defaults: "given" is "not the default"
#: (evaluate --model trains nothing and refuses them).
TRAINING_DEFAULTS = {
    "epochs": None, "seed": 0, "fpr": 0.05, "init": "guarded", "loss_weights": None,
    "image_score": None, "remove_illumination": False, "learning_rate": None,
}


def add_training_arguments(parser, default_epochs, backbone=False):
    parser.add_argument("--data", help=f"{DATA_HELP} (default: {DEFAULT_DATA})")
    on_features = (f"; {FEATURE_EPOCHS} on a backbone's features, as --normal trains by default"
                   if backbone else "")
    parser.add_argument("--epochs", type=common.positive_int,
                        help=f"training epochs (default: {default_epochs}{on_features})")
    parser.add_argument("--batch-size", type=common.positive_int, default=64,
                        help="training batch size")
    parser.add_argument("--seed", type=common.seed, default=0, help="split and initial weights")
    parser.add_argument("--fpr", type=common.fraction, default=0.05,
                        help="false-positive rate of the threshold")
    parser.add_argument("--init", choices=("guarded", "release", "data"), default="guarded",
                        help=INIT_HELP)
    parser.add_argument(
        "--loss-weights", choices=("paper", "data"),
        help="alpha and beta: the paper's (0.03, 0.12; the default for --data), or scaled to the "
        "training images' pixel variance (data; the default for --normal): docs/own_images.md",
    )
    add_learning_rate(parser)
    add_small_defect_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.set_defaults(default_epochs=default_epochs)


def add_learning_rate(parser):
    parser.add_argument(
        "--learning-rate", type=common.positive_float, metavar="LR",
        help="Adam's learning rate (default: the paper's 1e-3; docs/own_images.md on lower "
        "rates for longer runs)",
    )


def add_small_defect_options(parser):
    """--image-score and --remove-illumination: GradCon's options for small defects."""
    parser.add_argument(
        "--image-score", choices=("mean", "local"),
        help="the image's score: the paper's means over the image (the default on pixels), or "
        "local: the top 1%% of the blurred score map, for small defects (docs/own_images.md; the "
        "default on a backbone's features)",
    )
    parser.add_argument(
        "--remove-illumination", action="store_true",
        help="the network sees each image minus its Gaussian blur: exposure and light gradients "
        "out, local structure in (docs/own_images.md)",
    )


def fill_recipe_defaults(args):
    """--epochs and --image-score not given: the command's, or the recipe on features."""
    on_features = getattr(args, "backbone", None) not in (None, NO_BACKBONE)
    if args.epochs is None:
        args.epochs = FEATURE_EPOCHS if on_features else args.default_epochs
    if args.image_score is None:
        args.image_score = FEATURE_IMAGE_SCORE if on_features else "mean"


def loss_weights(args):
    """--loss-weights, else "data" for a folder of normal images and "paper" for a dataset."""
    return args.loss_weights or ("data" if getattr(args, "normal", None) else "paper")


def training_options(args):
    """``experiment.train_one_class``'s arguments from the options (not the split or callbacks)."""
    return dict(
        seed=args.seed, batch_size=args.batch_size, fpr=args.fpr, initialization=args.init,
        verbose=0 if args.quiet else 1, weights=loss_weights(args), image_score=args.image_score,
        remove_illumination=args.remove_illumination, learning_rate=args.learning_rate,
    )


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
