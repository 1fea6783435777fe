"""Atomic file writes: write beside the target, fsync, then rename over it.

A reader (or a re-run after ``kill -9``) sees either the old complete file or
the new complete file, never a half-written one. The file gets the permissions
a plain ``open()`` would give it (an existing target's mode, else 0o666 less the
umask), not the owner-only mode of the temporary file.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    ``suffix`` defaults to the target's extension (Keras and tifffile look at it).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".partial{suffix}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _target_mode(path))
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """``open()`` that only replaces ``path`` once the ``with`` block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text(path, text):
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _target_mode(path):
    """The mode ``path`` keeps if it exists, else what ``open(path, "w")`` would create."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory):
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
