"""``gradcon``: a thin command line over the library.

  gradcon evaluate [--data digits] [--classes 0]      train per inlier class, print an AUROC table
  gradcon train --data SPEC --inlier-class C --out model.keras
  gradcon score --model model.keras --images FILE [--out scores.csv]
  gradcon reproduce --data SPEC --classes 0-9 --seeds 3 --epochs E --out DIR   the paper's table
            [--method gradcon|cae|vae|vae-grad]                the autoencoders of Table 1
  gradcon compare DIR [DIR ...] [--out table1.md]              Table 1 from reproduce folders
"""

import argparse
import os
import sys
import time

import numpy as np


def _parse_classes(text):
    classes = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        classes.extend(range(int(low), int(high or low) + 1))
    return classes


def _add_training_arguments(parser, default_epochs):
    parser.add_argument("--data", default="digits", help="dataset spec: digits, mnist:DIR, npz:FILE")
    parser.add_argument("--epochs", type=int, default=default_epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fpr", type=float, default=0.05, help="target false-positive rate")


def _load_images(path):
    """Images to score: .npy, or an IDX file (gzipped or not)."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    from gradcon_tf.data.idx import read_idx

    return read_idx(path)


def command_evaluate(args):
    from gradcon_tf import data, experiment, protocols

    splits = data.load(args.data)
    classes = _parse_classes(args.classes)
    rows = []
    started = time.perf_counter()
    for inlier in classes:
        print(f"inlier class {inlier}: training {args.epochs} epochs", flush=True)
        split = protocols.one_class_split(splits["train"], splits["test"], inlier, seed=args.seed)
        model = experiment.train_one_class(
            split, args.epochs, seed=args.seed, batch_size=args.batch_size, fpr=args.fpr
        )
        rows.append((inlier, experiment.evaluate_one_class(model, split)))
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
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0


def command_train(args):
    from gradcon_tf import data, experiment, protocols

    splits = data.load(args.data)
    split = protocols.one_class_split(splits["train"], splits["test"], args.inlier_class, args.seed)
    model = experiment.train_one_class(
        split, args.epochs, seed=args.seed, batch_size=args.batch_size, fpr=args.fpr
    )
    model.save(args.out)  # crash-safe: temporary name, then rename
    result = experiment.evaluate_one_class(model, split)
    print(
        f"saved {args.out}; threshold {model.threshold:.6g}; test AUROC {result['score']:.3f} "
        f"(recon {result['recon']:.3f}, grad {result['grad_loss']:.3f})"
    )
    return 0


def command_score(args):
    import gradcon_tf

    images = _load_images(args.images)  # a bad file fails before the model is loaded
    model = gradcon_tf.load_model(args.model)
    outputs = model.score(images, batch_size=args.batch_size)
    columns = ["score", "recon", "grad_loss"] + (["is_anomaly"] if "is_anomaly" in outputs else [])
    lines = [",".join(["index"] + columns)]
    for i in range(len(outputs["score"])):
        lines.append(",".join([str(i)] + [f"{float(outputs[c][i]):.8g}" for c in columns]))
    _write_text_output("\n".join(lines) + "\n", args.out, f"{len(outputs['score'])} scores")
    return 0


def _write_text_output(text, path, what):
    """Write ``text`` to ``path`` (crash-safe) and say so, or to stdout when no path is given."""
    if path:
        from gradcon_tf import files

        files.write_text(path, text)
        print(f"wrote {what} to {path}")
    else:
        sys.stdout.write(text)


def command_reproduce(args):
    import shlex

    from gradcon_tf.reproduce import reproduce

    command = shlex.join([
        "gradcon", "reproduce", "--data", args.data, "--classes", args.classes,
        "--seeds", str(args.seeds), "--epochs", str(args.epochs), "--out", args.out,
    ] + (["--batch-size", str(args.batch_size)] if args.batch_size != 64 else [])
      + (["--milestones", args.milestones] if args.milestones else [])
      + (["--method", args.method] if args.method != "gradcon" else [])
      + (["--release-init"] if args.release_init else [])
      + ([] if args.redraw_collapsed in (None, args.release_init)
         else ["--redraw-collapsed" if args.redraw_collapsed else "--no-redraw-collapsed"])
      + (["--checkpoint-every", str(args.checkpoint_every)] if args.checkpoint_every != 1 else []))
    reproduce(
        args.data, _parse_classes(args.classes), args.seeds, args.epochs, args.out,
        batch_size=args.batch_size, command=command, verbose=args.verbose,
        milestones=_parse_classes(args.milestones) if args.milestones else (),
        report_only=args.report_only, method=args.method, release_init=args.release_init,
        redraw_collapsed=args.redraw_collapsed, checkpoint_every=args.checkpoint_every,
    )
    return 0


def command_compare(args):
    from gradcon_tf.reproduce import compare_methods

    _write_text_output(compare_methods(args.results), args.out, "the table")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="gradcon", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    evaluate = commands.add_parser("evaluate", help="train on inlier classes, print AUROC table")
    _add_training_arguments(evaluate, default_epochs=60)
    evaluate.add_argument("--classes", default="0", help="inlier classes, e.g. 0 or 0-9 or 1,7")
    evaluate.set_defaults(handler=command_evaluate)

    train = commands.add_parser("train", help="train one inlier class and save the model")
    _add_training_arguments(train, default_epochs=20)
    train.add_argument("--inlier-class", type=int, required=True)
    train.add_argument("--out", required=True, help="where to write the .keras model")
    train.set_defaults(handler=command_train)

    score = commands.add_parser("score", help="score images with a saved model")
    score.add_argument("--model", required=True)
    score.add_argument("--images", required=True, help=".npy array or IDX file of images")
    score.add_argument("--batch-size", type=int, default=256)
    score.add_argument("--out", help="CSV file to write (default: stdout)")
    score.set_defaults(handler=command_score)

    reproduce = commands.add_parser(
        "reproduce", help="one model per (class, seed), resumable; JSON/Markdown/PNG report"
    )
    reproduce.add_argument("--data", required=True, help="dataset spec, e.g. mnist:DIR")
    reproduce.add_argument("--classes", default="0-9", help="inlier classes, e.g. 0-9 or 1,7")
    reproduce.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    reproduce.add_argument("--epochs", type=int, required=True)
    reproduce.add_argument("--batch-size", type=int, default=64)
    reproduce.add_argument("--out", required=True, help="results folder (finished runs are kept)")
    reproduce.add_argument("--verbose", type=int, default=1, help="0 quiet, 1 bar, 2 epoch lines")
    reproduce.add_argument(
        "--milestones", default="", help="shorter budgets to evaluate within each run, e.g. 20,50"
    )
    reproduce.add_argument(
        "--report-only", action="store_true", help="train nothing; report the finished runs"
    )
    reproduce.add_argument(
        "--method", default="gradcon",
        help="autoencoder of Table 1: gradcon (CAE + Grad, default), cae, vae, vae-grad",
    )
    reproduce.add_argument(
        "--release-init", action="store_true",
        help="keep the release's PyTorch initialisation of the output bias instead of setting it "
        "from the data (some runs then collapse to a blank output; README, Initialisation)",
    )
    reproduce.add_argument(
        "--redraw-collapsed", action=argparse.BooleanOptionalAction, default=None,
        help="start a run again from new initial weights when its first epoch leaves a blank "
        "reconstruction (default: on with --release-init, off otherwise)",
    )
    reproduce.add_argument(
        "--checkpoint-every", type=int, default=1, metavar="K",
        help="model selection among epochs 1, 1+K, ... and the last, as the authors' release "
        "writes checkpoints (it uses 5); default 1: every epoch",
    )
    reproduce.set_defaults(handler=command_reproduce)

    compare = commands.add_parser(
        "compare", help="Table 1 (AUROC of each score of each model) from reproduce folders"
    )
    compare.add_argument("results", nargs="+", help="result folders of gradcon reproduce")
    compare.add_argument("--out", help="Markdown file to write (default: stdout)")
    compare.set_defaults(handler=command_compare)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
