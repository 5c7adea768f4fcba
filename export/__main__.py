"""``python -m gradcon_tf.export MODEL.keras --out DIR``: the same as ``gradcon export``."""

import sys

from gradcon_tf.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
