"""Fine-tune a model on a labelled dataset: the library side of ``temzoo-cli finetune``.

    >>> from temzoo.finetune import finetune
    >>> result = finetune("hrnet_pretrained", "synthetic_tem/au_np", "segmentation", out="runs/au_np")
    >>> result["validation"]           # metrics of the best epoch

What it writes in ``out`` (every file atomically):

* ``model.keras`` + ``model.json``: the best model (lowest validation loss so
  far), exported whenever it improves, with its card (task, normalisation,
  backbone and its sha256, dataset, fraction, seed, metrics);
* ``metrics.json``: best epoch, its validation metrics, the full history, timing;
* ``learning_curves.png``: loss and metrics per epoch, training and validation;
* ``overlays/validation_NNN.png``: predictions of the best model on the first
  validation images (prediction | ground truth for segmentation,
  input | prediction | target for restoration).

An existing ``model.keras`` in ``out`` is refused unless ``overwrite=True``, so a
finished run is never lost to a typo.
"""

import json
import math
import os
import time

import keras

from temzoo.errors import BadInputError

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
OVERLAY_DIR = "overlays"

# Defaults of the README command: measured to finish within a few minutes on 2 CPU cores.
DEFAULTS = {
    "train_fraction": 0.1,
    "epochs": 3,
    "batch_size": 8,
    "patch_size": 128,
    "freeze": "none",
    "learning_rate": 1e-3,
    "seed": 0,
    "overlays": 4,
    "validation_images": 16,
}


def output_paths(out):
    return {
        "model": os.path.join(out, MODEL_FILE),
        "metrics": os.path.join(out, METRICS_FILE),
        "curves": os.path.join(out, CURVES_FILE),
        "overlays": os.path.join(out, OVERLAY_DIR),
    }


def check_output_dir(out, overwrite):
    """Refuse to replace a finished run unless ``overwrite``."""
    paths = output_paths(out)
    existing = [p for key, p in paths.items() if key != "overlays" and os.path.exists(p)]
    if existing and not overwrite:
        raise BadInputError(
            f"{existing[0]}: the output exists (a previous run in {out}); choose another --out or pass --overwrite."
        )
    if os.path.exists(out) and not os.path.isdir(out):
        raise BadInputError(f"{out}: exists and is not a folder; choose another --out.")


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
            self.echo(f"epoch {epoch + 1}: {self.monitor} improved to {value:.4f}; saved {self.path}")


def _load_split(name, split, data_dir, config):
    from temzoo import datasets

    return datasets.load(name, split, data_dir=data_dir, config=config)


def _count(ds):
    n = int(ds.cardinality())
    if n < 0:
        n = sum(1 for _ in ds)
    return n


def _stride(model):
    from temzoo.tiling import model_stride

    return model_stride(model)


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
    num_classes=2,
    seed=DEFAULTS["seed"],
    data_dir=None,
    dataset_config=None,
    steps_per_epoch=None,
    validation_steps=None,
    validation_images=DEFAULTS["validation_images"],
    overlays=DEFAULTS["overlays"],
    overwrite=False,
    verbose=2,
    echo=print,
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
        steps_per_epoch: default one pass over the training fraction.
        validation_images: validate on the first N images of the validation
            split (``None``: all of it); whole images, cropped to a multiple of
            the stride. The default keeps the README command within minutes on a CPU.
        validation_steps: at most this many validation batches per epoch.
        overlays: how many validation images get a prediction overlay PNG.

    Returns a dict: ``validation`` (best epoch's metrics), ``best_epoch``,
    ``paths``, ``seconds``, ``random_init``, the model's ``card``.
    """
    from temzoo import data as pipelines
    from temzoo import tasks
    from temzoo.tasks.backbone import resolve_model

    started = time.time()
    if task not in tasks.TASK_NAMES:
        raise BadInputError(f"task {task!r} is not supported; choose one of: {', '.join(tasks.TASK_NAMES)}.")
    out = os.fspath(out)
    check_output_dir(out, overwrite)
    paths = output_paths(out)

    # the dataset must have labels for the task: fail before loading any model
    target = pipelines.target_key(dataset, task) if isinstance(dataset, str) else None

    keras.utils.set_random_seed(seed)
    resolved = resolve_model(model)
    if resolved.random_init:
        echo(f"{resolved.name}: architecture with random weights (no pretrained weights); training from scratch.")
    else:
        echo(f"{resolved.name}: loaded ({resolved.source}).")
    builder_kwargs = {"freeze": freeze, "learning_rate": learning_rate}
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

    train_all = _load_split(dataset, "train", data_dir, dataset_config)
    val = _load_split(dataset, "validation", data_dir, dataset_config)
    if validation_images and validation_images < _count(val):
        # a TFDS slice, not .take(): TFDS caches small splits, and a partial read of a cache warns
        val = _load_split(dataset, f"validation[:{int(validation_images)}]", data_dir, dataset_config)
    n_train_all = _count(train_all)
    train = pipelines.take_fraction(train_all, train_fraction, seed=seed, num_examples=n_train_all)
    n_train, n_val = _count(train), _count(val)
    echo(f"{dataset}: {n_train} of {n_train_all} training images ({train_fraction:g}), {n_val} validation images.")
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
    if steps_per_epoch is None:
        steps_per_epoch = max(1, math.ceil(n_train / batch_size))
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
        "seed": seed,
        "validation_images": n_val,
    }
    exporter = BestModelExporter(paths["model"], "val_loss", card_fields, echo)
    history = task_model.fit(
        train_pairs, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=val_pairs,
        callbacks=[exporter], verbose=verbose, shuffle=False,
    )
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}

    from temzoo.plots import learning_curves

    learning_curves(history, paths["curves"], title=f"{resolved.name} - {task} on {dataset}")
    best = {k[4:]: float(v) for k, v in exporter.best_logs.items() if k.startswith("val_")}
    from temzoo.pretrained import load

    best_model = load(paths["model"])
    overlay_paths = write_overlays(best_model, val, task, target, paths["overlays"], overlays, overwrite=True)
    seconds = time.time() - started
    summary = {
        "model": resolved.name,
        "random_init": resolved.random_init,
        "dataset": card_fields["dataset"],
        "task": task,
        "best_epoch": exporter.best_epoch,
        "validation": best,
        "history": history,
        "train_examples": n_train,
        "validation_examples": n_val,
        "settings": card_fields,
        "seconds": round(seconds, 1),
    }
    from temzoo.atomic import write_text

    write_text(paths["metrics"], json.dumps(summary, indent=2) + "\n")
    return {**summary, "paths": {**paths, "overlay_files": overlay_paths}, "card": card_of(best_model)}


def write_overlays(model, dataset, task, target_key, folder, count, overwrite=False):
    """PNG overlays of ``model``'s predictions on the first ``count`` examples of ``dataset``."""
    import numpy as np

    from temzoo.io import write_png
    from temzoo.plots import overlay, side_by_side
    from temzoo.tiling import predict

    written = []
    for index, example in enumerate(dataset.take(count)):
        image = np.asarray(example["image"])[..., 0]
        truth = np.asarray(example[target_key])[..., 0] if target_key in example else None
        prediction = predict(model, image)
        if task == "segmentation":
            labels = prediction.argmax(-1)
            rgb = overlay(image, labels, truth=truth)
        else:
            panels = [image, prediction] + ([truth] if truth is not None and truth.shape == prediction.shape else [])
            rgb = side_by_side(*panels)
        path = os.path.join(folder, f"validation_{index:03d}.png")
        write_png(path, rgb, overwrite=overwrite)
        written.append(path)
    return written
