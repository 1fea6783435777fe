"""Evaluate a fine-tuned model on a dataset split: the library side of ``temzoo-cli evaluate``.

Every image is predicted whole with :func:`temzoo.predict` (tiled, normalised
with the model's normaliser), exactly as a user's micrograph would be, and
compared with its target, with the metrics of :mod:`temzoo.zoo.metrics` (the same
definitions as the training metrics):

* segmentation: a confusion matrix over all pixels of the split gives
  ``iou`` (foreground IoU), ``dice`` (foreground Dice),
  ``mean_iou_with_background`` (:data:`SEGMENTATION_METRICS`),
  ``pixel_accuracy`` and ``iou_class_N`` per class;
* restoration: per-image ``psnr`` and ``ssim`` (the peak being each target's own
  range), ``mae`` and ``mse``, averaged over images, in the target's intensity units.

This module imports no TensorFlow until :func:`evaluate` runs (the CLI's help reads
:data:`SEGMENTATION_METRICS` from it); ``segmentation_scores`` and ``restoration_scores``
are :mod:`temzoo.zoo.metrics`' own, loaded on first use.
"""

import json
import os
import time

import numpy as np

from temzoo.errors import BadInputError
from temzoo.names import METRIC_DEFINITIONS, SEGMENTATION_METRICS, task_or_default

__all__ = ["SEGMENTATION_METRICS", "evaluate", "format_metrics", "metric_definitions"]  # + _FROM_METRICS
_FROM_METRICS = ("segmentation_scores", "restoration_scores")


def __getattr__(name):
    if name in _FROM_METRICS:  # lazily: temzoo.zoo.metrics imports Keras
        from temzoo.zoo import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate(model, dataset, split="test", *, data_dir=None, dataset_config=None, max_examples=None,
             tile_size=None, json_path=None, overwrite=False, progress=None):
    """Metrics of ``model`` (``.keras`` path, registry name or Keras model) on ``dataset``'s ``split``.

    The task comes from the model (its Keras config or card: ``segmentation`` or a
    restoration task). Returns a dict with ``model``, ``dataset``, ``split``, ``task``,
    ``examples``, ``metrics`` and ``seconds``; written as JSON to ``json_path``
    (atomically) when given. An existing ``json_path`` is refused before any work
    (and never replaced, even if another process creates it meanwhile) unless
    ``overwrite``.
    """
    from temzoo import data as pipelines
    from temzoo import datasets
    from temzoo.inference.tiling import is_restoration, predict
    from temzoo.tasks.backbone import resolve_model

    started = time.time()
    if json_path:
        from temzoo.atomic import check_writable_dir, refuse_existing

        refuse_existing(json_path, overwrite)
        check_writable_dir(os.path.dirname(os.path.abspath(json_path)))
    resolved = resolve_model(model, allow_architecture=False)
    card = resolved.card or {}
    task = task_or_default(card.get("task"), is_restoration(resolved.model, card))
    target = pipelines.target_key(dataset, task)
    ds = datasets.load(dataset, split, data_dir=data_dir, config=dataset_config)
    if max_examples:
        ds = ds.take(max_examples)
    total = int(ds.cardinality()) if int(ds.cardinality()) >= 0 else None
    scorer = (_SegmentationScorer if task == "segmentation" else _RestorationScorer)(f"{dataset}/{split}", target, task)
    count = 0
    for example in ds:
        image = np.asarray(example["image"], np.float32)[..., 0]
        truth = np.asarray(example[target])
        truth = truth[..., 0] if truth.ndim == 3 else truth
        scorer.add(count, predict(resolved.model, image, tile_size=tile_size), truth)
        count += 1
        if progress is not None:
            progress(count, total)
    if count == 0:
        raise BadInputError(f"{dataset}/{split}: no examples to evaluate.")
    result = {
        "model": resolved.name,
        "model_sha256": resolved.sha256,
        "dataset": dataset,
        "split": split,
        "task": task,
        "examples": count,
        "metrics": scorer.metrics(),
        "seconds": round(time.time() - started, 1),
    }
    if json_path:
        from temzoo.atomic import write_text

        write_text(json_path, json.dumps(result, indent=2) + "\n", exclusive=not overwrite)
    return result


class _SegmentationScorer:
    """Pools the confusion matrix of every image of a split."""

    def __init__(self, where, target, task):
        self.where, self.confusion = where, None

    def add(self, index, output, truth):
        from temzoo.zoo.metrics import confusion_matrix

        classes = output.shape[-1]
        if self.confusion is None:
            self.confusion = np.zeros((classes, classes), np.int64)
        truth = truth.astype(np.int64)
        if truth.max(initial=0) >= classes:
            raise BadInputError(
                f"{self.where}: example {index} has class id {int(truth.max())}, but the model has {classes} classes."
            )
        self.confusion += confusion_matrix(truth, output.argmax(-1), classes)

    def metrics(self):
        from temzoo.zoo.metrics import segmentation_scores

        return segmentation_scores(self.confusion)


class _RestorationScorer:
    """Scores every image of a split; the metrics are the means over images."""

    def __init__(self, where, target, task):
        self.where, self.target, self.task, self.per_image = where, target, task, []

    def add(self, index, output, truth):
        from temzoo.zoo.metrics import restoration_scores

        if output.shape != truth.shape:
            raise BadInputError(
                f"{self.where}: the model's output is {output.shape} but the target {self.target!r} is "
                f"{truth.shape}; evaluate a model trained for this dataset's {self.task} target."
            )
        self.per_image.append(restoration_scores(output, truth.astype(np.float32)))

    def metrics(self):
        return {key: float(np.mean([s[key] for s in self.per_image])) for key in self.per_image[0]}


def metric_definitions():
    """Metric name -> one-line definition (segmentation and restoration), for tables, help and docs."""
    return dict(METRIC_DEFINITIONS)


def format_metrics(metrics, definitions=True):
    """Text table of a metrics dict: name, value and (``definitions``) what the name means."""
    from temzoo.zoo.table import format_table

    if not metrics:
        return "(no metrics)"
    rows = [
        {"metric": key, "value": f"{value:.4f}" if isinstance(value, (int, float)) else str(value),
         "meaning": METRIC_DEFINITIONS.get(key, "")}
        for key, value in metrics.items()
    ]
    table = format_table(rows, columns=("metric", "value", "meaning") if definitions else ("metric", "value"))
    return "\n".join(line.rstrip() for line in table.splitlines())
