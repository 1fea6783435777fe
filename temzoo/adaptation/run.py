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
import hashlib
import json
import logging
import os
import shutil
import time

import numpy as np

from temzoo.adaptation.config import DEFAULTS, AdaptConfig
from temzoo.errors import BadInputError, TemzooError

log = logging.getLogger(__name__)

MANIFEST = "run.json"
MODEL_FILE = "model.keras"
LOG_FILE = "log.csv"
CHECKPOINTS = "checkpoints"
_RUN_FILES = (MANIFEST, CHECKPOINTS, LOG_FILE, MODEL_FILE, "model.json")
MIN_SIDE = 16


class RunExistsError(TemzooError, FileExistsError):
    """The output directory holds another (or a finished) run."""


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


# ----------------------------------------------------------------------------- inputs
def load_frames(images):
    """``[(name, 2-D float32 frame)]`` from paths (any format ``predict`` reads; stacks give
    one frame each) and/or arrays (2-D, or 3-D stacks)."""
    from temzoo.io import check_readable, iter_frames

    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    images = list(images)
    if not images:
        raise BadInputError("no input images given: pass one or more noisy micrographs.")
    for item in images:  # check every file before reading any
        if isinstance(item, (str, os.PathLike)):
            check_readable(item)
    frames = []
    for index, item in enumerate(images):
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            stack = list(iter_frames(path))
            names = [path] if len(stack) == 1 else [f"{path} (frame {i})" for i in range(len(stack))]
        else:
            array = np.asarray(item)
            if array.ndim == 2:
                stack = [array]
            elif array.ndim == 3:
                stack = list(array)
            else:
                raise BadInputError(f"image {index}: shape {array.shape}; give 2-D images or 3-D stacks (N, H, W).")
            names = [f"image {index}" if len(stack) == 1 else f"image {index} (frame {i})" for i in range(len(stack))]
            if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
                raise BadInputError(f"image {index}: pixel type {array.dtype} is not a real number type.")
        for name, frame in zip(names, stack, strict=True):
            frame = np.asarray(frame, dtype=np.float32)
            if not np.isfinite(frame).all():
                raise BadInputError(f"{name}: has NaN or infinite pixels; replace them (e.g. numpy.nan_to_num).")
            if min(frame.shape) < MIN_SIDE:
                raise BadInputError(f"{name}: {frame.shape[0]}x{frame.shape[1]} pixels is too small to adapt on "
                                    f"(at least {MIN_SIDE}x{MIN_SIDE}).")
            if float(frame.std()) == 0.0:
                raise BadInputError(f"{name}: the image is constant (every pixel {frame.flat[0]:g}); nothing to learn.")
            frames.append((name, frame))
    return frames


def choose_method(config, frames):
    """The method to run: ``config.method``, with ``auto`` resolved (binomial when every frame holds counts)."""
    from temzoo.adaptation.splitting import holds_counts, to_counts

    if config.method == "binomial":
        for name, frame in frames:
            to_counts(frame, config.gain, config.offset, name)  # raises with the file's name
        return "binomial"
    if config.method == "auto":
        if all(holds_counts(frame, config.gain, config.offset) for _, frame in frames):
            return "binomial"
        return "blind_spot"
    return config.method


def _fingerprint(frames):
    digest = hashlib.sha256()
    for _, frame in frames:
        digest.update(np.asarray(frame.shape, np.int64).tobytes())
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- output folder
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


# ----------------------------------------------------------------------------- batches
class PatchSampler:
    """Training batches for step ``k``, drawn from ``(seed, k)`` only (so a resume is exact).

    Frames are picked with probability proportional to their area; each patch gets a random
    crop, flip and quarter turn. Blind spot: patches of the normalised frames, masked.
    Binomial: patches of the counts, split, then normalised with the frame's statistics.
    """

    def __init__(self, frames, method, config, normalizer, patch_size):
        from temzoo.adaptation.splitting import to_counts

        self.method, self.config, self.patch = method, config, int(patch_size)
        self.sources, self.stats = [], []
        for name, frame in frames:
            if method == "binomial":
                counts = to_counts(frame, config.gain, config.offset, name)
                self.stats.append(normalizer.stats(counts))
                self.sources.append(counts.astype(np.float32))
            else:
                normalised, stats = normalizer.before(frame)
                self.stats.append(stats)
                self.sources.append(normalised)
        areas = np.array([s.size for s in self.sources], np.float64)
        self.weights = areas / areas.sum()

    def _crops(self, rng, batch_size):
        p = self.patch
        picks = rng.choice(len(self.sources), size=batch_size, p=self.weights)
        crops = []
        for k in picks:
            source = self.sources[k]
            y = int(rng.integers(0, source.shape[0] - p + 1))
            x = int(rng.integers(0, source.shape[1] - p + 1))
            crop = source[y:y + p, x:x + p]
            crop = np.rot90(crop, int(rng.integers(4)))
            if rng.integers(2):
                crop = crop[:, ::-1]
            crops.append((k, np.ascontiguousarray(crop)))
        return crops

    def batch(self, step):
        """``(inputs, targets, weights)`` for step ``step``, each ``(N, P, P, 1)`` float32."""
        from temzoo.adaptation.masking import blind_spot_batch
        from temzoo.adaptation.splitting import binomial_split

        rng = np.random.default_rng([self.config.seed, int(step)])
        crops = self._crops(rng, self.config.batch_size)
        if self.method == "blind_spot":
            return blind_spot_batch([c for _, c in crops], self.config.mask_fraction, self.config.neighbourhood, rng)
        inputs, targets = [], []
        for k, crop in crops:
            first, second = binomial_split(crop, self.config.split_fraction, rng)
            offset, scale = self.stats[k]
            inputs.append((first - offset) / scale)
            targets.append((second - offset) / scale)
        inputs = np.stack(inputs)[..., None].astype(np.float32)
        targets = np.stack(targets)[..., None].astype(np.float32)
        return inputs, targets, np.ones_like(targets)

    def plain(self, step):
        """Unmasked, unsplit normalised patches (what the model sees at prediction), for precise BN."""
        rng = np.random.default_rng([self.config.seed, 10**9 + int(step)])
        out = []
        for k, crop in self._crops(rng, self.config.batch_size):
            offset, scale = self.stats[k]
            out.append(crop if self.method == "blind_spot" else (crop - offset) / scale)
        return np.stack(out)[..., None].astype(np.float32)


# ----------------------------------------------------------------------------- training
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


def _patch_size(config, frames, stride):
    side = min(min(frame.shape) for _, frame in frames)
    patch = min(config.patch_size, side) // stride * stride
    if patch < max(stride, MIN_SIDE):
        smallest = min(frames, key=lambda f: min(f[1].shape))[0]
        raise BadInputError(f"{smallest}: too small for this model (its sides must be at least "
                            f"{max(stride, MIN_SIDE)} pixels, the model's stride being {stride}).")
    return patch


def _append_log(path, row):
    from temzoo.pretraining.callbacks import append_row

    append_row(path, row)


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
    import keras

    from temzoo import tasks
    from temzoo.inference.precision import float32_copy, precision_copy, resolve_precision
    from temzoo.pretraining.checkpoints import CheckpointStore
    from temzoo.tasks.backbone import resolve_model
    from temzoo.zoo.pretrained import attach_card
    from temzoo.zoo.pretrained import card as card_of

    started = time.time()
    config = (config or DEFAULTS).replace(**settings) if settings else (config or DEFAULTS)
    if not isinstance(config, AdaptConfig):
        raise TypeError(f"config must be an AdaptConfig, got {type(config).__name__}.")
    out = os.fspath(out)
    frames = load_frames(images)
    method = choose_method(config, frames)
    resolved = resolve_model(model)
    from temzoo.inference.tiling import model_stride

    patch = _patch_size(config, frames, model_stride(resolved.model))  # refuse too-small images before writing
    manifest = {
        "model": resolved.name,
        "model_source": resolved.source,
        "model_sha256": resolved.sha256,
        "inputs": [name for name, _ in frames],
        "inputs_sha256": _fingerprint(frames),
        "method": method,
        "config": config.as_dict(),
    }
    continuing = prepare_out(out, manifest, overwrite)
    os.makedirs(out, exist_ok=True)
    from temzoo.atomic import write_text

    write_text(os.path.join(out, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    if resolved.random_init:
        log.info("%s: architecture with random weights; adapting from scratch.", resolved.name)

    keras.utils.set_random_seed(config.seed)
    task_model = tasks.denoising(resolved, loss="l2", head=config.head)
    draft = card_of(task_model) or {}
    if resolve_precision(config.precision) != "float32":
        task_model = attach_card(precision_copy(task_model, config.precision), draft)
    normalizer = tasks.normalizer_of(draft)
    sampler = PatchSampler(frames, method, config, normalizer, patch)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.steps, alpha=0.0)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    optimizer.build(task_model.trainable_variables)
    store = CheckpointStore(os.path.join(out, CHECKPOINTS), {"model": task_model, "optimizer": optimizer},
                            keep=config.keep_checkpoints)
    state = store.restore() if continuing else None
    start = int(state["step"]) if state else 0
    if start:
        log.info("%s: resuming at step %d of %d.", out, start, config.steps)
        from temzoo.pretraining.callbacks import truncate_log

        truncate_log(os.path.join(out, LOG_FILE), start)
    log.info("adapting %s (%s, head %s, batch norm %s) on %d frame(s) with %s: %d steps of %d patches of %d px.",
             resolved.name, resolved.source, draft.get("head"), draft.get("batch_norm"), len(frames), method,
             config.steps, config.batch_size, patch)

    train_step = make_train_step(task_model, optimizer)
    losses, since = [], []
    for step in range(start, config.steps):
        inputs, targets, weights = sampler.batch(step)
        loss = float(train_step(inputs, targets, weights))
        if not np.isfinite(loss):
            raise TemzooError(f"the loss became {loss} at step {step + 1}; lower the learning rate "
                              f"(now {config.learning_rate}).")
        losses.append(loss)
        since.append(loss)
        done = step + 1
        if progress is not None:
            progress(done, config.steps, loss)
        if callback is not None:
            callback(done, task_model)
        if done % 10 == 0 or done == config.steps:
            _append_log(os.path.join(out, LOG_FILE), {
                "step": done, "learning_rate": f"{float(schedule(done - 1)):.6g}", "loss": f"{np.mean(since):.6g}",
                "seconds": f"{time.time() - started:.1f}",
            })
            since = []
        if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
            store.save(done, {"loss": float(np.mean(losses[-config.checkpoint_every:]))})

    recalibrated = 0
    if draft.get("batch_norm") == "train" and config.recalibration_batches:
        from temzoo.training.batch_norm import recalibrate_batch_norm

        recalibrated = recalibrate_batch_norm(task_model, (sampler.plain(i) for i in range(config.recalibration_batches)))
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    final_loss = float(np.mean(tail)) if tail else float("nan")
    store.save(config.steps, {"loss": final_loss})
    model_path = os.path.join(out, MODEL_FILE)
    exported = float32_copy(task_model)  # itself when float32
    if exported is not task_model:
        attach_card(exported, draft)
    card = tasks.save(
        exported, model_path,
        adaptation={
            "method": method,
            "from": {"name": resolved.name, "source": resolved.source, "sha256": resolved.sha256,
                     "random_init": resolved.random_init},
            "inputs": [os.path.basename(name) for name, _ in frames],
            "patch_size_used": patch,
            "final_loss": final_loss,
            "batch_norm_recalibration_batches": recalibrated,
            "settings": config.as_dict(),
            "reference": ("Noise2Void blind spot (Krull et al. 2019) with N2V2's median replacement (Hoeck et al. "
                          "2022)" if method == "blind_spot" else
                          "binomial splitting of counts into two independent halves (Poisson thinning), "
                          "Noise2Noise (Lehtinen et al. 2018)"),
        },
        steps=config.steps,
    )
    seconds = time.time() - started
    log.info("wrote %s (%.0f s).", model_path, seconds)
    return AdaptResult(task_model, model_path, card, method, config.steps, start, final_loss, seconds)
