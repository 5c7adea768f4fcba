"""Crash-safe file output: everything is written under a temporary name, then renamed.

A process killed mid-write (SIGKILL, power loss) leaves at most a stray ``.tmp-*`` entry, never a
half-written file or folder under the final name: ``os.replace`` is atomic within a file system.
"""

import contextlib
import errno
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
        os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp's is 0700
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


@contextlib.contextmanager
def staged_folder(path):
    """Yield a new temporary folder next to ``path``; on success merge it into ``path``.

    The whole output is written first and moved in last, by renames: a new ``path`` appears
    whole, and an existing one gains the staged entries (an entry of the same name is replaced,
    a folder merged). On an exception the staged output is removed and ``path`` untouched.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(path)}-", dir=parent)
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
        if os.path.isdir(path):
            _merge(staging, path)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge(source, target):
    for name in os.listdir(source):
        staged, final = os.path.join(source, name), os.path.join(target, name)
        if os.path.isdir(staged) and os.path.isdir(final):
            _merge(staged, final)
        else:
            os.replace(staged, final)


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


def check_writable(path):
    """Raise an OSError naming the folder in the way unless ``path`` can be created or replaced:
    NotADirectoryError when the nearest existing entry above it is a file, PermissionError when
    it is a folder this process cannot write. Checked before any work, so that a run does not
    end failing to save."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "no permission to write in it", folder)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
