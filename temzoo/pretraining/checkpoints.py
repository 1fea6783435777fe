"""Training checkpoints that an interrupted write can never spoil.

Layout of a checkpoint directory::

    checkpoints/
        ckpt-000000200/        one complete checkpoint: ckpt.index, ckpt.data-*, state.json
        ckpt-000000400/
        latest.json            {"checkpoint": "ckpt-000000400", "step": 400, ...}

A checkpoint is written into a hidden ``.partial-*`` folder beside them
(``tf.train.Checkpoint.write`` + ``state.json``), every file is fsynced, and
only then is the folder renamed to ``ckpt-<step>`` and ``latest.json`` replaced
atomically (:mod:`temzoo.atomic`). A crash or ``kill -9`` at any moment leaves
either the previous ``latest.json`` pointing to a complete checkpoint, or the
new one pointing to the new complete checkpoint; a half-written ``.partial-*``
folder is ignored and removed at the next start. (``tf.train.CheckpointManager``
writes its numbered files in place and then rewrites its ``checkpoint`` index
file in place, which is why it is not used here.) Old checkpoints beyond
``keep`` are deleted only after the new one is committed.

``state.json`` holds what the weights do not: step, completed epochs, images
seen, the seeds, and the metrics of the last finished epoch.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile

from temzoo.atomic import fsync_dir, write_text
from temzoo.errors import BadInputError

LATEST = "latest.json"
STATE = "state.json"
PREFIX = "ckpt"
_NAME = re.compile(r"^ckpt-(\d+)$")


def _fsync_tree(directory):
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(root)


class CheckpointStore:
    """Numbered, atomically committed checkpoints of trackable objects.

    Args:
        directory: where the checkpoints live (created if missing).
        objects: name -> trackable (Keras models, optimizers, ``tf.Variable``,
            ``tf.random.Generator``), as for ``tf.train.Checkpoint``.
        keep: how many checkpoints to keep (the latest always survives).
        writer: False on the non-chief workers of a multi-worker run: they
            take part in the save (a distributed save may need every worker)
            but write into a temporary folder that is then deleted.
    """

    def __init__(self, directory, objects, keep=3, writer=True):
        import tensorflow as tf

        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}.")
        self.directory = os.fspath(directory)
        self.keep = int(keep)
        self.writer = writer
        self.checkpoint = tf.train.Checkpoint(**objects)
        if writer:
            os.makedirs(self.directory, exist_ok=True)
            self.remove_partial()

    # -- writing -----------------------------------------------------------------

    def save(self, step, state=None):
        """Write a checkpoint for ``step`` and make it the latest; returns its folder.

        ``state`` (JSON-serialisable dict) is stored beside the weights.
        """
        step = int(step)
        state = {**(state or {}), "step": step}
        if not self.writer:
            tmp = tempfile.mkdtemp(prefix="temzoo-worker-ckpt-")
            try:
                self.checkpoint.write(os.path.join(tmp, PREFIX))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return None
        name = f"{PREFIX}-{step:09d}"
        final = os.path.join(self.directory, name)
        if not self._complete(final):
            tmp = tempfile.mkdtemp(prefix=f".partial-{name}-", dir=self.directory)
            try:
                self._write(tmp, state)
                _fsync_tree(tmp)
                if os.path.exists(final):  # an incomplete folder of that name (cannot normally happen)
                    shutil.rmtree(final)
                os.rename(tmp, final)
                fsync_dir(self.directory)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        write_text(os.path.join(self.directory, LATEST), json.dumps({"checkpoint": name, **state}, indent=2, default=str) + "\n")
        self._prune(keep_name=name)
        return final

    def _write(self, folder, state):
        """Write the weights and ``state.json`` into ``folder`` (a hook tests use to interrupt)."""
        self.checkpoint.write(os.path.join(folder, PREFIX))
        write_text(os.path.join(folder, STATE), json.dumps(state, indent=2, default=str) + "\n")

    def _prune(self, keep_name):
        names = sorted(self.list(), key=lambda n: int(_NAME.match(n).group(1)))
        old = [n for n in names if n != keep_name][: max(0, len(names) - self.keep)]
        for n in old:
            shutil.rmtree(os.path.join(self.directory, n), ignore_errors=True)

    def remove_partial(self):
        """Delete ``.partial-*`` folders left by an interrupted write."""
        if not os.path.isdir(self.directory):
            return
        for n in os.listdir(self.directory):
            if n.startswith(".partial-"):
                path = os.path.join(self.directory, n)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.remove(path)

    # -- reading -----------------------------------------------------------------

    @staticmethod
    def _complete(folder):
        return os.path.isfile(os.path.join(folder, STATE)) and os.path.isfile(os.path.join(folder, PREFIX + ".index"))

    def list(self):
        """Names of the complete checkpoints, any order."""
        if not os.path.isdir(self.directory):
            return []
        return [
            n for n in os.listdir(self.directory)
            if _NAME.match(n) and self._complete(os.path.join(self.directory, n))
        ]

    def latest(self):
        """Folder of the latest complete checkpoint, or ``None``.

        ``latest.json`` names it; if that file is missing or names a folder that
        is gone, the complete checkpoint with the highest step is used.
        """
        pointer = os.path.join(self.directory, LATEST)
        if os.path.isfile(pointer):
            try:
                with open(pointer, encoding="utf-8") as f:
                    name = json.load(f).get("checkpoint")
            except (OSError, json.JSONDecodeError):
                name = None
            if name and _NAME.match(name) and self._complete(os.path.join(self.directory, name)):
                return os.path.join(self.directory, name)
        names = self.list()
        if not names:
            return None
        return os.path.join(self.directory, max(names, key=lambda n: int(_NAME.match(n).group(1))))

    def restore(self, folder=None):
        """Load the latest (or the given) checkpoint into the objects; returns its state, or ``None``.

        Raises :class:`BadInputError` naming the folder when the checkpoint does
        not fit the objects (e.g. a different architecture).
        """
        folder = folder or self.latest()
        if folder is None:
            return None
        with open(os.path.join(folder, STATE), encoding="utf-8") as f:
            state = json.load(f)
        try:
            status = self.checkpoint.read(os.path.join(folder, PREFIX))
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError) as exc:
            raise BadInputError(
                f"{folder}: the checkpoint does not fit the model being trained ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300]}). Resume with the same model and method, or start "
                "a new run with --overwrite or another output directory."
            ) from exc
        status.expect_partial()
        return state


def has_checkpoint(directory):
    """Whether ``directory`` holds at least one complete checkpoint (no TensorFlow needed)."""
    if not os.path.isdir(directory):
        return False
    return any(_NAME.match(n) and CheckpointStore._complete(os.path.join(directory, n)) for n in os.listdir(directory))
