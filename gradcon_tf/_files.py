"""Crash-safe file output: everything is written under a temporary name, then renamed.

A process killed mid-write (SIGKILL, power loss) leaves at most a stray ``.tmp-*`` entry, never a
half-written file or folder under the final name: ``os.replace`` is atomic within a file system.
"""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_output(path, directory=False):
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    The temporary name keeps ``path``'s extension (Keras checks ``.keras`` / ``.weights.h5``).
    With ``directory=True`` the temporary path is a new empty folder and an existing folder at
    ``path`` is replaced. On an exception the temporary output is removed and ``path`` untouched.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(path)
    if directory:
        temporary = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent)
    else:
        handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{name}", dir=parent)
        os.close(handle)
        os.chmod(temporary, 0o666 & ~_umask())
    try:
        yield temporary
        if directory and os.path.isdir(path):
            stale = tempfile.mkdtemp(prefix=f".old-{name}-", dir=parent)
            os.replace(path, os.path.join(stale, name))
            os.replace(temporary, path)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except BaseException:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
