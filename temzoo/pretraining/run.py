"""``pretrain()``: one resumable pretraining run from a model name and a dataset to an
exported generator with its model card.

Run directory (``out``)::

    run.json                the run manifest: every setting (PretrainConfig.manifest())
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
settings, e.g. more epochs; only those marked resumable in
:class:`~temzoo.pretraining.config.PretrainConfig` may change) or
``overwrite=True`` (replace that run and start afresh).

Nothing is lost to a mistake: every setting, the dataset, the models and one
training batch are checked before ``out`` is changed. With ``overwrite=True`` the
previous run's files are moved into ``out/.previous-run/`` and deleted only once
the new run has written its first checkpoint (:mod:`temzoo.pretraining.rundir`).
Only one run may use ``out`` at a time: an exclusive lock (:mod:`temzoo.runlock`)
makes a second run fail naming the holder.

Messages (resuming, checkpoints, the export) go to the ``temzoo.pretraining`` loggers at
INFO (DEBUG with ``verbose=0``); ``temzoo.logs.configure()`` shows them as the CLI does.
"""

import contextlib
import dataclasses
import logging
import os

from temzoo.errors import TemzooError
from temzoo.names import PRETRAIN_METHODS as METHODS  # noqa: F401  (public name)
from temzoo.pretraining.config import DEFAULTS, MANIFEST, PretrainConfig  # noqa: F401  (public names)
from temzoo.pretraining.rundir import (  # noqa: F401  (public names)
    LOG_NAME,
    PREVIOUS_RUN,
    RESUME_CHANGES,
    RunExistsError,
)
from temzoo.pretraining.trainer import adam_optimizer  # noqa: F401  (public name)

logger = logging.getLogger(__name__)


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


def pretrain(model=None, dataset=None, method=None, *, out, config=None, resume=False, overwrite=False, verbose=1,
             **settings):
    """Pretrain ``model`` on the Poisson-denoising pretext task; export the generator with a card.

    Resumable: re-running the same call continues from the last checkpoint (weights, optimizer
    states, dropout seed states, step counter; the data position is restored by seeding each
    epoch by ``(seed, epoch)`` and skipping the batches already done).

    Args:
        model, dataset, method: the architecture, the images and ``"pix2pix"`` or
            ``"autoencoder"`` (fields of :class:`PretrainConfig`, given first for short calls).
        out: run directory (see the module docstring).
        config: a :class:`PretrainConfig` (default: its defaults).
        resume, overwrite: what to do with an output directory holding a different run.
        verbose: 1 shows Keras' progress bar and logs the run's messages at INFO; 0 at DEBUG.
        **settings: any other field of :class:`PretrainConfig` (``epochs=12``,
            ``patch_size=64``, ...), overriding ``config``; ``help(PretrainConfig)``
            lists them with their defaults.

    Returns:
        :class:`PretrainResult`.
    """
    positional = {k: v for k, v in (("model", model), ("dataset", dataset), ("method", method)) if v is not None}
    config = config or DEFAULTS
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}.")
    if positional or settings:
        config = config.replace(**positional, **settings)
    return _Run(config, os.path.abspath(os.fspath(out)), verbose).run(resume, overwrite)


def _check_names(config):
    """Unknown model / discriminator / dataset fail before anything is built; returns nothing."""
    from temzoo.models import registry

    entry = registry.architecture(config.model)
    if entry.get("kind", "dense") != "dense":
        raise ValueError(f"{config.model!r} is a {entry['kind']}, not a dense model; pretrain a model from "
                         "temzoo.list_architectures(kind='dense').")
    if config.method == "pix2pix":
        d_entry = registry.architecture(config.discriminator)
        if d_entry.get("kind") != "discriminator":
            raise ValueError(f"discriminator={config.discriminator!r} is not a discriminator; choose one of "
                             f"{', '.join(registry.list_architectures(kind='discriminator'))}.")
    if isinstance(config.dataset, str):
        from temzoo import datasets

        datasets.resolve(config.dataset)


def _check_patch_fits(config):
    """The patch size must fit the model's stride: checked on a built model, before data or training."""
    from temzoo.models import registry
    from temzoo.models.layers import SizeCheck

    probe = registry.build(config.model, **(config.model_overrides or {}))
    SizeCheck.check(config.patch_size, config.patch_size, int(getattr(probe, "total_stride", 1)),
                    model_name=config.model)


class _Run:
    """One call of :func:`pretrain`: the steps from the checks to the export, in order."""

    def __init__(self, config, out, verbose):
        from temzoo.training import distribute

        self.config, self.out, self.verbose = config, out, verbose
        self.level = logging.INFO if verbose else logging.DEBUG
        self.model_path = os.path.join(out, f"{config.run_name}.keras")
        self.log_path = os.path.join(out, LOG_NAME)
        _check_names(config)
        self.strategy = distribute.get_strategy(config.devices)
        self.writer = distribute.is_chief(self.strategy)
        distribute.check_global_batch(self.strategy, config.batch_size)
        self.manifest = config.manifest()

    def run(self, resume, overwrite):
        from temzoo.runlock import RunLock

        if self.writer:
            from temzoo.atomic import check_writable_dir

            check_writable_dir(self.out)  # a clear error now, not a PermissionError after the models are built
        # One run at a time in ``out`` (non-chief workers only take part in the chief's run).
        lock = RunLock(self.out, "pretraining run") if self.writer else contextlib.nullcontext()
        with lock, contextlib.ExitStack() as undo:
            trainer, data, samples, changes = self._prepare(resume, overwrite, undo)
            state, resumed_from, resume_changes = self._restore(trainer, changes)
            self._train(trainer, data, state, samples)
            return self._finish(trainer, data, state, resumed_from, resume_changes)

    def _prepare(self, resume, overwrite, undo):
        """Everything that is checked before ``out`` changes; then an overwritten run is set aside.

        Returns the trainer, the data, the sample patches and the manifest changes (None: a new run).
        """
        import keras

        from temzoo.pretraining import rundir
        from temzoo.pretraining.inputs import PretextData
        from temzoo.pretraining.trainer import trainer_from_config

        if self.writer:
            rundir.settle_previous_run(self.out)  # a run started with overwrite that was killed before its checkpoint
            rundir.remove_partials(self.out)  # temporary files of a killed run (only the lock holder writes here)
        changes = rundir.prepare_out(self.out, self.manifest, resume, overwrite)
        _check_patch_fits(self.config)
        data = PretextData.load(self.config, self.verbose)
        keras.utils.set_random_seed(self.config.seed)
        trainer = trainer_from_config(self.strategy, self.config)
        # One batch of each pipeline before ``out`` changes: images the patch does not fit, or any
        # other problem with the data, fail here with the previous run untouched.
        samples = data.first_batches(self.config.samples)
        # Everything is checked: from here on ``out`` changes. An overwritten run waits in
        # out/.previous-run until the new one has a checkpoint, and comes back if it fails before.
        if self.writer and overwrite and changes is None and rundir.set_aside_run(self.out):
            undo.push(lambda kind, error, trace: kind is not None and rundir.settle_previous_run(self.out) and False)
        return trainer, data, samples, changes

    def _restore(self, trainer, changes):
        """The checkpoint store and run state (restored when the run continues); writes the manifest.

        Returns the :class:`RunState`, the step resumed from and the changes made on resume so far.
        """
        from temzoo.pretraining import rundir
        from temzoo.pretraining.callbacks import RunState, truncate_log
        from temzoo.pretraining.checkpoints import CheckpointStore
        from temzoo.pretraining.trainer import checkpoint_objects

        c = self.config
        self.store = CheckpointStore(os.path.join(self.out, "checkpoints"), checkpoint_objects(trainer),
                                     keep=c.keep_checkpoints, writer=self.writer)
        state = RunState(batch_size=c.batch_size, steps_per_epoch=c.steps_per_epoch, seed=c.seed)
        saved = self.store.restore() if changes is not None else None
        if saved is not None:
            if saved["steps_per_epoch"] != c.steps_per_epoch or saved["batch_size"] != c.batch_size:
                raise RunExistsError(
                    f"{self.out}: the checkpoint was made with steps_per_epoch={saved['steps_per_epoch']} and "
                    f"batch_size={saved['batch_size']}; resume with the same values or use --overwrite."
                )
            state = RunState.from_dict(saved)
            if self.writer:
                truncate_log(self.log_path, state.step)
            logger.log(self.level, "resuming %s from step %d (epoch %d/%d, %d images seen)", self.out, state.step,
                       state.epoch, c.epochs, state.images_seen)
        resume_changes = []  # what the card repeats: only the chief writes files and makes the card
        if self.writer:
            os.makedirs(self.out, exist_ok=True)
            resume_changes = rundir.record_resume_changes(self.out, changes, state.step, saved is not None)
            c.write_manifest(self.out)
        return state, (state.step if saved is not None else 0), resume_changes

    def _callbacks(self, state, samples):
        from temzoo.pretraining.callbacks import (
            CSVHistory,
            DropPreviousRun,
            LossCurves,
            RunProgbar,
            SampleGrid,
            StepCheckpoint,
        )

        out, writer = self.out, self.writer
        callbacks = [StepCheckpoint(self.store, state, self.config.checkpoint_interval, verbose=self.verbose),
                     DropPreviousRun(out),
                     CSVHistory(self.log_path, state, writer=writer),
                     LossCurves(self.log_path, os.path.join(out, "loss_curves.png"), writer=writer)]
        noisy, clean = samples
        if noisy is not None:
            callbacks.append(SampleGrid(noisy, clean, os.path.join(out, "samples"), writer=writer))
        if self.verbose:
            callbacks.append(RunProgbar(self.config.epochs))
        return callbacks

    def _train(self, trainer, data, state, samples):
        """``fit`` one epoch at a time from the run's position to ``epochs``."""
        c = self.config
        callbacks = self._callbacks(state, samples)
        for epoch in range(state.epoch, c.epochs):
            done = state.step - epoch * c.steps_per_epoch
            if not 0 <= done < c.steps_per_epoch:
                raise TemzooError(f"{self.out}: inconsistent checkpoint (step {state.step} in epoch {epoch}).")
            trainer.fit(data.train(epoch, done), initial_epoch=epoch, epochs=epoch + 1,
                        steps_per_epoch=c.steps_per_epoch - done, validation_data=data.validation,
                        callbacks=callbacks, verbose=1 if self.verbose else 0, shuffle=False)

    def _finish(self, trainer, data, state, resumed_from, resume_changes):
        """The export (the chief's: non-chief workers only take part) and the result."""
        from temzoo.pretraining import rundir
        from temzoo.pretraining.export import export
        from temzoo.zoo.cards import card_path

        card = None
        if self.writer:
            rundir.settle_previous_run(self.out)
            card = export(trainer, self.config, data, state, self.strategy, self.model_path, resume_changes,
                          self.level)
        return PretrainResult(
            out=self.out, model_path=self.model_path, card_path=card_path(self.model_path), card=card,
            metrics=dict(state.metrics), step=state.step, epochs=state.epoch, images_seen=state.images_seen,
            resumed_from_step=resumed_from, log_path=self.log_path, generator=trainer.generator, trainer=trainer,
        )
