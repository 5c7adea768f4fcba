"""``gradcon reproduce``: one model per (class, seed) of a paper protocol, resumable, with a JSON,
Markdown and PNG report (:func:`gradcon_tf.reproduction.runner.reproduce`)."""

import argparse

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
    parser.add_argument("--batch-size", type=number, default=64, help="training batch size")
    parser.add_argument("--out", required=True, help="results folder (finished runs are kept)")
    parser.add_argument("--progress", type=int, choices=(0, 1, 2), default=1,
                        help="0 quiet, 1 one line or bar per run, 2 Keras' epoch lines")
    parser.add_argument("--milestones", type=common.classes, default=None,
                        help="shorter budgets to evaluate within each run, e.g. 20,50")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; report the finished runs")
    parser.add_argument("--method", default="gradcon", choices=("gradcon", "cae", "vae", "vae-grad"),
                        help="autoencoder of Table 1 (gradcon = CAE + Grad)")
    parser.add_argument("--init", choices=("guarded", "release", "data"), default="guarded",
                        help=training_options.INIT_HELP)
    parser.add_argument("--release-init", dest="init", action="store_const", const="release",
                        help="the same as --init release")
    parser.add_argument(
        "--redraw-collapsed", action=argparse.BooleanOptionalAction, default=None,
        help="with --init release or data: start a run again from new initial weights when its "
        "first epoch leaves a blank reconstruction (default: on with release)",
    )
    parser.add_argument(
        "--checkpoint-every", type=number, default=1, metavar="K",
        help="model selection among epochs 1, 1+K, ... and the last, as the authors' release "
        "writes checkpoints (it uses 5)",
    )
    parser.add_argument(
        "--loss-weights", choices=("paper", "data"),
        help="alpha and beta: the paper's, or scaled to each run's training images' pixel "
        "variance (default: data for --protocol elpv, else paper)",
    )
    parser.add_argument(
        "--protocol", choices=protocol_names(), default="one-class",
        help="one-class (MNIST, CIFAR-10), gpnd (Fashion-MNIST, 10-50%% outliers; --seeds are "
        "folds), conditions (CURE-TSR challenge types and levels), localisation (pixel AUROC "
        "of the anomaly maps on inlier images with a pasted patch of another class) or elpv "
        "(--data elpv: defective solar cells, pip install elpv-dataset)",
    )
    training_options.add_learning_rate(parser)
    training_options.add_small_defect_options(parser)
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
    args.image_score = args.image_score or "mean"
    common.check_output(args, lambda args: files.check_writable(args.out))


def run(args):
    from gradcon_tf.reproduction.runner import reproduce

    given = {"milestones": args.milestones, "cells": args.cells, "image_size": args.image_size}
    options = {name: value for name, value in given.items() if value}
    reproduce(
        args.data, args.classes, args.seeds, args.epochs, args.out, protocol=args.protocol,
        command=_command(args), report_only=args.report_only, verbose=args.progress,
        batch_size=args.batch_size, method=args.method, initialization=args.init,
        redraw_collapsed=args.redraw_collapsed, checkpoint_every=args.checkpoint_every,
        loss_weights=args.loss_weights, image_score=args.image_score,
        remove_illumination=args.remove_illumination, learning_rate=args.learning_rate,
        **options,
    )
    return 0


def _command(args):
    """The ``gradcon reproduce`` command the report gives: the options that differ from the
    defaults, in one order (``--report-only`` and ``--progress`` left out)."""
    from gradcon_tf.reproduction import protocols

    release = args.init == "release"
    flags = {
        "--batch-size": args.batch_size != 64 and args.batch_size,
        "--milestones": args.milestones and common.ranges(args.milestones),
        "--method": args.method != "gradcon" and args.method,
        "--init": not release and args.init != "guarded" and args.init,
        "--loss-weights": args.loss_weights,
        "--cells": args.cells and ",".join(args.cells),
        "--image-size": args.image_size,
        "--image-score": args.image_score != "mean" and args.image_score,
        "--learning-rate": args.learning_rate is not None and f"{args.learning_rate:g}",
    }
    uses_classes = protocols.get(args.protocol).uses_classes
    classes = f" --classes {common.ranges(args.classes)}" if uses_classes else ""
    words = [f"gradcon reproduce --data {args.data}{classes} "
             f"--seeds {args.seeds} --epochs {args.epochs} --out {args.out}"]
    words += [f"{flag} {value}" for flag, value in flags.items() if value]
    words += ["--release-init"] if release else []
    words += ["--no-redraw-collapsed"] if release and args.redraw_collapsed is False else []
    words += ["--redraw-collapsed"] if not release and args.redraw_collapsed else []
    if args.checkpoint_every != 1:
        words.append(f"--checkpoint-every {args.checkpoint_every}")
    if args.remove_illumination:
        words.append("--remove-illumination")
    if args.protocol != "one-class":
        words.append(f"--protocol {args.protocol}")
    return " ".join(words)
