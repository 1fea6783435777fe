"""An exclusive lock on a run folder, so two runs never write into the same one.

``with RunLock(out, "pretraining run"):`` takes ``fcntl.flock`` on ``out/.temzoo-lock``
(non-blocking) and writes who holds it (process id, host, start time, command line)
into that file. A second run into the same folder fails at once with
:class:`RunLockedError` naming the holder. The operating system drops the lock
when its process ends, ``kill -9`` included, so a crashed run never blocks the next.

The folder is created if missing; on release the lock file is removed, and so is
the folder if the lock made it and it is still empty (a run that failed its checks
leaves nothing behind). ``flock`` is local to one machine: on a network file system
shared by several hosts it may not exclude a run on another host.
"""

import datetime
import json
import os
import socket
import sys

from temzoo.errors import TemzooError

LOCK_NAME = ".temzoo-lock"


class RunLockedError(TemzooError, RuntimeError):
    """Another process holds the run folder."""


class RunLock:
    def __init__(self, folder, what="run"):
        self.folder = os.path.abspath(os.fspath(folder))
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.what = what
        self.fd = None
        self.created_folder = False

    def acquire(self):
        import fcntl

        if not os.path.isdir(self.folder):
            if os.path.lexists(self.folder):
                raise TemzooError(f"{self.folder}: exists and is not a folder; choose another output folder.")
            os.makedirs(self.folder)
            self.created_folder = True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                self._forget_folder()
                raise RunLockedError(
                    f"{self.folder} is in use by another {self.what} ({holder}). Wait for it to finish, "
                    "stop it, or choose another output folder."
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the holder before us may have removed the file between our open and our lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        record = {
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:500],
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.remove(self.path)  # while still holding it: see the samestat check in acquire
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        self._forget_folder()

    def _forget_folder(self):
        if self.created_folder:
            try:
                os.rmdir(self.folder)  # only if empty
            except OSError:
                pass
            else:
                self.created_folder = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
    except (OSError, ValueError):
        record = {}
    if not record:
        return "holder unknown"
    return (f"process {record.get('pid')} on {record.get('host')}, started {record.get('started')}: "
            f"{record.get('command', '')}").strip().rstrip(":")
