"""The output folder of an adaptation run: its files, and whether a run in it is new, resumed or refused."""

import json
import os
import shutil

from temzoo.errors import BadInputError, TemzooError

MANIFEST = "run.json"
MODEL_FILE = "model.keras"
LOG_FILE = "log.csv"
CHECKPOINTS = "checkpoints"
_RUN_FILES = (MANIFEST, CHECKPOINTS, LOG_FILE, MODEL_FILE, "model.json")


class RunExistsError(TemzooError, FileExistsError):
    """The output folder holds another (or a finished) run."""


def _read_manifest(out):
    path = os.path.join(out, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: the run manifest is unreadable ({exc}); pass --overwrite to start afresh.") from exc


def prepare_out(out, manifest, overwrite):
    """Check ``out``: True when the run in it is continued, False for a new run."""
    previous = _read_manifest(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise BadInputError(f"{out}: exists and is not a folder; choose another output folder.")
    if overwrite:
        for name in _RUN_FILES:
            path = os.path.join(out, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        return False
    if previous is not None:
        if previous != manifest:
            diff = sorted(k for k in set(previous) | set(manifest) if previous.get(k) != manifest.get(k))
            raise RunExistsError(
                f"{out} holds a different adaptation run (it differs in: {', '.join(diff)}). Re-run the same "
                "command to resume it, pass --overwrite to replace it, or choose another output folder."
            )
        if os.path.exists(os.path.join(out, MODEL_FILE)):
            raise RunExistsError(
                f"{out}: this adaptation has finished ({os.path.join(out, MODEL_FILE)} exists). Pass --overwrite to "
                "run it again, or adapt the result further with --model " + os.path.join(out, MODEL_FILE) + "."
            )
        return True
    if os.path.isdir(out) and os.listdir(out):
        raise RunExistsError(f"{out} is not empty and holds no adaptation run ({MANIFEST} is missing); choose an "
                             "empty or new folder, or pass --overwrite.")
    return False

