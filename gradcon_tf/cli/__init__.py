"""``gradcon``: the command line over the library.

  gradcon evaluate --data digits --classes 0-9       train per inlier class, print an AUROC table
  gradcon train --data SPEC --inlier-class C --out model.keras
  gradcon train --normal DIR --out model.keras        train on a folder of normal images
  gradcon evaluate --model M --normal DIR --abnormal DIR [--masks DIR] [--report DIR]
                                                      image and pixel metrics on image folders
  gradcon score --model model.keras --images FILE|FOLDER|GLOB [--out scores.csv]
  gradcon export model.keras --out DIR                SavedModel (TF Serving) + LiteRT models
  gradcon query IMAGES.npy --url http://host:8501     score with a model served by TF Serving
  gradcon sample-images --data SPEC --out DIR         test-split images as PNG files
  gradcon reproduce --data SPEC --epochs E --out DIR  the paper's one-class table, resumable
  gradcon compare DIR [DIR ...]                       Table 1 from reproduce folders

A user error (a missing or unreadable file, a bad value) prints one ``gradcon: error:`` line and
exits with status 2; ``--debug`` shows the traceback instead. TensorFlow is imported only by the
commands that need it, and its log lines are hidden unless ``--verbose``.
"""

import argparse
import contextlib
import logging
import sys
import warnings

from gradcon_tf.cli import (
    common, compare, evaluate, export, query, reproduce, sample_images, score, train,
)

#: One module per command, in the order of the help: each has COMMAND, HELP,
#: add_arguments(parser), check(args) (before TensorFlow loads) and run(args) (the exit status).
COMMANDS = (evaluate, train, score, export, query, sample_images, reproduce, compare)


def build_parser():
    from gradcon_tf import __version__

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    shared.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    parser = common.Parser(prog="gradcon", description=__doc__, formatter_class=common.Formatter)
    parser.add_argument("--version", action="version", version=f"gradcon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=common.Parser)
    for module in COMMANDS:
        sub = commands.add_parser(module.COMMAND, help=module.HELP, description=module.HELP,
                                  formatter_class=common.Formatter, parents=[shared])
        module.add_arguments(sub)
        sub.set_defaults(command_module=module)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """The library's own warnings (calibration) as one ``gradcon: warning:`` line."""
    if category.__module__.startswith("gradcon_tf"):
        common.warn(message)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


@contextlib.contextmanager
def _library_log_to_stderr():
    """While a command runs, the library's log lines (a restarted start) go to stderr alone."""
    logger = logging.getLogger("gradcon_tf")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))  # "GradCon: ..."
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def main(argv=None):
    args = build_parser().parse_args(argv)
    command = args.command_module
    try:
        command.check(args)
        if getattr(command, "NEEDS_TENSORFLOW", True):
            common.import_tensorflow(args.verbose)
        with warnings.catch_warnings(), _library_log_to_stderr():
            warnings.showwarning = _show_warning
            return command.run(args)
    except Exception as error:
        if args.debug or not isinstance(error, common.USER_ERRORS):
            raise
        print(f"gradcon: error: {common.error_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # output files are written under temporary names: none half-done
        print("gradcon: interrupted", file=sys.stderr)
        return common.INTERRUPTED
