"""The run directory of :func:`temzoo.pretraining.pretrain`: which run it holds, whether a call may
continue it, and an overwrite that loses nothing (no TensorFlow import).

A directory holding a different run is refused unless ``resume=True`` (continue it; only the
settings marked resumable in :class:`~temzoo.pretraining.config.PretrainConfig` may change) or
``overwrite=True``. An overwritten run waits in ``out/.previous-run/`` until the new run has
written its first checkpoint; if the new run fails or is killed before that, the previous run
is put back (at once, or by the next ``pretrain`` on ``out``).
"""

import json
import logging
import os
import shutil

from temzoo.errors import BadInputError, TemzooError
from temzoo.pretraining.config import MANIFEST, MANIFEST_DEFAULTS, RESUMABLE_CHANGES

# Every continuation that changed a setting: [{"step": 300, "changes": {"epochs": [30, 12]}}].
# The card repeats it, because e.g. more epochs stretch a cosine schedule mid-run.
RESUME_CHANGES = "resume_changes.json"
LOG_NAME = "log.csv"
_RUN_FILES = ("checkpoints", "samples", LOG_NAME, "loss_curves.png", MANIFEST, RESUME_CHANGES)
# Where an overwritten run waits until the new one has its first checkpoint.
PREVIOUS_RUN = ".previous-run"
# Entries of ``out`` that belong to no run (the lock, a set-aside previous run).
_HIDDEN = frozenset({PREVIOUS_RUN, ".temzoo-lock"})

logger = logging.getLogger(__name__)


class RunExistsError(TemzooError, FileExistsError):
    """The output directory holds another run."""


def write_json(path, payload):
    from temzoo.atomic import write_text

    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def read_manifest(out):
    """The manifest of the run in ``out`` as saved, or None when there is none."""
    path = os.path.join(out, MANIFEST)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}: the run manifest is not valid JSON ({exc}). Use --overwrite to start "
                                "afresh.") from exc


def manifest_differences(previous, manifest):
    """{setting: [saved, now]} for every setting that differs; settings added since the
    saved run was made count with the value older runs imply (MANIFEST_DEFAULTS)."""
    previous = {**MANIFEST_DEFAULTS, **previous}
    return {k: [previous.get(k), manifest.get(k)] for k in sorted(set(previous) | set(manifest))
            if previous.get(k) != manifest.get(k)}


def prepare_out(out, manifest, resume, overwrite):
    """Check ``out`` against the manifest; changes nothing (an overwrite happens later, see
    :func:`set_aside_run`).

    Returns None when a new run starts in ``out``; when an existing run is continued,
    ``{setting: [saved, now]}`` of what this call changes (empty if nothing).
    """
    previous = read_manifest(out)
    if previous is None:
        if os.path.isdir(out) and set(os.listdir(out)) - _HIDDEN and not overwrite:
            raise RunExistsError(
                f"{out} is not empty and holds no pretraining run ({MANIFEST} is missing); choose an empty "
                "or new output directory, or pass --overwrite to write into it."
            )
        return None
    if overwrite:
        return None
    differing = manifest_differences(previous, manifest)
    if not differing:
        return differing
    if resume:
        fixed = [k for k in differing if k not in RESUMABLE_CHANGES]
        if fixed:
            details = "; ".join(f"{k}: {differing[k][0]!r} -> {differing[k][1]!r}" for k in fixed)
            raise RunExistsError(
                f"{out} holds a run that cannot be resumed with these arguments ({details}); only "
                f"{', '.join(sorted(RESUMABLE_CHANGES))} may change when resuming. "
                "Use --overwrite or another output directory."
            )
        return differing
    details = "; ".join(f"{k}: {before!r} -> {now!r}" for k, (before, now) in differing.items())
    raise RunExistsError(
        f"{out} already holds a different pretraining run ({details}). Re-run with --resume to "
        "continue it with these arguments, --overwrite to delete it and start afresh, or choose "
        "another output directory."
    )


def read_resume_changes(out):
    path = os.path.join(out, RESUME_CHANGES)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}: the record of changes made on resume is not valid JSON ({exc}). "
                                "Restore it, delete it (the card then omits earlier changes) or use "
                                "--overwrite.") from exc


def record_resume_changes(out, manifest_changes, step, restored):
    """Update ``out/resume_changes.json`` and return the list the card repeats.

    ``restored``: the run continues from a checkpoint of step ``step``. Without one the run
    starts again at step 0, and earlier records describe a run that no longer exists.
    """
    record = os.path.join(out, RESUME_CHANGES)
    if not restored:
        if os.path.exists(record):
            os.remove(record)
        return []
    changes_so_far = read_resume_changes(out)
    # what this continuation changed (where the data lives is not a change to the training)
    changes = {k: v for k, v in (manifest_changes or {}).items() if k != "data_dir"}
    if changes:
        changes_so_far.append({"step": step, "changes": changes})
        write_json(record, changes_so_far)
    return changes_so_far


def run_entries(out):
    """The entries of ``out`` that belong to the run in it (its files, its export)."""
    try:
        previous = read_manifest(out) or {}
    except BadInputError:
        previous = {}
    name = previous.get("name")
    entries = _RUN_FILES + ((f"{name}.keras", f"{name}.json") if name else ())
    return [e for e in entries if os.path.lexists(os.path.join(out, e))]


def set_aside_run(out):
    """Move the run in ``out`` into ``out/.previous-run`` (an overwrite, before the new run writes)."""
    from temzoo.atomic import fsync_dir

    entries = run_entries(out)
    if not entries:
        return False
    backup = os.path.join(out, PREVIOUS_RUN)
    os.makedirs(backup)
    for entry in entries:
        os.rename(os.path.join(out, entry), os.path.join(backup, entry))
    fsync_dir(out)
    logger.info("%s: the previous run is kept in %s until the new one has its first checkpoint.", out, backup)
    return True


def remove_partials(out):
    """Delete the temporary files (:mod:`temzoo.atomic`) that a killed run left in ``out`` and
    ``out/samples`` (checkpoints clean their own folder)."""
    for folder in (out, os.path.join(out, "samples")):
        if not os.path.isdir(folder):
            continue
        for entry in os.listdir(folder):
            path = os.path.join(folder, entry)
            if entry.startswith(".") and ".partial" in entry and os.path.isfile(path):
                os.remove(path)


def drop_previous_run_if_checkpointed(out):
    """Delete ``out/.previous-run`` if the new run has a checkpoint; True when none is left."""
    from temzoo.pretraining.checkpoints import has_checkpoint

    backup = os.path.join(out, PREVIOUS_RUN)
    if not os.path.isdir(backup):
        return True
    if has_checkpoint(os.path.join(out, "checkpoints")):
        shutil.rmtree(backup, ignore_errors=True)
        return True
    return False


def settle_previous_run(out):
    """Delete ``out/.previous-run`` once the new run has a checkpoint; otherwise put it back.

    Returns ``"kept"`` (no previous run waiting), ``"dropped"`` or ``"restored"``.
    """
    backup = os.path.join(out, PREVIOUS_RUN)
    if not os.path.isdir(backup):
        return "kept"
    if drop_previous_run_if_checkpointed(out):
        return "dropped"
    for entry in run_entries(out):  # what the replacing run wrote before it stopped
        path = os.path.join(out, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    for entry in os.listdir(backup):
        os.rename(os.path.join(backup, entry), os.path.join(out, entry))
    os.rmdir(backup)
    logger.warning("%s: the run started with overwrite stopped before its first checkpoint; the previous run "
                   "was put back.", out)
    return "restored"
