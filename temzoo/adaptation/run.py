"""``adapt()``: fine-tune a denoiser on a user's own noisy micrographs, without clean targets.

Output directory (``out``)::

    run.json             the run's settings, model and inputs (what a re-run must match to resume)
    checkpoints/         atomic numbered checkpoints (temzoo.pretraining.checkpoints)
    log.csv              step, learning rate, mean loss since the previous row
    model.keras, model.json   the adapted model and its card (at the end, atomically)

Re-running the same call (or the same ``temzoo-cli adapt`` command) after an interruption
resumes from the last checkpoint: weights, optimizer state and step. Each step's patches,
masks and splits are drawn from ``(seed, step)``, so a resumed run takes the same steps as
one that was never interrupted. A directory holding a different or finished run is refused
unless ``overwrite=True``.
"""


import dataclasses
import json
import logging
import os
import time

import numpy as np

from temzoo.adaptation.config import DEFAULTS, AdaptConfig
from temzoo.adaptation.folder import (
    CHECKPOINTS,
    LOG_FILE,
    MANIFEST,
    MODEL_FILE,
    RunExistsError,
    prepare_out,
)
from temzoo.adaptation.inputs import choose_method, fingerprint, load_frames, patch_side
from temzoo.errors import TemzooError

log = logging.getLogger(__name__)

__all__ = ["AdaptResult", "RunExistsError", "adapt", "make_train_step"]

REFERENCES = {
    "blind_spot": "Noise2Void blind spot (Krull et al. 2019) with N2V2's median replacement (Hoeck et al. 2022)",
    "binomial": "binomial splitting of counts into two independent halves (Poisson thinning), Noise2Noise "
                "(Lehtinen et al. 2018)",
}


@dataclasses.dataclass
class AdaptResult:
    """What :func:`adapt` produced: the adapted model (in memory and at ``model_path``),
    its card, the method used, the final step, the step it resumed from (0 for a new run),
    the mean loss of the last tenth of the steps and the seconds spent in this call."""

    model: object
    model_path: str
    card: dict
    method: str
    step: int
    resumed_from_step: int
    final_loss: float
    seconds: float


def adapt(model, images, *, out, config=None, overwrite=False, progress=None, callback=None, **settings):
    """Adapt ``model`` to noisy micrographs ``images`` self-supervised; write ``out/model.keras``.

    Args:
        model: a pretrained name (``hrnet_pretrained``), a ``.keras`` file (e.g. an
            earlier adaptation), a Keras model, or an architecture name (random weights:
            Noise2Void from scratch).
        images: file path(s) in any format ``temzoo-cli predict`` reads (stacks give every
            frame), and/or 2-D arrays or 3-D stacks. Only noisy images: no clean targets.
        out: output folder (see the module docstring).
        config: an :class:`AdaptConfig`; keyword ``settings`` override its fields
            (``method="blind_spot"``, ``steps=100``, ``gain=...``).
        overwrite: replace a different or finished run in ``out``.
        progress: optional ``callable(step, steps, loss)`` after every step.
        callback: optional ``callable(step, model)`` after every step (e.g. to evaluate the
            model along the way, as ``benchmarks/adapt.py`` does).

    Returns an :class:`AdaptResult`. The model keeps the backbone's denoising head when it
    has one (``head="auto"``), trains with BatchNormalization frozen in inference mode on
    trained weights, and is exported with a card (task ``denoising``, normalisation, the
    adaptation's settings and inputs), so ``temzoo.load`` and ``temzoo-cli predict
    --model out/model.keras`` use it like any denoiser.
    """
    from temzoo.inference.tiling import model_stride
    from temzoo.tasks.backbone import resolve_model

    started = time.time()
    config = (config or DEFAULTS).replace(**settings) if settings else (config or DEFAULTS)
    if not isinstance(config, AdaptConfig):
        raise TypeError(f"config must be an AdaptConfig, got {type(config).__name__}.")
    out = os.fspath(out)
    frames = load_frames(images)
    method = choose_method(config, frames)
    resolved = resolve_model(model)
    patch = patch_side(config, frames, model_stride(resolved.model))  # refuse too-small images before writing
    manifest = {"model": resolved.name, "model_source": resolved.source, "model_sha256": resolved.sha256,
                "inputs": [name for name, _ in frames], "inputs_sha256": fingerprint(frames), "method": method,
                "config": config.as_dict()}
    continuing = prepare_out(out, manifest, overwrite)
    os.makedirs(out, exist_ok=True)
    from temzoo.atomic import write_text

    write_text(os.path.join(out, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    if resolved.random_init:
        log.info("%s: architecture with random weights; adapting from scratch.", resolved.name)
    run = _Training(resolved, frames, method, config, patch, out)
    start = run.restore() if continuing else 0
    log.info("adapting %s (%s, head %s, batch norm %s) on %d frame(s) with %s: %d steps of %d patches of %d px.",
             resolved.name, resolved.source, run.draft.get("head"), run.draft.get("batch_norm"), len(frames), method,
             config.steps, config.batch_size, patch)
    losses = run.train(start, started, progress, callback)
    final_loss, model_path, card = run.export(losses, {
        "method": method,
        "from": {"name": resolved.name, "source": resolved.source, "sha256": resolved.sha256,
                 "random_init": resolved.random_init},
        "inputs": [os.path.basename(name) for name, _ in frames],
        "patch_size_used": patch,
        "settings": config.as_dict(),
        "reference": REFERENCES[method],
    })
    seconds = time.time() - started
    log.info("wrote %s (%.0f s).", model_path, seconds)
    return AdaptResult(run.model, model_path, card, method, config.steps, start, final_loss, seconds)


def make_train_step(model, optimizer):
    """A compiled step: weighted mean squared error, one Adam update; returns the loss."""
    import tensorflow as tf

    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def train_step(inputs, targets, weights):
        with tf.GradientTape() as tape:
            predictions = tf.cast(model(inputs, training=True), tf.float32)
            loss = tf.reduce_sum(weights * tf.square(predictions - targets)) / tf.maximum(tf.reduce_sum(weights), 1.0)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return train_step


class _Training:
    """One run's task model, sampler, optimizer and checkpoints: restore, train, export."""

    def __init__(self, resolved, frames, method, config, patch, out):
        import keras

        from temzoo import tasks
        from temzoo.adaptation.sampler import PatchSampler
        from temzoo.inference.precision import precision_copy, resolve_precision
        from temzoo.pretraining.checkpoints import CheckpointStore
        from temzoo.zoo.pretrained import card

        self.config, self.out = config, out
        keras.utils.set_random_seed(config.seed)
        self.model = tasks.denoising(resolved, loss="l2", head=config.head, batch_norm=config.batch_norm)
        self.draft = card(self.model) or {}
        if resolve_precision(config.precision) != "float32":
            self.model = precision_copy(self.model, config.precision)
        self.sampler = PatchSampler(frames, method, config, tasks.normalizer_of(self.draft), patch)
        self.schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.steps,
                                                               alpha=0.0)
        self.optimizer = keras.optimizers.Adam(learning_rate=self.schedule)
        self.optimizer.build(self.model.trainable_variables)
        self.store = CheckpointStore(os.path.join(out, CHECKPOINTS), {"model": self.model, "optimizer": self.optimizer},
                                     keep=config.keep_checkpoints)

    def restore(self):
        """The step of the last checkpoint (0 when none), its weights and optimizer state loaded."""
        from temzoo.pretraining.callbacks import truncate_log

        state = self.store.restore()
        start = int(state["step"]) if state else 0
        if start:
            log.info("%s: resuming at step %d of %d.", self.out, start, self.config.steps)
            truncate_log(os.path.join(self.out, LOG_FILE), start)
        return start

    def train(self, start, started, progress, callback):
        """Steps ``start`` to ``config.steps``, logging every 10 and checkpointing; returns the losses."""
        from temzoo.pretraining.callbacks import append_row

        config, train_step = self.config, make_train_step(self.model, self.optimizer)
        losses, since = [], []
        for step in range(start, config.steps):
            loss = float(train_step(*self.sampler.batch(step)))
            if not np.isfinite(loss):
                raise TemzooError(f"the loss became {loss} at step {step + 1}; lower the learning rate "
                                  f"(now {config.learning_rate}).")
            losses.append(loss)
            since.append(loss)
            done = step + 1
            if progress is not None:
                progress(done, config.steps, loss)
            if callback is not None:
                callback(done, self.model)
            if done % 10 == 0 or done == config.steps:
                append_row(os.path.join(self.out, LOG_FILE), {
                    "step": done, "learning_rate": f"{float(self.schedule(done - 1)):.6g}",
                    "loss": f"{np.mean(since):.6g}", "seconds": f"{time.time() - started:.1f}"})
                since = []
            if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
                self.store.save(done, {"loss": float(np.mean(losses[-config.checkpoint_every:]))})
        return losses

    def export(self, losses, record):
        """Precise BN where BatchNormalization trained, the last checkpoint, then ``model.keras`` and its card
        (``record`` plus the final loss under ``adaptation``); returns ``(final_loss, path, card)``."""
        from temzoo import tasks
        from temzoo.inference.precision import float32_copy
        from temzoo.zoo.pretrained import attach_card

        recalibrated = 0
        if self.draft.get("batch_norm") == "train" and self.config.recalibration_batches:
            from temzoo.training.batch_norm import recalibrate_batch_norm, training_forward

            batches = (self.sampler.plain(i) for i in range(self.config.recalibration_batches))
            recalibrated = recalibrate_batch_norm(self.model, batches, training_forward(self.model))
        tail = losses[-max(1, len(losses) // 10):] if losses else []
        final_loss = float(np.mean(tail)) if tail else float("nan")
        self.store.save(self.config.steps, {"loss": final_loss})
        path = os.path.join(self.out, MODEL_FILE)
        exported = float32_copy(self.model)  # itself when float32
        if exported is not self.model:
            attach_card(exported, self.draft)
        card = tasks.save(exported, path, steps=self.config.steps, adaptation={
            **record, "final_loss": final_loss, "batch_norm_recalibration_batches": recalibrated})
        return final_loss, path, card
