"""``pretrain()``: one resumable pretraining run from a model name and a dataset to an
exported generator with its model card.

Run directory (``out``)::

    run.json                the run manifest: every argument of the run
    checkpoints/            atomic numbered checkpoints + latest.json (temzoo.pretraining.checkpoints)
    log.csv                 one row per epoch: step, images seen, seconds, training and validation metrics
    loss_curves.png         redrawn every epoch
    samples/epoch-XXXX.png  noisy | generated | clean validation patches, every epoch
    <name>.keras, <name>.json   the exported generator and its card (at the end)

Re-running the same call (or the same ``temzoo-cli pretrain`` command) after
a crash or ``kill -9`` resumes from the last checkpoint: weights, optimizer
state, step counter and the data position (each epoch's pipeline is seeded by
``(seed, epoch)`` and the batches already done in the epoch are skipped). At
most the steps since the last checkpoint are lost. A directory holding a
different run is refused unless ``resume=True`` (continue it with the new
arguments, e.g. more epochs; model and method must stay the same) or
``overwrite=True`` (replace that run and start afresh).

Nothing is lost to a mistake: every argument, the dataset, the models and one
training batch are checked before ``out`` is changed. With ``overwrite=True`` the
previous run's files are moved into ``out/.previous-run/`` and deleted only once
the new run has written its first checkpoint; if the new run fails or is killed
before that, the previous run is put back (at once, or by the next ``pretrain``
on ``out``). Only one run may use ``out`` at a time: an exclusive lock
(:mod:`temzoo.runlock`) makes a second run fail naming the holder.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil

from temzoo.errors import BadInputError, InputSizeError, TemzooError

from temzoo.names import PRETRAIN_METHODS as METHODS
SCHEDULES = ("constant", "cosine")
MANIFEST = "run.json"
# Every continuation that changed an argument: [{"step": 300, "changes": {"epochs": [30, 12]}}].
# The card repeats it, because e.g. more epochs stretch a cosine schedule mid-run.
RESUME_CHANGES = "resume_changes.json"
# Arguments that may change when a run is continued with resume=True (a longer run,
# other devices); every other argument defines the run and must stay the same.
RESUMABLE_CHANGES = frozenset({
    "epochs", "checkpoint_every", "keep_checkpoints", "validation_steps", "data_dir", "devices",
    "jit_compile", "steps_per_execution", "batch_norm_recalibration_batches",
})
# Arguments added since the first release, with the value older manifests imply.
MANIFEST_DEFAULTS = {"learning_rate_schedule": "constant", "batch_norm_recalibration_batches": 0}
_RUN_FILES = ("checkpoints", "samples", "log.csv", "loss_curves.png", MANIFEST, RESUME_CHANGES)
# Where an overwritten run waits until the new one has its first checkpoint.
PREVIOUS_RUN = ".previous-run"
# Entries of ``out`` that belong to no run (the lock, a set-aside previous run).
_HIDDEN = frozenset({PREVIOUS_RUN, ".temzoo-lock"})

logger = logging.getLogger(__name__)


class RunExistsError(TemzooError, FileExistsError):
    """The output directory holds another run."""


@dataclasses.dataclass
class PretrainResult:
    """What a run produced.

    ``generator`` is the trained in-memory model (float32 export at
    ``model_path``); ``metrics`` are the last epoch's training and validation
    metrics; ``resumed_from_step`` is 0 for a fresh run.
    """

    out: str
    model_path: str
    card_path: str
    card: dict
    metrics: dict
    step: int
    epochs: int
    images_seen: int
    resumed_from_step: int
    log_path: str
    generator: object = None
    trainer: object = None


def _in_memory_fingerprint(images):
    import numpy as np

    array = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    return f"array{list(array.shape)} sha256:{hashlib.sha256(array.tobytes()).hexdigest()[:16]}"


def _manifest(args):
    """JSON-able description of the run (the arguments that define it)."""
    manifest = dict(args)
    for key in ("dataset", "validation_dataset"):
        value = manifest.get(key)
        if value is not None and not isinstance(value, str):
            manifest[key] = _in_memory_fingerprint(value)
    if manifest.get("normalizer") is not None and hasattr(manifest["normalizer"], "get_config"):
        manifest["normalizer"] = manifest["normalizer"].get_config()
    manifest["dose_range"] = [float(v) for v in manifest["dose_range"]]
    if manifest.get("devices") is not None:
        manifest["devices"] = list(manifest["devices"])
    return json.loads(json.dumps(manifest, default=str))


def _check_arguments(a):
    if a["method"] not in METHODS:
        raise ValueError(f"method={a['method']!r} is not supported; choose one of: {', '.join(METHODS)}.")
    from temzoo.precision import check_precision

    check_precision(a["precision"])
    for key, low in (("patch_size", 1), ("batch_size", 1), ("epochs", 1), ("steps_per_epoch", 1),
                     ("batch_norm_recalibration_batches", 0)):
        value = a[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{key} must be an integer >= {low}, got {value!r}.")
    if a["validation_steps"] < 0 or (a["checkpoint_every"] is not None and a["checkpoint_every"] < 0):
        raise ValueError("validation_steps and checkpoint_every must be >= 0.")
    if a["patch_size"] < 11:
        raise InputSizeError(f"patch_size={a['patch_size']} is too small: SSIM needs patches of at least 11 pixels.")
    low, high = (float(v) for v in a["dose_range"])
    if not 0 < low <= high:
        raise ValueError(f"dose_range must satisfy 0 < low <= high, got {a['dose_range']}.")
    if a["learning_rate_schedule"] not in SCHEDULES:
        raise ValueError(f"learning_rate_schedule={a['learning_rate_schedule']!r} is not supported; "
                         f"choose one of: {', '.join(SCHEDULES)}.")


def adam_optimizer(learning_rate, beta_1, schedule="constant", total_steps=None):
    """The Adam optimizer of both networks; ``schedule="cosine"`` decays the rate to 0 over ``total_steps``.

    The rate follows the optimizer's own step counter, which the checkpoints keep, so a
    resumed run continues on the same curve.
    """
    import keras

    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=int(total_steps), alpha=0.0)
    elif schedule != "constant":
        raise ValueError(f"schedule={schedule!r} is not supported; choose one of: {', '.join(SCHEDULES)}.")
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)


def _read_manifest(out):
    """The manifest of the run in ``out`` as saved, or None when there is none."""
    path = os.path.join(out, MANIFEST)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}: the run manifest is not valid JSON ({exc}). Use --overwrite to start afresh.") from exc


def _manifest_differences(previous, manifest):
    """{argument: [saved, now]} for every argument that differs; arguments added since the
    saved run was made count with the value older runs imply (MANIFEST_DEFAULTS)."""
    previous = {**MANIFEST_DEFAULTS, **previous}
    return {k: [previous.get(k), manifest.get(k)] for k in sorted(set(previous) | set(manifest))
            if previous.get(k) != manifest.get(k)}


def _prepare_out(out, manifest, resume, overwrite, writer):
    """Check ``out`` against the manifest; changes nothing (an overwrite happens later, see
    :func:`_set_aside_run`).

    Returns None when a new run starts in ``out``; when an existing run is continued,
    ``{argument: [saved, now]}`` of what this call changes (empty if nothing).
    """
    previous = _read_manifest(out)
    if previous is not None:
        if overwrite:
            return None
        differing = _manifest_differences(previous, manifest)
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
    if os.path.isdir(out) and set(os.listdir(out)) - _HIDDEN and not overwrite:
        raise RunExistsError(
            f"{out} is not empty and holds no pretraining run ({MANIFEST} is missing); choose an empty "
            "or new output directory, or pass --overwrite to write into it."
        )
    return None


def _read_resume_changes(out):
    path = os.path.join(out, RESUME_CHANGES)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}: the record of changes made on resume is not valid JSON ({exc}). "
                                "Restore it, delete it (the card then omits earlier changes) or use --overwrite.") from exc


def _run_entries(out):
    """The entries of ``out`` that belong to the run in it (its files, its export)."""
    try:
        previous = _read_manifest(out) or {}
    except BadInputError:
        previous = {}
    name = previous.get("name")
    entries = _RUN_FILES + ((f"{name}.keras", f"{name}.json") if name else ())
    return [e for e in entries if os.path.lexists(os.path.join(out, e))]


def _set_aside_run(out):
    """Move the run in ``out`` into ``out/.previous-run`` (an overwrite, before the new run writes)."""
    from temzoo.atomic import _fsync_dir

    entries = _run_entries(out)
    if not entries:
        return False
    backup = os.path.join(out, PREVIOUS_RUN)
    os.makedirs(backup)
    for entry in entries:
        os.rename(os.path.join(out, entry), os.path.join(backup, entry))
    _fsync_dir(out)
    logger.info("%s: the previous run is kept in %s until the new one has its first checkpoint.", out, backup)
    return True


def _remove_partials(out):
    """Delete the temporary files (:mod:`temzoo.atomic`) that a killed run left in ``out`` and
    ``out/samples`` (checkpoints clean their own folder)."""
    for folder in (out, os.path.join(out, "samples")):
        if not os.path.isdir(folder):
            continue
        for entry in os.listdir(folder):
            path = os.path.join(folder, entry)
            if entry.startswith(".") and ".partial" in entry and os.path.isfile(path):
                os.remove(path)


def _settle_previous_run(out):
    """Delete ``out/.previous-run`` once the new run has a checkpoint; otherwise put it back.

    Returns ``"kept"`` (no previous run waiting), ``"dropped"`` or ``"restored"``.
    """
    from temzoo.pretraining.checkpoints import has_checkpoint

    backup = os.path.join(out, PREVIOUS_RUN)
    if not os.path.isdir(backup):
        return "kept"
    if has_checkpoint(os.path.join(out, "checkpoints")):
        shutil.rmtree(backup)
        return "dropped"
    for entry in _run_entries(out):  # what the replacing run wrote before it stopped
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


def _epoch_seed(seed, epoch):
    return int((seed * 1_000_003 + epoch * 7919 + 17) % (2**31 - 1))


def _load_images(dataset, split, data_dir, verbose):
    """(images dataset or array, dataset info dict) for a name or in-memory images."""
    if not isinstance(dataset, str):
        return dataset, {"dataset": "in-memory", "fingerprint": _in_memory_fingerprint(dataset)}
    from temzoo import datasets

    builder = datasets.get_builder(dataset, data_dir)
    if not builder.is_prepared() and getattr(builder, "GENERATED", False):
        datasets.build_dataset(dataset, data_dir=data_dir, progress=bool(verbose))
        builder = datasets.get_builder(dataset, data_dir)
    ds = datasets.load(dataset, split, data_dir=data_dir)
    info = {"dataset": dataset, "version": str(builder.version), "split": split, "data_dir": builder.data_dir_root}
    return ds, info


def _validation_split(dataset, data_dir):
    from temzoo import datasets

    splits = datasets.get_builder(dataset, data_dir).info.splits
    for name in ("validation", "test"):
        if name in splits:
            return name
    return "train"


def pretrain(
    model="unet_b2_p22",
    dataset="synthetic_tem/unlabeled",
    method="pix2pix",
    *,
    out,
    patch_size=128,
    batch_size=8,
    epochs=10,
    steps_per_epoch=100,
    validation_steps=4,
    checkpoint_every=None,
    keep_checkpoints=3,
    resume=False,
    overwrite=False,
    precision="float32",
    seed=0,
    dose_range=(5.0, 500.0),
    read_noise=0.0,
    normalizer=None,
    augment=True,
    shuffle_buffer=256,
    data_dir=None,
    validation_dataset=None,
    discriminator="patchgan_70",
    model_overrides=None,
    discriminator_overrides=None,
    l1_lambda=100.0,
    loss="l1",
    learning_rate=2e-4,
    beta_1=0.5,
    learning_rate_schedule="constant",
    batch_norm_recalibration_batches=0,
    devices=None,
    jit_compile=False,
    steps_per_execution=1,
    name=None,
    samples=4,
    verbose=1,
):
    """Pretrain ``model`` on the Poisson-denoising pretext task; export the generator with a card.

    Resumable: re-running the same call continues from the last checkpoint (weights, optimizer
    states, dropout seed states, step counter; the data position is restored by seeding each
    epoch by ``(seed, epoch)`` and skipping the batches already done).

    Args:
        model: a registered dense architecture (``temzoo.list_architectures(kind="dense")``).
        dataset: a dataset name (``"synthetic_tem/unlabeled"``, ``"cem500k"``; feature
            ``image``) or in-memory images (N x H x W (x 1) array or a tf.data of images).
        method: ``"pix2pix"`` (generator + conditional PatchGAN + L1) or
            ``"autoencoder"`` (L1 or L2 only, ``loss=``).
        out: run directory (see the module docstring).
        patch_size: training patch side; must be a multiple of the model's total stride.
        batch_size: GLOBAL batch size (split across replicas).
        epochs, steps_per_epoch: run length; ``validation_steps`` batches of
            validation patches are evaluated after every epoch.
        checkpoint_every: steps between checkpoints (default: ``steps_per_epoch``,
            i.e. each epoch end only; checkpoints are also written at every epoch end).
        resume, overwrite: what to do with an output directory holding a different run.
        precision: ``"float32"``, ``"mixed_float16"`` (GPUs; loss scaling is added)
            or ``"mixed_bfloat16"``. The exported generator is always float32.
        seed: initial weights and data order.
        dose_range, read_noise: the pretext's noise model (Poisson counts per pixel at
            the mean intensity, drawn log-uniformly per image; Gaussian read noise).
        normalizer: a :class:`temzoo.normalization.Normalizer` (default standardize).
        validation_dataset: in-memory validation images when ``dataset`` is in memory
            (default: the same images with another seed); named datasets use their
            ``validation`` split.
        discriminator: PatchGAN preset (``pix2pix`` only); ``*_overrides`` change a
            preset's config (e.g. ``{"base_filters": 8}``).
        learning_rate, beta_1: Adam's, for both networks.
        learning_rate_schedule: ``"constant"`` or ``"cosine"`` (decays to 0 over
            ``epochs * steps_per_epoch`` steps; a resumed run with more ``epochs``
            continues on the stretched curve, and the card's ``changes_on_resume``
            says at which step each such change was made).
        batch_norm_recalibration_batches: before export, re-estimate the generator's
            BatchNormalization moving statistics as the mean over this many training
            batches (precise BN, :mod:`temzoo.batch_norm`); 0 (default) exports them as
            trained. Only the export changes, so a finished run can be re-exported with
            ``resume=True``.
        devices: explicit devices for a MirroredStrategy; default: automatic
            (see :mod:`temzoo.distribute`).
        jit_compile: XLA on a single device (ignored under a strategy).
        name: name of the exported model (default ``<model>_<method>``).

    Returns:
        :class:`PretrainResult`.
    """

    from temzoo import distribute
    from temzoo.normalization import Normalizer

    args = {
        "model": model, "dataset": dataset, "method": method, "patch_size": patch_size,
        "batch_size": batch_size, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
        "validation_steps": validation_steps, "checkpoint_every": checkpoint_every,
        "keep_checkpoints": keep_checkpoints, "precision": precision, "seed": seed,
        "dose_range": list(dose_range), "read_noise": float(read_noise),
        "normalizer": (normalizer or Normalizer("standardize")).get_config(), "augment": augment,
        "shuffle_buffer": shuffle_buffer, "data_dir": data_dir, "validation_dataset": validation_dataset,
        "discriminator": discriminator if method == "pix2pix" else None,
        "model_overrides": model_overrides or {}, "discriminator_overrides": discriminator_overrides or {},
        "l1_lambda": float(l1_lambda) if method == "pix2pix" else None, "loss": loss if method == "autoencoder" else None,
        "learning_rate": float(learning_rate), "beta_1": float(beta_1),
        "learning_rate_schedule": learning_rate_schedule,
        "batch_norm_recalibration_batches": batch_norm_recalibration_batches, "devices": devices,
        "jit_compile": bool(jit_compile), "steps_per_execution": steps_per_execution,
        "name": name or f"{model}_{method}",
    }
    _check_arguments(args)
    normalizer = Normalizer.from_config(args["normalizer"])
    name = args["name"]
    out = os.path.abspath(os.fspath(out))
    checkpoint_every = steps_per_epoch if checkpoint_every is None else checkpoint_every

    # Names first: unknown model / discriminator / dataset fail before anything is built.
    from temzoo.models import registry

    entry = registry.architecture(model)
    if entry.get("kind", "dense") != "dense":
        raise ValueError(f"{model!r} is a {entry['kind']}, not a dense model; pretrain a model from "
                         "temzoo.list_architectures(kind='dense').")
    if method == "pix2pix":
        d_entry = registry.architecture(discriminator)
        if d_entry.get("kind") != "discriminator":
            raise ValueError(f"discriminator={discriminator!r} is not a discriminator; choose one of "
                             f"{', '.join(registry.list_architectures(kind='discriminator'))}.")
    if isinstance(dataset, str):
        from temzoo import datasets

        datasets.resolve(dataset)

    strategy = distribute.get_strategy(devices)
    writer = distribute.is_chief(strategy)
    distribute.check_global_batch(strategy, batch_size)
    manifest = _manifest(args)
    from temzoo.runlock import RunLock

    if writer:
        from temzoo.atomic import check_writable_dir

        check_writable_dir(out)  # a clear error now, not a PermissionError after the models are built
    # One run at a time in ``out`` (non-chief workers only take part in the chief's run).
    with RunLock(out, "pretraining run") if writer else contextlib.nullcontext(), contextlib.ExitStack() as undo:
        if writer:
            _settle_previous_run(out)  # a run started with overwrite that was killed before its first checkpoint
            _remove_partials(out)  # temporary files of a killed run (only the lock holder writes here)
        manifest_changes = _prepare_out(out, manifest, resume, overwrite, writer)
        continuing = manifest_changes is not None
        model_path = os.path.join(out, f"{name}.keras")

        def make_generator():
            return registry.build(model, **(model_overrides or {}))

        def make_discriminator():
            return registry.build(discriminator, **(discriminator_overrides or {}))

        # The patch size must fit the model's stride: checked on the config, before data or training.
        probe = make_generator()
        stride = int(getattr(probe, "total_stride", 1))
        from temzoo.models.layers import SizeCheck

        SizeCheck.check(patch_size, patch_size, stride, model_name=model)
        del probe

        # Data.
        from temzoo.data import pretext_pairs

        train_images, data_info = _load_images(dataset, "train", data_dir, verbose)
        if isinstance(dataset, str):
            val_split = _validation_split(dataset, data_dir)
            val_images, _ = _load_images(dataset, val_split, data_dir, 0)
        else:
            val_split = "in-memory" if validation_dataset is not None else "in-memory (training images, other seed)"
            val_images = validation_dataset if validation_dataset is not None else dataset
        pretext = dict(patch_size=patch_size, batch_size=batch_size, dose_range=tuple(dose_range),
                       read_noise=read_noise, normalizer=normalizer)

        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

        def train_data(epoch, skip):
            ds = pretext_pairs(train_images, seed=_epoch_seed(seed, epoch), augment=augment, repeat=True,
                               shuffle_buffer=shuffle_buffer, **pretext)
            return ds.skip(skip).with_options(options)

        val_ds = None
        if validation_steps:
            val_ds = pretext_pairs(val_images, seed=_epoch_seed(seed, 10**6), augment=False, repeat=True,
                                   shuffle_buffer=0, **pretext).take(validation_steps).cache().with_options(options)

        # Models, optimizers, compile: inside the strategy scope.
        import keras

        keras.utils.set_random_seed(seed)

        def make_optimizer():
            return adam_optimizer(learning_rate, beta_1, learning_rate_schedule, total_steps=epochs * steps_per_epoch)

        trainer = distribute.build_trainer(
            strategy, method, make_generator, make_discriminator if method == "pix2pix" else None,
            g_optimizer=make_optimizer, d_optimizer=make_optimizer, l1_lambda=l1_lambda, loss=loss,
            precision=precision, jit_compile=jit_compile, steps_per_execution=steps_per_execution,
        )

        # One batch of each pipeline before ``out`` changes: images the patch does not fit, or any
        # other problem with the data, fail here with the previous run untouched.
        sample_noisy = sample_clean = None
        try:
            next(iter(train_data(0, 0)))
            if val_ds is not None:
                noisy, clean = next(iter(val_ds))
                if samples:
                    sample_noisy, sample_clean = noisy.numpy()[:samples], clean.numpy()[:samples]
        except tf.errors.OpError as exc:
            source = dataset if isinstance(dataset, str) else "the in-memory images"
            raise BadInputError(
                f"{source}: the first training batch could not be made ({type(exc).__name__}: "
                f"{(exc.message or str(exc)).strip().splitlines()[0][:300]}). Check --patch-size ({patch_size}) "
                "against the images' size and that the dataset is complete."
            ) from exc

        # Everything is checked: from here on ``out`` changes. An overwritten run waits in
        # out/.previous-run until the new one has a checkpoint, and comes back if it fails before.
        if writer and overwrite and not continuing and _set_aside_run(out):
            undo.push(lambda kind, error, trace: kind is not None and _settle_previous_run(out) and False)

        from temzoo.pretraining.callbacks import (
            LOG_NAME,
            CSVHistory,
            LossCurves,
            RunProgbar,
            RunState,
            SampleGrid,
            StepCheckpoint,
            truncate_log,
        )
        from temzoo.pretraining.checkpoints import CheckpointStore

        objects = {"generator": trainer.generator, "g_optimizer": trainer.g_optimizer}
        if method == "pix2pix":
            objects.update(discriminator=trainer.discriminator, d_optimizer=trainer.d_optimizer)
        # Keras' dropout seed states are not tracked by tf.train.Checkpoint through the models.
        seed_states = [v.value for net in _networks(trainer) for v in net.variables if "seed_generator_state" in v.path]
        if seed_states:
            objects["seed_generators"] = {f"s{i}": v for i, v in enumerate(seed_states)}
        store = CheckpointStore(os.path.join(out, "checkpoints"), objects, keep=keep_checkpoints, writer=writer)
        log_path = os.path.join(out, LOG_NAME)
        state = RunState(batch_size=batch_size, steps_per_epoch=steps_per_epoch, seed=seed)
        resumed_from = 0
        saved = store.restore() if continuing else None
        if saved is not None:
            if saved["steps_per_epoch"] != steps_per_epoch or saved["batch_size"] != batch_size:
                raise RunExistsError(
                    f"{out}: the checkpoint was made with steps_per_epoch={saved['steps_per_epoch']} and "
                    f"batch_size={saved['batch_size']}; resume with the same values or use --overwrite."
                )
            state = RunState.from_dict(saved)
            resumed_from = state.step
            if writer:
                truncate_log(log_path, state.step)
            if verbose:
                print(f"[temzoo] resuming {out} from step {state.step} (epoch {state.epoch}/{epochs}, "
                      f"{state.images_seen} images seen)", flush=True)
        # With no checkpoint to continue from, the run starts again at step 0: earlier records of
        # changes made on resume describe a run that no longer exists.
        resume_changes = _read_resume_changes(out) if saved is not None else []
        if writer:
            from temzoo.pretraining.callbacks import write_json

            os.makedirs(out, exist_ok=True)
            record = os.path.join(out, RESUME_CHANGES)
            # what this continuation changed (where the data lives is not a change to the training)
            changes = {k: v for k, v in (manifest_changes or {}).items() if k != "data_dir"}
            if saved is None:
                if os.path.exists(record):
                    os.remove(record)
            elif changes:
                resume_changes.append({"step": state.step, "changes": changes})
                write_json(record, resume_changes)
            write_json(os.path.join(out, MANIFEST), manifest)

        callbacks = [StepCheckpoint(store, state, checkpoint_every, verbose=verbose),
                     _drop_previous_run_callback(out),
                     CSVHistory(log_path, state, writer=writer),
                     LossCurves(log_path, os.path.join(out, "loss_curves.png"), writer=writer)]
        if sample_noisy is not None:
            callbacks.append(SampleGrid(sample_noisy, sample_clean, os.path.join(out, "samples"), writer=writer))
        if verbose:
            callbacks.append(RunProgbar(epochs))

        for epoch in range(state.epoch, epochs):
            done = state.step - epoch * steps_per_epoch
            if not 0 <= done < steps_per_epoch:
                raise TemzooError(f"{out}: inconsistent checkpoint (step {state.step} in epoch {epoch}).")
            trainer.fit(
                train_data(epoch, done),
                initial_epoch=epoch,
                epochs=epoch + 1,
                steps_per_epoch=steps_per_epoch - done,
                validation_data=val_ds,
                callbacks=callbacks,
                verbose=1 if verbose else 0,
                shuffle=False,
            )

        if writer:
            _settle_previous_run(out)
        metrics = dict(state.metrics)
        # The export: float32 generator + card, atomically; non-chief workers only take part.
        card = None
        if writer and os.path.exists(model_path) and not _export_is_stale(
                model_path, state.step, batch_norm_recalibration_batches):
            from temzoo.cards import card_path as _card_path
            from temzoo.cards import read_card

            card = read_card(_card_path(model_path))
            if verbose:
                print(f"[temzoo] {out} is complete ({state.step} steps); {model_path} is up to date.", flush=True)
        elif writer:
            card = _make_card(trainer, name, model, method, args, data_info, val_split, state, metrics, strategy,
                              normalizer, discriminator, entry)
            if resume_changes:
                card["changes_on_resume"] = resume_changes
            generator = None
            if batch_norm_recalibration_batches:
                generator, card["batch_norm_recalibration"] = _recalibrated_generator(
                    trainer.generator, train_data(epochs, 0), batch_norm_recalibration_batches, batch_size)
            card = trainer.export_generator(model_path, card, generator=generator)
            if verbose:
                print(f"[temzoo] exported {model_path} ({state.step} steps, {state.images_seen} images); "
                      f"metrics: {json.dumps({k: round(v, 4) for k, v in metrics.items()})}", flush=True)
        from temzoo.cards import card_path

        return PretrainResult(
            out=out, model_path=model_path, card_path=card_path(model_path), card=card, metrics=metrics,
            step=state.step, epochs=state.epoch, images_seen=state.images_seen, resumed_from_step=resumed_from,
            log_path=log_path, generator=trainer.generator, trainer=trainer,
        )


def _drop_previous_run_callback(out):
    """A callback that deletes ``out/.previous-run`` as soon as a checkpoint of the new run exists
    (placed after the checkpoint callback)."""
    import keras

    from temzoo.pretraining.checkpoints import has_checkpoint

    class DropPreviousRun(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.backup = os.path.join(out, PREVIOUS_RUN)
            self.pending = os.path.isdir(self.backup)

        def _check(self):
            if self.pending and has_checkpoint(os.path.join(out, "checkpoints")):
                shutil.rmtree(self.backup, ignore_errors=True)
                self.pending = False

        def on_train_batch_end(self, batch, logs=None):
            self._check()

        def on_epoch_end(self, epoch, logs=None):
            self._check()

    return DropPreviousRun()


def _networks(trainer):
    return [trainer.generator] + ([trainer.discriminator] if hasattr(trainer, "discriminator") else [])


def _export_is_stale(model_path, step, recalibration_batches=0):
    from temzoo.cards import card_path, read_card

    try:
        card = read_card(card_path(model_path))
    except BadInputError:
        return True
    if not card:
        return True
    recalibrated = card.get("batch_norm_recalibration", {}).get("batches", 0)
    return card.get("steps") != step or recalibrated != recalibration_batches


def _recalibrated_generator(generator, dataset, batches, batch_size):
    """Precise BN on a float32 copy of ``generator`` from ``batches`` fresh training batches
    (the data of the epoch after the last). The training generator keeps its statistics, so
    checkpoints and resumed runs are unaffected. Returns the copy and the card's record."""
    from temzoo.batch_norm import batch_norm_layers, recalibrate_batch_norm
    from temzoo.precision import float32_copy

    copy = float32_copy(generator, always=True)
    used = recalibrate_batch_norm(copy, (noisy for noisy, _ in dataset.take(batches)))
    return copy, {
        "batches": batches, "images": used * batch_size, "layers": len(batch_norm_layers(copy)),
        "method": "precise BN (Wu & Johnson 2021): each BatchNormalization layer's moving mean and "
                  "variance set to the mean of its batch statistics over fresh training batches",
    }


def _make_card(trainer, name, model, method, args, data_info, val_split, state, metrics, strategy,
               normalizer, discriminator, entry):
    from temzoo.cards import make_card
    from temzoo.precision import resolve_precision

    method_info = {
        "name": method,
        "reference": "Isola et al. 2017, Image-to-Image Translation with Conditional Adversarial Networks"
        if method == "pix2pix" else "encoder-decoder trained with an L1/L2 loss",
        "optimizer": {"name": "Adam", "learning_rate": args["learning_rate"], "beta_1": args["beta_1"],
                      "schedule": args["learning_rate_schedule"]},
        "batch_size": args["batch_size"],
        "replicas": int(strategy.num_replicas_in_sync),
        "strategy": type(strategy).__name__,
        "precision": resolve_precision(args["precision"]),  # what "auto" chose on this machine
        "seed": args["seed"],
    }
    if method == "pix2pix":
        method_info.update(
            l1_lambda=args["l1_lambda"], discriminator=discriminator,
            discriminator_config=trainer.discriminator.get_config(),
        )
    else:
        method_info["loss"] = args["loss"]
    return make_card(
        trainer.generator,
        name=name,
        architecture=model,
        description=entry.get("description"),
        pretext={
            "task": "restore the clean image from a Poisson-noised copy",
            "noise_model": "poisson",
            "dose_range": [float(v) for v in args["dose_range"]],
            "dose_units": "counts per pixel at the image's mean intensity, drawn log-uniformly per image",
            "read_noise": float(args["read_noise"]),
            "patch_size": args["patch_size"],
            "augment": bool(args["augment"]),
        },
        normalization=normalizer.get_config(),
        data={**data_info, "validation_split": val_split, "images_seen": state.images_seen},
        method=method_info,
        steps=state.step,
        epochs=state.epoch,
        metrics=metrics,
    )
