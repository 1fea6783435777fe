"""Atomic file writes: write beside the target, fsync, then rename over it.

A reader (or a re-run after ``kill -9``) sees either the old complete file or
the new complete file, never a half-written one. The file gets the permissions
a plain ``open()`` would give it (an existing target's mode, else 0o666 less the
umask), not the owner-only mode of the temporary file.

``exclusive=True`` creates the file only if nothing exists at ``path`` at the
moment of the commit (``os.link``, which never replaces), so two processes
writing the same output cannot silently replace each other's file.

Temporary files are named ``.<name>.<host>-<pid>.<random>.partial<ext>``;
:func:`remove_stale_partials` deletes those whose process on this host is gone
(left by ``kill -9`` or a power cut).
"""

import contextlib
import errno
import os
import re
import socket
import tempfile

from temzoo.errors import BadInputError


class OutputExistsError(BadInputError, FileExistsError):
    """An output that must be created new already exists."""


def _host():
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


@contextlib.contextmanager
def atomic_path(path, suffix=None, *, exclusive=False):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    ``suffix`` defaults to the target's extension (Keras and tifffile look at it).
    With ``exclusive=True`` an existing ``path`` (even one created by another
    process while this one was writing) is never replaced: :class:`OutputExistsError`.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    if exclusive:
        refuse_existing(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{_host()}-{os.getpid()}.",
                               suffix=f".partial{suffix}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _target_mode(path))
        if exclusive:
            _link_new(tmp, path)
            os.remove(tmp)
        else:
            os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", *, exclusive=False, **kwargs):
    """``open()`` that only replaces ``path`` once the ``with`` block succeeds."""
    with atomic_path(path, exclusive=exclusive) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text(path, text, *, exclusive=False):
    with atomic_open(path, "w", encoding="utf-8", exclusive=exclusive) as f:
        f.write(text)


def refuse_existing(path, overwrite=False):
    """Raise :class:`OutputExistsError` if ``path`` exists and ``overwrite`` is false."""
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path}: the output file exists; pass --overwrite (overwrite=True) to replace it.")


def _link_new(tmp, path):
    """Give the finished ``tmp`` the name ``path`` unless that name exists (atomic test-and-create)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(
            f"{path}: the output file was created by another process while this one was writing it; "
            "it was left as it is. Write into another folder, or pass --overwrite (overwrite=True)."
        ) from None
    except OSError as exc:  # a file system without hard links: test, then rename (a small window)
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        refuse_existing(path)
        os.rename(tmp, path)
        open(tmp, "wb").close()  # the caller removes tmp


def check_writable_dir(directory):
    """Raise :class:`BadInputError` unless files can be created in ``directory``.

    A missing folder counts as writable if its nearest existing parent is a
    writable folder (it is not created here). Checked with a real probe file,
    so it also holds for root, read-only mounts and full quotas.
    """
    directory = os.path.abspath(os.fspath(directory))
    existing = directory
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise BadInputError(f"{directory}: cannot create the output folder there: {existing} is a file, not a folder.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".temzoo-write-check-", dir=existing)
    except OSError as exc:
        what = "the output folder" if existing == directory else f"{existing}, where the output folder would be created,"
        raise BadInputError(
            f"{directory}: {what} is not writable ({exc.strerror or exc}). Choose another output folder "
            "or fix its permissions."
        ) from exc
    os.close(fd)
    os.remove(probe)
    return directory


def remove_stale_partials(path):
    """Delete temporary files of ``path`` (see :func:`atomic_path`) left by processes that are gone.

    Only files of this host whose process no longer runs are removed (and those of
    older versions without a process id). Returns the removed paths.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.)?[a-z0-9_]+\.partial")
    removed = []
    if not os.path.isdir(directory):
        return removed
    for entry in os.listdir(directory):
        match = pattern.match(entry)
        if not match:
            continue
        if match.group("pid") is not None and (match.group("host") != _host() or pid_alive(int(match.group("pid")))):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(directory, entry))
            removed.append(os.path.join(directory, entry))
    return removed


def pid_alive(pid):
    """True if a process with id ``pid`` runs on this host (or exists but is not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _target_mode(path):
    """The mode ``path`` keeps if it exists, else what ``open(path, "w")`` would create."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def fsync_dir(directory):
    """Make a rename or a new entry in ``directory`` durable (best effort: some file systems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


