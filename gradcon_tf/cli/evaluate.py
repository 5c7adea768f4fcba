"""``gradcon evaluate``: train per inlier class of a labelled dataset and print an AUROC table;
or, with ``--model``, measure a trained model on folders of normal and abnormal images."""

import time

from gradcon_tf.cli import common, training_options
from gradcon_tf.cli.common import UserError

COMMAND = "evaluate"
HELP = ("train on inlier classes, print an AUROC table; or, with --model, measure a trained "
        "model on folders of normal and abnormal images")
#: The epochs of the AUROC table.
DEFAULT_EPOCHS = 60


def add_arguments(parser):
    training_options.add_training_arguments(parser, COMMAND, DEFAULT_EPOCHS)
    parser.add_argument("--classes", type=common.classes, help="e.g. 0, 0-9, 1,7 (default: 0)")
    parser.add_argument("--model", help="a .keras file written by gradcon train: evaluate it "
                        "on image folders (no training)")
    parser.add_argument("--normal", metavar="DIR", help="with --model: normal images")
    parser.add_argument(
        "--abnormal", metavar="DIR",
        help="with --model: abnormal images, directly or one sub-folder per defect type",
    )
    parser.add_argument(
        "--masks", metavar="DIR",
        help="with --model: defect masks (pixels > 0) named as the abnormal images (or "
        "<stem>_mask), in the same sub-folders: pixel AUROC and AUPRO",
    )
    parser.add_argument(
        "--report", metavar="DIR",
        help="with --model: write DIR/report.md with ROC curves, score histograms and the "
        "worst-scored images' overlays (needs matplotlib)",
    )
    parser.add_argument(
        "--worst", type=common.positive_int, metavar="N",
        help="with --report: show the N highest-scoring normal and N lowest-scoring abnormal "
        "images (default: 4)",
    )


def check(args):
    """Before TensorFlow: a labelled dataset and its classes, or the model and the folders
    (scanned, headers only) with no training option."""
    folders = args.model or args.normal or args.abnormal
    folder_options = {"--masks": args.masks, "--report": args.report, "--worst": args.worst}
    labelled = {"--data": args.data, "--classes": args.classes}
    if training_options.choose_source(args, folders, labelled, folder_options):
        _check_folders(args)
    else:
        args.classes = args.classes or [0]
    training_options.check_data(args)
    training_options.fill_recipe_defaults(args)


def _check_folders(args):
    from gradcon_tf import model_files
    from gradcon_tf.data import anomaly_folders

    for option in ("model", "normal", "abnormal"):
        if getattr(args, option) is None:
            raise UserError(f"evaluating on image folders needs --model, --normal and --abnormal "
                            f"(--{option} is missing)")
    given = training_options.training_only(args, COMMAND)
    if given:
        raise UserError(f"{' '.join(given)}: training options; evaluate --model measures the "
                        "trained model as it is (its threshold included)")
    if args.worst is not None and not args.report:
        raise UserError("--worst applies with --report DIR")
    model_files.check_model_file(args.model)
    anomaly_folders.scan_inspection_folders(args.normal, args.abnormal, args.masks)
    if args.report:
        from gradcon_tf import inspection_report

        try:
            inspection_report.check_report_folder(args.report)
        except ImportError as error:
            raise UserError(f"--report: {error}") from None


def run(args):
    if args.model:
        return _evaluate_folders(args)
    from gradcon_tf import data, experiment
    from gradcon_tf.splits import one_class_split

    splits = data.load(args.data)
    common.check_classes(args.classes, splits["train"].labels, "--classes")
    recipe = training_options.recipe_of(args, COMMAND)
    rows = []
    started = time.perf_counter()
    for inlier in args.classes:
        print(f"inlier class {inlier}: training {args.epochs} epochs", flush=True)
        split = one_class_split(splits["train"], splits["test"], inlier, seed=args.seed)
        model = experiment.train_one_class(split, seed=args.seed, verbose=0 if args.quiet else 1,
                                           recipe=recipe)
        rows.append((inlier, experiment.evaluate_one_class(model, split)))
    _print_table(args, rows, len(split.validation), recipe.fpr)
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0


def _print_table(args, rows, held_out, fpr):
    import numpy as np

    print(f"\nAUROC on {args.data} (one-class protocol, {args.epochs} epochs, seed {args.seed})")
    print(f"{'class':>5}  {'GradCon':>7}  {'recon':>7}  {'grad':>7}  {'test FPR':>8}")
    for inlier, result in rows:
        print(
            f"{inlier:>5}  {result['score']:7.3f}  {result['recon']:7.3f}  "
            f"{result['grad_loss']:7.3f}  {result['test_false_positive_rate']:8.3f}"
        )
    if len(rows) > 1:
        means = [np.mean([r[k] for _, r in rows]) for k in ("score", "recon", "grad_loss")]
        print(f"{'mean':>5}  {means[0]:7.3f}  {means[1]:7.3f}  {means[2]:7.3f}")
    print(
        f"test FPR: the share of the class's test images scoring above the threshold set on its "
        f"{held_out} held-out training images at --fpr {fpr:g}; with n such "
        f"images it varies around {fpr:g} by about sqrt(fpr (1 - fpr) / n), more when the "
        f"test images differ from the training ones."
    )


def _evaluate_folders(args):
    """evaluate --model: image (and pixel) metrics of a trained model on image folders."""
    import gradcon_tf
    from gradcon_tf import inspection

    started = time.perf_counter()
    model = gradcon_tf.load_model(args.model)
    result = inspection.evaluate_folders(
        model, args.normal, args.abnormal, args.masks, batch_size=args.batch_size,
        worst=(args.worst or inspection.WORST_SHOWN) if args.report else 0,
    )
    print(result.summary(), end="")
    if args.report:
        from gradcon_tf.inspection_report import write_inspection_report

        print(f"wrote {write_inspection_report(result, args.report)}")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0
