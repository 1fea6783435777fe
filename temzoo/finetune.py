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

import json
import logging
import os
import sys
import time

from temzoo.errors import BadInputError, TrainingDivergedError
from temzoo.inference.precision import resolve_precision
from temzoo.training import pipeline as pipeline
from temzoo.training.config import DEFAULTS, FinetuneConfig  # noqa: F401  (public)
from temzoo.training.pipeline import learning_rate_schedule
from temzoo.training.run_folder import (
    check_output_dir,
    clean_stale_staging,
    make_staging_dir,
    output_paths,
    publish,
    write_run,
)

__all__ = [
    "DEFAULTS", "TrainingDivergedError", "check_output_dir", "clean_stale_staging", "finetune",
    "learning_rate_schedule", "make_staging_dir", "output_paths", "publish", "write_overlays",
]

logger = logging.getLogger(__name__)



def finetune(model=None, dataset=None, task=None, *, out, config=None, overwrite=False, progress="auto",
             **settings):
    """Fine-tune ``model`` (pretrained name, architecture name, ``.keras`` path or Keras model).

    Every setting is a field of :class:`temzoo.training.config.FinetuneConfig` (its
    docstring lists them with their defaults; ``temzoo-cli finetune``'s options are
    made from them): pass ``config=FinetuneConfig(...)``, or the fields as keyword
    arguments (``epochs=2``), which override the config's. ``model``, ``dataset`` and
    ``task`` may also be given by position. The most used:

        dataset: a labelled dataset name (``temzoo.datasets``) with ``train`` and
            ``validation`` splits, or a tf.data of examples.
        task: ``segmentation``, ``denoising``, ``background_removal`` or ``super_resolution``.
        train_fraction, epochs, steps_per_epoch (0: one pass), batch_size, patch_size,
        learning_rate, schedule (``"cosine"`` decays to 0 over the run).
        validation_images: validate on the first N images of the validation split
            (0: all of it), whole, cropped to a multiple of the stride.
        test_split: evaluate the best model on this split at the end
            (:func:`temzoo.evaluate.evaluate`, whole images, tiled as ``temzoo.predict``); ``""`` skips it.
        batch_norm_batches: precise BN before each validation
            (:class:`temzoo.training.callbacks.PreciseBatchNorm`).
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"auto"``; the model is exported in float32.

    ``out``: the run folder, written into a hidden staging folder that replaces
    ``out`` only when complete (``overwrite``). ``progress``: ``"bar"`` (Keras'
    progress bar), ``"lines"`` (a ``logging`` INFO line every 10 s), ``None`` (epoch
    summaries only) or ``"auto"`` (a bar when stdout is a terminal, else lines).

    The steps are :mod:`temzoo.training.pipeline`'s (shared with the experiment).
    Returns a dict: ``validation`` (best epoch's metrics), ``test`` (metrics on
    ``test_split`` or ``None``), ``best_epoch``, ``paths``, ``seconds``,
    ``random_init``, the model's ``card``.

    Raises :class:`TrainingDivergedError` when the loss becomes NaN or infinite.
    """
    started = time.time()
    positional = {k: v for k, v in (("model", model), ("dataset", dataset), ("task", task)) if v is not None}
    config = (config or DEFAULTS).replace(**positional, **settings)
    if config.model is None:
        raise BadInputError("finetune needs a model: a pretrained name, an architecture name or a .keras file.")
    if progress == "auto":
        progress = "bar" if getattr(sys.stdout, "isatty", lambda: False)() else "lines"
    out = os.fspath(out)
    check_output_dir(out, overwrite)
    c = config
    run = pipeline.prepare(
        c.model, c.dataset, c.task, train_fraction=c.train_fraction, epochs=c.epochs, batch_size=c.batch_size,
        patch_size=c.patch_size, learning_rate=c.learning_rate, schedule=c.schedule, freeze=c.freeze,
        num_classes=c.num_classes, seed=c.seed, data_dir=c.data_dir, dataset_config=c.dataset_config,
        steps_per_epoch=c.steps, validation_images=c.validation_images or None,
        validation_steps=c.validation_steps, precision=c.precision,
    )
    recorded = {
        "dataset": c.dataset if isinstance(c.dataset, str) else None, "train_fraction": c.train_fraction,
        "train_examples": run.train_examples, "epochs": c.epochs, "steps_per_epoch": run.steps_per_epoch,
        "batch_size": c.batch_size, "patch_size": c.patch_size, "learning_rate": c.learning_rate,
        "schedule": c.schedule, "batch_norm_batches": c.batch_norm_batches, "seed": c.seed,
        "validation_images": run.validation_examples, "precision": resolve_precision(c.precision),
    }
    summary, best_model, overlay_names = write_run(out, overwrite, lambda staging: _train_into(
        staging, run, recorded, dataset=c.dataset, progress=progress, overlays=c.overlays,
        test_split=c.test_split or None, data_dir=c.data_dir, dataset_config=c.dataset_config, started=started,
    ))
    paths = output_paths(out)
    overlay_files = [os.path.join(paths["overlays"], name) for name in overlay_names]
    from temzoo.zoo.pretrained import card as card_of

    return {**summary, "paths": {**paths, "overlay_files": overlay_files}, "card": card_of(best_model)}


def _train_into(staging, run, settings, *, dataset, progress, overlays, test_split, data_dir, dataset_config,
                started):
    """Train, export the best model and write every output into ``staging``."""
    from temzoo.atomic import write_text
    from temzoo.inference.plots import learning_curves
    from temzoo.training.callbacks import BestModelExporter, StepProgress
    from temzoo.zoo.pretrained import load

    paths = output_paths(staging)
    exporter = BestModelExporter(paths["model"], "val_loss", settings)
    callbacks = [exporter] + ([StepProgress(settings["epochs"], run.steps_per_epoch)] if progress == "lines" else [])
    history = pipeline.fit(run, epochs=settings["epochs"], learning_rate=settings["learning_rate"],
                           callbacks=callbacks, batch_norm_batches=settings["batch_norm_batches"],
                           verbose=1 if progress == "bar" else (0 if progress == "lines" else 2))
    logger.info("writing learning curves; reloading the exported model for %d overlay(s) ...", overlays)
    learning_curves(history, paths["curves"], title=f"{run.resolved.name} - {run.task} on {dataset}")
    best = {k[4:]: float(v) for k, v in exporter.best_logs.items() if k.startswith("val_")}
    best_model = load(paths["model"])
    overlay_paths = write_overlays(best_model, run.val, run.task, run.target, paths["overlays"], overlays,
                                   overwrite=True)
    test = _test_metrics(best_model, dataset, test_split, data_dir, dataset_config)
    summary = {
        "model": run.resolved.name,
        "random_init": run.resolved.random_init,
        "dataset": settings["dataset"],
        "task": run.task,
        "best_epoch": exporter.best_epoch,
        "validation": best,
        "test": test["metrics"] if test else None,
        "test_split": test_split if test else None,
        "test_examples": test["examples"] if test else 0,
        "history": history,
        "train_examples": run.train_examples,
        "validation_examples": run.validation_examples,
        "settings": settings,
        "seconds": round(time.time() - started, 1),
    }
    write_text(paths["metrics"], json.dumps(summary, indent=2) + "\n")
    return summary, best_model, [os.path.basename(p) for p in overlay_paths]


def _test_metrics(model, dataset, test_split, data_dir, dataset_config):
    """:func:`temzoo.evaluate.evaluate` of ``model`` on ``test_split`` (whole images); None to skip or without it."""
    if not test_split:
        return None
    if not pipeline.has_split(dataset, test_split, data_dir, dataset_config):
        logger.info("%s has no %r split; skipping the test evaluation.", dataset, test_split)
        return None
    from temzoo.evaluate import evaluate

    logger.info("evaluating the best model on %s/%s (whole images) ...", dataset, test_split)
    return evaluate(model, dataset, test_split, data_dir=data_dir, dataset_config=dataset_config)


def write_overlays(model, dataset, task, target_key, folder, count, overwrite=False, names=None):
    """Titled PNG overlays of ``model``'s predictions on the first ``count`` examples of ``dataset``.

    Segmentation: prediction | ground truth, headed by the image's name and its
    foreground IoU and Dice; restoration: input | prediction | target, headed by
    the name and the prediction's PSNR against the target. Returns the paths.
    """
    import numpy as np

    from temzoo.inference.plots import overlay, side_by_side, titled_panels, to_uint8
    from temzoo.inference.tiling import predict

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
