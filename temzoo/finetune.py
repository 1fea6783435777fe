"""Fine-tune a model on a labelled dataset: the library side of ``temzoo-cli finetune``.

    >>> from temzoo.finetune import finetune
    >>> result = finetune("hrnet_pretrained", "synthetic_tem/au_np", "segmentation", out="runs/au_np")
    >>> result["validation"], result["test"]   # best epoch's validation metrics; test split metrics

What it writes in ``out``:

* ``model.keras`` + ``model.json``: the best model (lowest validation loss),
  with its card (task, normalisation, backbone and its sha256, dataset,
  fraction, seed, metrics);
* ``metrics.json``: best epoch, its validation metrics, the test split's
  metrics (:func:`temzoo.evaluate.evaluate`), the full history, timing;
* ``learning_curves.png``: loss and metrics per epoch, training and validation;
* ``overlays/validation_NNN.png``: predictions of the best model on the first
  validation images (titled panels: prediction | ground truth for
  segmentation, input | prediction | target for restoration).

A run is written into a hidden staging folder beside ``out``
(``.NAME.partial-PID-*``) and replaces ``out`` only when it is complete, in
one atomic directory exchange (two renames where the system has none), so
``out`` always holds either the previous finished run or the new one, never a
mix, even after ``kill -9``; staging folders of dead runs are removed by the
next run. An existing run in ``out`` is refused unless ``overwrite=True``, and a
folder holding anything but a run's files is never replaced.

Training stops with :class:`TrainingDivergedError` as soon as the loss is not
finite (NaN or infinite), before anything is written to ``out``.

The defaults (:data:`DEFAULTS`, also the CLI's) are the README command's,
chosen to fit in about 3 minutes on 2 CPU cores; ``benchmarks/quickstart.py``
measures them (test IoU, border of the predictions, wall and CPU time).
"""

import ctypes
import itertools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

from temzoo.atomic import pid_alive
from temzoo.errors import BadInputError, TemzooError
from temzoo.names import FINETUNE_DEFAULTS, SCHEDULES

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
OVERLAY_DIR = "overlays"
RUN_FILES = (MODEL_FILE, CARD_FILE, METRICS_FILE, CURVES_FILE, OVERLAY_DIR)

# The fine-tuning defaults live in temzoo.names (the CLI reads them from there too).
DEFAULTS = FINETUNE_DEFAULTS


class TrainingDivergedError(TemzooError):
    """The training loss became NaN or infinite."""


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


# ----------------------------------------------------------------------------- staging folder
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
    from temzoo.atomic import _fsync_dir

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
    _fsync_dir(os.path.dirname(out))


# ----------------------------------------------------------------------------- callbacks
def _callbacks():
    """The Keras callbacks (defined lazily: importing this module does not import Keras)."""
    import keras

    class BestModelExporter(keras.callbacks.Callback):
        """Export the model (atomically, with its card) whenever ``monitor`` reaches a new minimum."""

        def __init__(self, path, monitor, card_fields, echo=print):
            super().__init__()
            self.path, self.monitor, self.card_fields, self.echo = path, monitor, card_fields, echo
            self.best = math.inf
            self.best_epoch = None
            self.best_logs = {}

        def on_epoch_end(self, epoch, logs=None):
            from temzoo.tasks import save

            logs = dict(logs or {})
            value = logs.get(self.monitor)
            if value is None:
                raise BadInputError(f"cannot select the best model: no {self.monitor!r} in the logs ({sorted(logs)}).")
            if value < self.best:
                self.best, self.best_epoch, self.best_logs = float(value), epoch + 1, logs
                metrics = {k[4:]: float(v) for k, v in logs.items() if k.startswith("val_")}
                save(self.model, self.path, **self.card_fields, epoch=epoch + 1, metrics={"validation": metrics})
                self.echo(f"epoch {epoch + 1}: {self.monitor} improved to {value:.4f}; kept this model")

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        """Raise :class:`TrainingDivergedError` on the first NaN or infinite (validation) loss."""

        def __init__(self, learning_rate):
            super().__init__()
            self.learning_rate = learning_rate
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def _check(self, key, logs, where):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                self.model.stop_training = True
                raise TrainingDivergedError(
                    f"Training diverged: the {'validation ' if key.startswith('val_') else ''}loss became {value} "
                    f"{where}. Nothing was saved. Lower --learning-rate (it was {self.learning_rate:g}; "
                    "try 10x smaller) or check the data for NaN pixels."
                )

        def on_train_batch_end(self, batch, logs=None):
            self._check("loss", logs, f"at step {batch + 1} of epoch {self.epoch + 1}")

        def on_epoch_end(self, epoch, logs=None):
            self._check("val_loss", logs, f"after epoch {epoch + 1}")

    class StepProgress(keras.callbacks.Callback):
        """A line per ``interval`` seconds (and per epoch): step, loss, seconds per step, time left."""

        def __init__(self, epochs, steps, echo, interval=10.0):
            super().__init__()
            self.epochs, self.steps, self.echo, self.interval = epochs, steps, echo, interval
            self.done = 0
            self.started = self.last = self.first = None
            self.epoch = 0

        def on_train_begin(self, logs=None):
            self.started = self.last = time.time()
            self.echo(f"training: {self.epochs} epoch(s) of {self.steps} steps; the first step also builds the "
                      "training graph (slower)")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            now = time.time()
            if self.done == 1:
                self.first = now  # the first step includes building the graph: not a measure of speed
            if now - self.last >= self.interval or batch + 1 == self.steps or self.done == 1:
                self.last = now
                loss = (logs or {}).get("loss")
                line = f"epoch {self.epoch + 1}/{self.epochs}  step {batch + 1}/{self.steps}  loss {float(loss):.4f}"
                if self.done > 1:
                    rate = (now - self.first) / (self.done - 1)
                    left = rate * (self.epochs * self.steps - self.done)
                    line += f"  {rate:.1f} s/step, about {left:.0f} s of training left"
                else:
                    line += f"  (first step, with graph building: {now - self.started:.0f} s)"
                self.echo(line)

        def on_epoch_end(self, epoch, logs=None):
            shown = {k: v for k, v in (logs or {}).items() if k.startswith("val_")}
            if shown:
                self.echo(f"epoch {epoch + 1}/{self.epochs} validation: "
                          + ", ".join(f"{k[4:]} {float(v):.4f}" for k, v in shown.items()))

    class PreciseBatchNorm(keras.callbacks.Callback):
        """Before every validation, set BatchNormalization's moving statistics from ``count`` training batches.

        Fine-tuning moves the weights faster than the moving averages follow
        (momentum 0.9: after 15 steps a fifth of the pretrained statistics
        remain), and inference-mode predictions then differ from what was
        trained, most at the image border, where zero padding makes the
        features least typical: a false-positive frame (issue 15). Precise BN
        (:func:`temzoo.batch_norm.recalibrate_batch_norm`) removes the lag; the
        validated and exported model uses statistics of its own weights.
        """

        def __init__(self, inputs, count):
            super().__init__()
            self.inputs, self.count = inputs, int(count)
            self.batches_used = 0
            self._iterator = None

        def on_test_begin(self, logs=None):
            from temzoo.batch_norm import recalibrate_batch_norm

            if self._iterator is None:
                self._iterator = iter(self.inputs)
            batches = itertools.islice(self._iterator, self.count)
            self.batches_used = recalibrate_batch_norm(self.model, batches)

    return BestModelExporter, StopOnNonFiniteLoss, StepProgress, PreciseBatchNorm


def _inputs_only(inputs, targets):
    return inputs


def _load_split(name, split, data_dir, config):
    from temzoo import datasets

    return datasets.load(name, split, data_dir=data_dir, config=config)


def _has_split(name, split, data_dir, config):
    if not isinstance(name, str):
        return False
    try:
        _load_split(name, split, data_dir, config)
    except BadInputError:  # "has no split ..."
        return False
    return True


def _count(ds):
    n = int(ds.cardinality())
    if n < 0:
        n = sum(1 for _ in ds)
    return n


def _stride(model):
    from temzoo.tiling import model_stride

    return model_stride(model)


def learning_rate_schedule(learning_rate, schedule, total_steps):
    """The optimizer's rate: a float (``constant``) or cosine decay to 0 over ``total_steps`` (``cosine``)."""
    if schedule not in SCHEDULES:
        raise BadInputError(f"schedule={schedule!r} is not supported; choose one of: {', '.join(SCHEDULES)}.")
    if schedule == "constant":
        return learning_rate
    import keras

    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(int(total_steps), 1))


def finetune(
    model,
    dataset="synthetic_tem/au_np",
    task="segmentation",
    *,
    out,
    train_fraction=DEFAULTS["train_fraction"],
    epochs=DEFAULTS["epochs"],
    batch_size=DEFAULTS["batch_size"],
    patch_size=DEFAULTS["patch_size"],
    freeze=DEFAULTS["freeze"],
    learning_rate=DEFAULTS["learning_rate"],
    schedule=DEFAULTS["schedule"],
    num_classes=2,
    seed=DEFAULTS["seed"],
    data_dir=None,
    dataset_config=None,
    steps_per_epoch=DEFAULTS["steps_per_epoch"],
    validation_steps=None,
    validation_images=DEFAULTS["validation_images"],
    test_split=DEFAULTS["test_split"],
    overlays=DEFAULTS["overlays"],
    batch_norm_batches=DEFAULTS["batch_norm_batches"],
    overwrite=False,
    progress="auto",
    echo=None,
):
    """Fine-tune ``model`` (pretrained name, architecture name, ``.keras`` path or Keras model).

    Args:
        dataset: a labelled dataset name (``temzoo.datasets``) with ``train`` and
            ``validation`` splits.
        task: ``segmentation``, ``denoising``, ``background_removal`` or ``super_resolution``.
        train_fraction: share of the training split used (a seeded, nested subset).
        data_dir: TFDS data folder (default ``temzoo.datasets.default_data_dir()``).
        dataset_config: a TFDS BuilderConfig replacing the named one (e.g. a
            small ``SyntheticTemConfig`` for a quick run).
        patch_size: training crop size; a multiple of the model's total stride.
        learning_rate, schedule: Adam's peak rate; ``"cosine"`` decays it to 0
            over the run, ``"constant"`` keeps it.
        steps_per_epoch: training steps per epoch (``None``: one pass over the
            training fraction).
        validation_images: validate on the first N images of the validation
            split (``None``: all of it); whole images, cropped to a multiple of
            the stride.
        validation_steps: at most this many validation batches per epoch.
        test_split: evaluate the best model on this split at the end
            (:func:`temzoo.evaluate.evaluate`, whole images, tiled as
            ``temzoo.predict``); ``None`` skips it.
        overlays: how many validation images get a prediction overlay PNG.
        batch_norm_batches: before each validation, re-estimate BatchNormalization's
            moving statistics from this many training batches (precise BN; 0: keep
            the moving averages). See ``PreciseBatchNorm`` in :func:`_callbacks`.
        progress: ``"bar"`` (Keras' progress bar), ``"lines"`` (a line every
            10 s through ``echo``), ``None`` (epoch summaries only) or
            ``"auto"`` (a bar when stdout is a terminal, else lines).
        echo: ``callable(str)`` for progress lines (default: ``logging`` INFO).

    Returns a dict: ``validation`` (best epoch's metrics), ``test`` (metrics on
    ``test_split`` or ``None``), ``best_epoch``, ``paths``, ``seconds``,
    ``random_init``, the model's ``card``.

    Raises :class:`TrainingDivergedError` when the loss becomes NaN or infinite.
    """
    import keras

    from temzoo import data as pipelines
    from temzoo import tasks
    from temzoo.tasks.backbone import resolve_model

    echo = echo or logger.info
    started = time.time()
    if task not in tasks.TASK_NAMES:
        raise BadInputError(f"task {task!r} is not supported; choose one of: {', '.join(tasks.TASK_NAMES)}.")
    if schedule not in SCHEDULES:
        raise BadInputError(f"schedule={schedule!r} is not supported; choose one of: {', '.join(SCHEDULES)}.")
    if progress == "auto":
        progress = "bar" if getattr(sys.stdout, "isatty", lambda: False)() else "lines"
    out = os.fspath(out)
    check_output_dir(out, overwrite)

    # the dataset must have labels for the task: fail before loading any model
    target = pipelines.target_key(dataset, task) if isinstance(dataset, str) else None

    keras.utils.set_random_seed(seed)
    resolved = resolve_model(model)
    if resolved.random_init:
        echo(f"{resolved.name}: architecture with random weights (no pretrained weights); training from scratch.")
    else:
        echo(f"{resolved.name}: loaded ({resolved.source}).")

    train_all = _load_split(dataset, "train", data_dir, dataset_config)
    val = _load_split(dataset, "validation", data_dir, dataset_config)
    if validation_images and validation_images < _count(val):
        # a TFDS slice, not .take(): TFDS caches small splits, and a partial read of a cache warns
        val = _load_split(dataset, f"validation[:{int(validation_images)}]", data_dir, dataset_config)
    n_train_all = _count(train_all)
    train = pipelines.take_fraction(train_all, train_fraction, seed=seed, num_examples=n_train_all)
    n_train, n_val = _count(train), _count(val)
    echo(f"{dataset}: {n_train} of {n_train_all} training images ({train_fraction:g}), {n_val} validation images.")
    if steps_per_epoch is None:
        steps_per_epoch = max(1, math.ceil(n_train / batch_size))

    rate = learning_rate_schedule(learning_rate, schedule, epochs * steps_per_epoch)
    builder_kwargs = {"freeze": freeze, "learning_rate": rate}
    if task == "segmentation":
        builder_kwargs["num_classes"] = num_classes
    task_model = tasks.build(task, resolved, **builder_kwargs)
    from temzoo.pretrained import card as card_of

    normalizer = tasks.normalizer_of(card_of(task_model))
    stride = _stride(task_model)
    if patch_size % stride:
        raise BadInputError(
            f"patch_size={patch_size} is not a multiple of {resolved.name}'s total stride {stride}; "
            f"use e.g. {max(stride, patch_size // stride * stride)} or {-(-patch_size // stride) * stride}."
        )
    image_shape = val.element_spec["image"].shape
    sides = [s for s in image_shape[:2] if s is not None]
    val_patch = (min(sides) // stride * stride) if sides else patch_size
    if val_patch < stride:
        raise BadInputError(f"{dataset}: validation images {image_shape[:2]} are smaller than the stride {stride}.")
    common = dict(target_key=target, task=task, normalizer=normalizer, seed=seed)
    if task == "segmentation":
        common["num_classes"] = num_classes
    train_pairs = pipelines.supervised_pairs(train, patch_size=patch_size, batch_size=batch_size, augment=True,
                                             repeat=True, **common)
    val_batch = max(1, min(batch_size, 4))
    val_pairs = pipelines.supervised_pairs(val, patch_size=val_patch, batch_size=val_batch, augment=False,
                                           repeat=False, shuffle_buffer=0, **common)
    if validation_steps is not None:
        val_pairs = val_pairs.take(validation_steps)

    card_fields = {
        "dataset": dataset if isinstance(dataset, str) else None,
        "train_fraction": train_fraction,
        "train_examples": n_train,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "patch_size": patch_size,
        "learning_rate": learning_rate,
        "schedule": schedule,
        "batch_norm_batches": int(batch_norm_batches or 0),
        "seed": seed,
        "validation_images": n_val,
    }
    clean_stale_staging(out)
    staging = make_staging_dir(out)
    try:
        summary, best_model, overlay_names = _train_into(
            staging, task_model, train_pairs, val_pairs, val, epochs, steps_per_epoch, card_fields, learning_rate,
            progress, echo, task, target, overlays, resolved, dataset, test_split, data_dir, dataset_config, started,
            n_train, n_val,
        )
        check_output_dir(out, overwrite)  # another process may have written a run meanwhile
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    paths = output_paths(out)
    overlay_files = [os.path.join(paths["overlays"], name) for name in overlay_names]
    return {**summary, "paths": {**paths, "overlay_files": overlay_files}, "card": card_of(best_model)}


def _train_into(staging, task_model, train_pairs, val_pairs, val, epochs, steps_per_epoch, card_fields,
                learning_rate, progress, echo, task, target, overlays, resolved, dataset, test_split, data_dir,
                dataset_config, started, n_train, n_val):
    """Train, export the best model and write every output into ``staging``."""
    BestModelExporter, StopOnNonFiniteLoss, StepProgress, PreciseBatchNorm = _callbacks()
    paths = output_paths(staging)
    exporter = BestModelExporter(paths["model"], "val_loss", card_fields, echo)
    callbacks = [StopOnNonFiniteLoss(learning_rate), exporter]
    if card_fields["batch_norm_batches"]:
        callbacks.insert(0, PreciseBatchNorm(train_pairs.map(_inputs_only), card_fields["batch_norm_batches"]))
    if progress == "lines":
        callbacks.append(StepProgress(epochs, steps_per_epoch, echo))
    history = task_model.fit(
        train_pairs, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=val_pairs,
        callbacks=callbacks, verbose=1 if progress == "bar" else (0 if progress == "lines" else 2),
    )
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    from temzoo.plots import learning_curves

    learning_curves(history, paths["curves"], title=f"{resolved.name} - {task} on {dataset}")
    best = {k[4:]: float(v) for k, v in exporter.best_logs.items() if k.startswith("val_")}
    from temzoo.pretrained import load

    best_model = load(paths["model"])
    overlay_paths = write_overlays(best_model, val, task, target, paths["overlays"], overlays, overwrite=True)
    test = None
    if test_split and not _has_split(dataset, test_split, data_dir, dataset_config):
        echo(f"{dataset} has no {test_split!r} split; skipping the test evaluation.")
    elif test_split:
        from temzoo.evaluate import evaluate

        echo(f"evaluating the best model on {dataset}/{test_split} (whole images) ...")
        test = evaluate(best_model, dataset, test_split, data_dir=data_dir, dataset_config=dataset_config)
    seconds = time.time() - started
    summary = {
        "model": resolved.name,
        "random_init": resolved.random_init,
        "dataset": card_fields["dataset"],
        "task": task,
        "best_epoch": exporter.best_epoch,
        "validation": best,
        "test": test["metrics"] if test else None,
        "test_split": test_split if test else None,
        "test_examples": test["examples"] if test else 0,
        "history": history,
        "train_examples": n_train,
        "validation_examples": n_val,
        "settings": card_fields,
        "seconds": round(seconds, 1),
    }
    from temzoo.atomic import write_text

    write_text(paths["metrics"], json.dumps(summary, indent=2) + "\n")
    return summary, best_model, [os.path.basename(p) for p in overlay_paths]


def write_overlays(model, dataset, task, target_key, folder, count, overwrite=False, names=None):
    """Titled PNG overlays of ``model``'s predictions on the first ``count`` examples of ``dataset``.

    Segmentation: prediction | ground truth, headed by the image's name and its
    foreground IoU and Dice; restoration: input | prediction | target, headed by
    the name and the prediction's PSNR against the target. Returns the paths.
    """
    import numpy as np

    from temzoo.plots import overlay, side_by_side, titled_panels, to_uint8
    from temzoo.tiling import predict

    written = []
    os.makedirs(folder, exist_ok=True)
    for index, example in enumerate(dataset.take(count)):
        image = np.asarray(example["image"])[..., 0]
        truth = np.asarray(example[target_key])[..., 0] if target_key in example else None
        prediction = predict(model, image)
        name = (names[index] if names else None) or f"validation image {index}"
        if task == "segmentation":
            labels = prediction.argmax(-1)
            panels, titles = [overlay(image, labels)], ["prediction"]
            heading = name
            if truth is not None:
                panels.append(overlay(image, truth))
                titles.append("ground truth")
                fg_pred, fg_true = labels > 0, truth > 0
                tp = np.count_nonzero(fg_pred & fg_true)
                union = np.count_nonzero(fg_pred | fg_true)
                total = np.count_nonzero(fg_pred) + np.count_nonzero(fg_true)
                iou = tp / union if union else 1.0
                dice = 2 * tp / total if total else 1.0
                heading = f"{name}: foreground IoU {iou:.3f}, Dice {dice:.3f}"
        else:
            panels, titles = [to_uint8(image), to_uint8(prediction)], ["input", "prediction"]
            heading = name
            if truth is not None and truth.shape == prediction.shape:
                from temzoo.evaluate import restoration_scores

                panels.append(to_uint8(truth))
                titles.append("target")
                heading = f"{name}: PSNR {restoration_scores(prediction, truth)['psnr']:.2f} dB"
            panels = [side_by_side(p) for p in panels]
        path = os.path.join(folder, f"validation_{index:03d}.png")
        if os.path.exists(path) and not overwrite:
            raise BadInputError(f"{path}: exists; pass overwrite=True to replace it.")
        titled_panels(path, panels, titles, heading)
        written.append(path)
    return written
