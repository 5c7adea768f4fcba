"""Silencing the log lines native libraries (TensorFlow, LiteRT) write to file descriptor 2."""

import contextlib
import os
import sys


@contextlib.contextmanager
def stderr_silenced():
    """File descriptor 2 to /dev/null: C++ log lines bypass Python's ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
