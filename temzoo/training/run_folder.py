"""A fine-tuning run's folder: its files, the hidden staging folder it is written into, the atomic swap.

A run is written into a hidden staging folder beside ``out``
(``.NAME.partial-PID-*``) and replaces ``out`` only when it is complete, in
one atomic directory exchange (two renames where the system has none), so
``out`` always holds either the previous finished run or the new one, never a
mix, even after ``kill -9``; staging folders of dead runs are removed by the
next run (:func:`clean_stale_staging`). An existing run in ``out`` is refused
unless ``overwrite=True``, and a folder holding anything but a run's files is
never replaced (:func:`check_output_dir`).
"""

import ctypes
import logging
import os
import shutil
import sys
import tempfile

from temzoo.atomic import pid_alive
from temzoo.errors import BadInputError

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
OVERLAY_DIR = "overlays"
RUN_FILES = (MODEL_FILE, CARD_FILE, METRICS_FILE, CURVES_FILE, OVERLAY_DIR)


def output_paths(out):
    return {
        "model": os.path.join(out, MODEL_FILE),
        "metrics": os.path.join(out, METRICS_FILE),
        "curves": os.path.join(out, CURVES_FILE),
        "overlays": os.path.join(out, OVERLAY_DIR),
    }


def check_output_dir(out, overwrite):
    """Refuse to replace a finished run unless ``overwrite``, and never replace a folder of other files."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise BadInputError(f"{out}: exists and is not a folder; choose another --out.")
    if not os.path.isdir(out):
        return
    entries = sorted(os.listdir(out))
    foreign = [e for e in entries if e not in RUN_FILES and not e.startswith(".")]
    if foreign:
        raise BadInputError(
            f"{out}: holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which a fine-tuning run "
            "does not write; it is not replaced even with --overwrite. Choose a new or empty --out."
        )
    existing = [e for e in entries if e in RUN_FILES]
    if existing and not overwrite:
        first = os.path.join(out, MODEL_FILE if MODEL_FILE in existing else existing[0])
        raise BadInputError(
            f"{first}: the output exists (a previous run in {out}); choose another --out or pass --overwrite."
        )


_STAGING = ".partial-"
_OLD = ".old-"


def _staged_entries(parent, base, kind):
    prefix = f".{base}{kind}"
    for entry in os.listdir(parent):
        if entry.startswith(prefix):
            pid = entry[len(prefix):].split("-", 1)[0]
            if pid.isdigit():
                yield os.path.join(parent, entry), int(pid)


def clean_stale_staging(out):
    """Remove staging folders of dead runs into ``out``; restore a run a crash left half-swapped.

    Returns the removed paths. A folder of a live process is left alone.
    """
    out = os.path.abspath(out)
    parent, base = os.path.dirname(out), os.path.basename(out)
    if not os.path.isdir(parent):
        return []
    removed = []
    for path, pid in list(_staged_entries(parent, base, _OLD)):
        if pid_alive(pid):
            continue
        if not os.path.exists(out):  # killed between the two renames: the previous run comes back
            os.rename(path, out)
            logger.warning("%s: restored the previous run that an interrupted run had moved aside.", out)
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for path, pid in list(_staged_entries(parent, base, _STAGING)):
        if not pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def make_staging_dir(out):
    """A fresh hidden folder beside ``out`` (same file system, so it can be renamed onto ``out``)."""
    out = os.path.abspath(out)
    parent, base = os.path.dirname(out), os.path.basename(out)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{base}{_STAGING}{os.getpid()}-", dir=parent)


_RENAME_EXCHANGE = 2


def _exchange(a, b):
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def publish(staging, out):
    """Make the complete run in ``staging`` the content of ``out``; the previous ``out`` is removed."""
    out = os.path.abspath(out)
    from temzoo.atomic import fsync_dir

    if not os.path.exists(out):
        os.rename(staging, out)
    elif _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # now the previous run
    else:
        parent, base = os.path.dirname(out), os.path.basename(out)
        old = tempfile.mkdtemp(prefix=f".{base}{_OLD}{os.getpid()}-", dir=parent)
        os.rmdir(old)
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(os.path.dirname(out))



def write_run(out, overwrite, write):
    """``write(staging)`` into a fresh staging folder beside ``out``, then publish it as ``out``; returns its result.

    Stale staging folders of dead runs are removed first; whatever ``write``
    raises (``KeyboardInterrupt`` included) removes the staging folder and
    leaves ``out`` as it was. ``out`` is checked again (:func:`check_output_dir`)
    just before it is replaced: another process may have written a run meanwhile.
    """
    clean_stale_staging(out)
    staging = make_staging_dir(out)
    try:
        result = write(staging)
        check_output_dir(out, overwrite)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result
