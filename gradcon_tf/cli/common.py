"""What every ``gradcon`` command shares: the one-line errors, the argparse types, the parser's
error and help formats, warnings and text outputs, and importing TensorFlow quietly."""

import argparse
import importlib
import math
import os
import sys


class UserError(Exception):
    """A mistake in the command's input, reported as one line."""


def error_message(error):
    """One line for a user error: the file and what went wrong."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return " ".join(str(error).split()) or type(error).__name__


#: What a user's input can cause (FloatingPointError: callbacks.NonFiniteLossError); anything
#: else is a bug and shows its traceback.
USER_ERRORS = (UserError, OSError, ValueError, FloatingPointError)
#: The exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def import_tensorflow(verbose):
    """Import TensorFlow (and Keras) once, silently unless ``verbose``."""
    if "tensorflow" in sys.modules:
        return
    if verbose:
        import tensorflow  # noqa: F401
        return
    from gradcon_tf.portable.native_stderr import stderr_silenced

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():
        importlib.import_module("keras")  # its import logs too
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")


def warn(message):
    print(f"gradcon: warning: {message}", file=sys.stderr, flush=True)


def write_text_output(text, path, what):
    """Write ``text`` to ``path`` (crash-safe) and say so, or to stdout when no path is given."""
    if path:
        from gradcon_tf import _files as files

        files.write_text(path, text)
        print(f"wrote {what} to {path}")
    else:
        sys.stdout.write(text)


def check_output(args, check):
    """``check(args)`` that --out can be written (before any work), as one --out error."""
    if not getattr(args, "out", None):
        return
    try:
        check(args)
    except (ValueError, OSError) as error:
        reason = (f"cannot be written, {error.filename}: {error.strerror}"
                  if isinstance(error, OSError) and error.filename else str(error))
        raise UserError(f"--out {args.out}: {reason}") from None


def make_folder(path, option):
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{option} {path}: exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise UserError(f"{option} {path}: cannot create the folder ({error.strerror})") from None


# ---------------------------------------------------------------------- argparse types

def number(kind, allowed, expected):
    """An argparse type: ``kind(text)`` when ``allowed`` holds for it, else an error that says
    what is ``expected``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not allowed(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = number(int, lambda value: value >= 1, "a positive integer")
seed = number(int, lambda value: value >= 0, "an integer >= 0")
fraction = number(float, lambda value: 0.0 < value < 1.0, "a number between 0 and 1")
positive_float = number(float, lambda value: math.isfinite(value) and value > 0.0,
                        "a positive number")


def integers(text, what, check):
    """``text`` as comma-separated integers, each checked by ``check`` (an argparse type)."""
    try:
        values = tuple(int(d) for d in text.split(","))
    except ValueError:
        values = ()
    if not check(values):
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}")
    return values


def input_shape(text):
    return integers(text, "H,W,C with C 1 or 3, e.g. 32,32,3",
                    lambda s: len(s) == 3 and min(s) >= 1 and s[-1] in (1, 3))


def image_size(text):
    size = integers(text, "S or H,W, e.g. 128 or 96,128", lambda s: len(s) in (1, 2) and min(s) >= 1)
    return size * 2 if len(size) == 1 else size


def classes(text):
    """"0-2,5" -> [0, 1, 2, 5]."""
    try:
        numbers = []
        for part in text.split(","):
            low, _, high = part.partition("-")
            low, high = int(low), int(high or low)
            if high < low:
                raise argparse.ArgumentTypeError(f"range {part} is empty (write {high}-{low})")
            numbers.extend(range(low, high + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0, 0-9 or 1,7; got {text!r}")
    return numbers


def ranges(numbers):
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8": the inverse of :func:`classes`."""
    parts, numbers = [], list(numbers)
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            low, high = numbers[start], numbers[i - 1]
            parts.append(str(low) if low == high else f"{low}-{high}")
            start = i
    return ",".join(parts)


def check_classes(chosen, labels, option):
    """``chosen`` classes all among ``labels``' (a dataset's), before any run; else a UserError."""
    present = sorted(set(int(c) for c in labels))
    missing = [c for c in chosen if c not in present]
    if missing:
        raise UserError(f"{option}: class{'es' if len(missing) > 1 else ''} "
                        f"{ranges(missing)} not in the data (it has {ranges(present)})")


# ---------------------------------------------------------------------- the parser

class Parser(argparse.ArgumentParser):
    """argparse with the one error format of the command (``gradcon: error: ...``, status 2)."""

    def error(self, message):
        """One line; the usage block only for a missing or unknown command (the top level)."""
        if self._subparsers is not None and self.prog == "gradcon":
            self.print_usage(sys.stderr)
        self.exit(2, f"gradcon: error: {message}\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help with each option's default (where it has one)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if action.option_strings and default not in (None, "", argparse.SUPPRESS) and default is not False:
            text += " (default: %(default)s)"
        return text
