"""``gradcon reproduce``: one model per (class, seed) of a paper protocol, resumable, with a JSON,
Markdown and PNG report (:func:`gradcon_tf.reproduction.runner.reproduce`)."""

import argparse

from gradcon_tf import recipe
from gradcon_tf.recipe import DEFAULT_LEARNING_RATE
from gradcon_tf.cli import common, training_options

COMMAND = "reproduce"
HELP = "one model per (class, seed), resumable; JSON, Markdown and PNG report"


def add_arguments(parser):
    from gradcon_tf.reproduction.protocols import names as protocol_names

    number = common.positive_int
    parser.add_argument("--data", required=True, help=training_options.DATA_HELP)
    parser.add_argument("--classes", type=common.classes, default="0-9", help="e.g. 0-9 or 1,7")
    parser.add_argument("--seeds", type=number, default=3, help="number of seeds (0..N-1)")
    parser.add_argument("--epochs", type=number, required=True)
    parser.add_argument("--out", required=True, help="results folder (finished runs are kept)")
    parser.add_argument("--progress", type=int, choices=(0, 1, 2), default=1,
                        help="0 quiet, 1 one line or bar per run, 2 Keras' epoch lines")
    parser.add_argument("--milestones", type=common.classes, default=None,
                        help="shorter budgets to evaluate within each run, e.g. 20,50")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; report the finished runs")
    parser.add_argument("--release-init", dest="init", action="store_const", const="release",
                        help="the same as --init release")
    parser.add_argument(
        "--protocol", choices=protocol_names(), default="one-class",
        help="one-class (MNIST, CIFAR-10), gpnd (Fashion-MNIST, 10-50%% outliers; --seeds are "
        "folds), conditions (CURE-TSR challenge types and levels), localisation (pixel AUROC "
        "of the anomaly maps on inlier images with a pasted patch of another class) or elpv "
        "(--data elpv: defective solar cells, pip install elpv-dataset)",
    )
    recipe.add_arguments(parser, COMMAND, training_options.argument_type)
    parser.add_argument("--cells", type=_cells, default=None,
                        help="elpv: module types, e.g. mono,poly (default: mono,poly,both)")
    parser.add_argument(
        "--image-size", type=number, default=None, metavar="S",
        help="elpv: the side cells are resized to, the model's working size (default: 64)",
    )


def _cells(text):
    from gradcon_tf.data.elpv import MODULE_TYPES as allowed

    cells = [word for word in text.split(",") if word]
    if not cells or any(word not in allowed for word in cells):
        raise argparse.ArgumentTypeError(
            f"expected module types among {allowed}, e.g. mono,poly; got {text!r}")
    return cells


def check(args):
    """Before TensorFlow: the data (ELPV's labels file for --protocol elpv) and --out."""
    from gradcon_tf import _files as files

    if args.protocol == "elpv":
        from gradcon_tf.data import elpv

        elpv.labels_csv_of(args.data)
    else:
        training_options.check_data(args)
    common.check_output(args, lambda args: files.check_writable(args.out))


def run(args):
    from gradcon_tf.reproduction.runner import reproduce

    given = {"milestones": args.milestones, "cells": args.cells, "image_size": args.image_size}
    options = {name: value for name, value in given.items() if value}
    reproduce(
        args.data, args.classes, args.seeds, args.epochs, args.out, protocol=args.protocol,
        command=_command(args), report_only=args.report_only, verbose=args.progress,
        **recipe.given(args, COMMAND), **options,
    )
    return 0


def _command(args):
    """The ``gradcon reproduce`` command the report gives: the options that differ from the
    defaults, in the order earlier reports gave them (recipe options declared since then after
    them); ``--report-only`` and ``--progress`` left out."""
    from gradcon_tf.reproduction import protocols

    release = args.init == "release"
    flags = {
        "--batch-size": args.batch_size not in (None, 64) and args.batch_size,
        "--milestones": args.milestones and common.ranges(args.milestones),
        "--method": args.method not in (None, "gradcon") and args.method,
        "--init": args.init not in (None, "release", "guarded") and args.init,
        "--loss-weights": args.loss_weights,
        "--cells": args.cells and ",".join(args.cells),
        "--image-size": args.image_size,
        "--image-score": args.image_score not in (None, "mean") and args.image_score,
        "--learning-rate": args.learning_rate != DEFAULT_LEARNING_RATE and f"{args.learning_rate:g}",
    }
    uses_classes = protocols.get(args.protocol).uses_classes
    classes = f" --classes {common.ranges(args.classes)}" if uses_classes else ""
    words = [f"gradcon reproduce --data {args.data}{classes} "
             f"--seeds {args.seeds} --epochs {args.epochs} --out {args.out}"]
    words += [f"{flag} {value}" for flag, value in flags.items() if value]
    words += ["--release-init"] if release else []
    if args.checkpoint_every not in (None, 1):
        words.append(f"--checkpoint-every {args.checkpoint_every}")
    if args.remove_illumination:
        words.append("--remove-illumination")
    if args.protocol != "one-class":
        words.append(f"--protocol {args.protocol}")
    return " ".join(words + _later_options(args))


#: The recipe options the report's command line gave before options were declared in the recipe.
_WRITTEN_OUT = ("batch_size", "method", "initialization", "checkpoint_every",
                "loss_weights", "image_score", "remove_illumination", "learning_rate")


def _later_options(args):
    """The other recipe options given with values other than their defaults."""
    words = []
    for field in recipe.command_fields(COMMAND):
        value = recipe.given(args, COMMAND).get(field.name)
        if field.name in _WRITTEN_OUT or value is None or value == field.default:
            continue
        flag = field.metadata["flag"]
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        else:
            words.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return words
