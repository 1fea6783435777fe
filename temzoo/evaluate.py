"""Evaluate a fine-tuned model on a dataset split: the library side of ``temzoo-cli evaluate``.

Every image is predicted whole with :func:`temzoo.predict` (tiled, normalised
with the model card's normaliser), exactly as a user's micrograph would be, and
compared with its target:

* segmentation: a confusion matrix over all pixels of the split gives
  ``iou`` (foreground IoU), ``dice`` (foreground Dice),
  ``mean_iou_with_background`` (defined in :data:`SEGMENTATION_METRICS`,
  the same definitions as the training metrics), ``pixel_accuracy`` and ``iou_class_N`` per class;
* restoration: per-image ``psnr`` and ``ssim`` (same definitions as the training
  metrics in :mod:`temzoo.tasks.losses`), ``mae`` and ``mse``, averaged over
  images, in the target's intensity units.
"""

import json
import time

import numpy as np

from temzoo.errors import BadInputError
from temzoo.names import task_or_default

# One name, one definition: the same three in training logs (temzoo.tasks.losses.segmentation_metrics),
# metrics.json and ``temzoo-cli evaluate`` (segmentation_scores). Counts are pooled over all pixels of
# all images (of an epoch or of a split) before dividing.
SEGMENTATION_METRICS = {
    "iou": "foreground IoU: TP / (TP + FP + FN) of the particle (non-background) pixels, all pixels pooled "
           "(mean over foreground classes if there are several)",
    "dice": "foreground Dice: 2 TP / (2 TP + FP + FN), the same pooled counts (= 2 iou / (1 + iou) for 2 classes)",
    "mean_iou_with_background": "IoU of every class, background included, averaged over classes",
}


def segmentation_scores(confusion):
    """Scores from a ``classes x classes`` confusion matrix (rows: truth, columns: prediction)."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    fp = confusion.sum(0) - tp
    fn = confusion.sum(1) - tp
    denom = tp + fp + fn
    present = denom > 0
    iou = np.where(present, tp / np.maximum(denom, 1), np.nan)
    fg = slice(1, None)
    fg_tp, fg_fp, fg_fn = tp[fg].sum(), fp[fg].sum(), fn[fg].sum()
    scores = {
        "iou": float(np.nanmean(iou[fg])) if present[fg].any() else float("nan"),
        "dice": float(2 * fg_tp / max(2 * fg_tp + fg_fp + fg_fn, 1)),
        "mean_iou_with_background": float(np.nanmean(iou)),
        "pixel_accuracy": float(tp.sum() / max(confusion.sum(), 1)),
    }
    for cls, value in enumerate(iou):
        scores[f"iou_class_{cls}"] = float(value)
    return scores


def restoration_scores(prediction, target):
    """PSNR, SSIM, MAE and MSE of one image pair (2-D arrays)."""
    from temzoo.tasks.losses import psnr, ssim

    pred = np.asarray(prediction, np.float32)[None, ..., None]
    true = np.asarray(target, np.float32)[None, ..., None]
    return {
        "psnr": float(np.asarray(psnr(true, pred))[0]),
        "ssim": float(np.asarray(ssim(true, pred))[0]),
        "mae": float(np.abs(pred - true).mean()),
        "mse": float(np.square(pred - true).mean()),
    }


def evaluate(model, dataset, split="test", *, data_dir=None, dataset_config=None, max_examples=None,
             tile_size=None, json_path=None, overwrite=False, progress=None):
    """Metrics of ``model`` (``.keras`` path, registry name or Keras model) on ``dataset``'s ``split``.

    The task comes from the model's card (``segmentation`` or a restoration
    task). Returns a dict with ``model``, ``dataset``, ``split``, ``task``,
    ``examples``, ``metrics`` and ``seconds``; written as JSON to ``json_path``
    (atomically) when given. An existing ``json_path`` is refused before any work
    (and never replaced, even if another process creates it meanwhile) unless
    ``overwrite``.
    """
    from temzoo import data as pipelines
    from temzoo import datasets
    from temzoo.tasks.backbone import resolve_model
    from temzoo.tiling import is_restoration, predict

    started = time.time()
    if json_path:
        import os

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

    segmenting = task == "segmentation"
    classes = None
    confusion = None
    per_image = []
    count = 0
    for example in ds:
        image = np.asarray(example["image"], np.float32)[..., 0]
        truth = np.asarray(example[target])
        truth = truth[..., 0] if truth.ndim == 3 else truth
        output = predict(resolved.model, image, tile_size=tile_size)
        if segmenting:
            if classes is None:
                classes = output.shape[-1]
                confusion = np.zeros((classes, classes), np.int64)
            labels = output.argmax(-1)
            truth = truth.astype(np.int64)
            if truth.max(initial=0) >= classes:
                raise BadInputError(
                    f"{dataset}/{split}: example {count} has class id {int(truth.max())}, but the model has "
                    f"{classes} classes."
                )
            confusion += np.bincount(truth.ravel() * classes + labels.ravel(), minlength=classes * classes).reshape(
                classes, classes
            )
        else:
            if output.shape != truth.shape:
                raise BadInputError(
                    f"{dataset}/{split}: the model's output is {output.shape} but the target {target!r} is "
                    f"{truth.shape}; evaluate a model trained for this dataset's {task} target."
                )
            per_image.append(restoration_scores(output, truth.astype(np.float32)))
        count += 1
        if progress is not None:
            progress(count, total)
    if count == 0:
        raise BadInputError(f"{dataset}/{split}: no examples to evaluate.")
    if segmenting:
        metrics = segmentation_scores(confusion)
    else:
        metrics = {key: float(np.mean([s[key] for s in per_image])) for key in per_image[0]}
    result = {
        "model": resolved.name,
        "model_sha256": resolved.sha256,
        "dataset": dataset,
        "split": split,
        "task": task,
        "examples": count,
        "metrics": metrics,
        "seconds": round(time.time() - started, 1),
    }
    if json_path:
        from temzoo.atomic import write_text

        write_text(json_path, json.dumps(result, indent=2) + "\n", exclusive=not overwrite)
    return result


def metric_definitions():
    """Metric name -> one-line definition (segmentation and restoration), for tables, help and docs."""
    return {
        **SEGMENTATION_METRICS,
        "pixel_accuracy": "share of pixels whose class is right",
        "loss": "the training loss (cross-entropy + soft Dice for segmentation)",
        "psnr": "peak signal-to-noise ratio in dB, the peak being the target's range, per image",
        "ssim": "structural similarity, per image",
        "mae": "mean absolute error, target's units",
        "mse": "mean squared error, target's units",
    }


def format_metrics(metrics, definitions=True):
    """Text table of a metrics dict: name, value and (``definitions``) what the name means."""
    if not metrics:
        return "(no metrics)"
    meaning = metric_definitions() if definitions else {}
    width = max(len("metric"), *(len(k) for k in metrics))
    lines = [f"{'metric'.ljust(width)}  value   " + ("  meaning" if meaning else ""),
             f"{'-' * width}  --------" + ("  -------" if meaning else "")]
    for key, value in metrics.items():
        text = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
        lines.append(f"{key.ljust(width)}  {text.ljust(8)}" + (f"  {meaning.get(key, '')}" if meaning else ""))
    return "\n".join(line.rstrip() for line in lines)
