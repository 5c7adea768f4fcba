"""``gradcon compare``: the paper's Table 1 from ``gradcon reproduce`` folders."""

from gradcon_tf.cli import common
from gradcon_tf.cli.common import UserError

COMMAND = "compare"
HELP = "Table 1 from reproduce folders"
#: It reads JSON files only.
NEEDS_TENSORFLOW = False


def add_arguments(parser):
    parser.add_argument("results", nargs="+", help="result folders of gradcon reproduce")
    parser.add_argument("--out", help="Markdown file to write (default: stdout)")


def check(args):
    import os

    from gradcon_tf import _files as files

    for folder in args.results:
        if not os.path.isdir(folder):
            raise UserError(f"{folder}: no such folder (expected a gradcon reproduce --out folder)")
    common.check_output(args, lambda args: files.check_writable(args.out))


def run(args):
    from gradcon_tf.reproduction.report import compare_methods

    common.write_text_output(compare_methods(args.results), args.out, "the table")
    return 0
