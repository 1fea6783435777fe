"""How a task model's output is scored: one definition for training, evaluation, pretraining and baselines.

**Restoration** (:func:`psnr`, :func:`ssim`): per image, with the *target's own* data range
(``max - min`` of each reference image) as the peak, the ``data_range`` convention of
scikit-image and what microscopists expect: both images are mapped by
``(x - min(target)) / (max(target) - min(target))`` and compared with ``tf.image.psnr`` /
``tf.image.ssim`` at ``max_val=1``. The scores do not change when a normaliser shifts or
scales both images, so they read the same on normalised training batches and on
predictions in the input's intensity units. PSNR of ``float64`` arrays is computed in
float32 (as in training); it matches ``skimage.metrics.peak_signal_noise_ratio(target,
estimate, data_range=np.ptp(target))`` to about 1e-4 dB. A perfect estimate scores ``inf``.

**Segmentation**: ``iou`` (foreground IoU), ``dice`` (foreground Dice) and
``mean_iou_with_background`` (:data:`temzoo.names.SEGMENTATION_METRICS`), from
confusion-matrix counts pooled over all pixels (of an epoch, or of a split):
:func:`segmentation_metrics` gives the Keras metrics of training (``keras.metrics``'
one-hot IoUs), :func:`segmentation_scores` the same numbers from an ``int64`` confusion
matrix for evaluation; ``tests/test_metrics.py`` checks that the two agree.

Every Keras object here is registered (package ``temzoo``), so models compiled with them
reload with ``safe_mode=True``.
"""

import keras
import numpy as np
from keras import ops

from temzoo.names import SEGMENTATION_METRICS  # noqa: F401  (the names' definitions, re-exported)

_EPS = 1e-6


def one_hot(y_true, y_pred):
    """Accept one-hot targets, or integer label maps (last dimension 1) for convenience."""
    classes = y_pred.shape[-1]
    if y_true.shape[-1] == 1 and classes and classes > 1:
        y_true = ops.one_hot(ops.cast(ops.squeeze(y_true, -1), "int32"), classes)
    return ops.cast(y_true, y_pred.dtype)


# ----------------------------------------------------------------------------- restoration
def _in_target_range(y_true, y_pred):
    """Both images as float32 tensors mapped by the target's own range onto [0, 1] (per image)."""
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    axes = list(range(1, y_true.shape.rank))
    low = tf.reduce_min(y_true, axis=axes, keepdims=True)
    scale = tf.maximum(tf.reduce_max(y_true, axis=axes, keepdims=True) - low, _EPS)
    return (y_true - low) / scale, (y_pred - low) / scale


@keras.saving.register_keras_serializable(package="temzoo")
def psnr(y_true, y_pred):
    """PSNR in dB per image of a batch ``(batch, H, W, C)``, the peak being each target's range."""
    import tensorflow as tf

    true, pred = _in_target_range(y_true, y_pred)
    return tf.image.psnr(true, pred, max_val=1.0)


@keras.saving.register_keras_serializable(package="temzoo")
def ssim(y_true, y_pred):
    """SSIM (``tf.image.ssim``, 11x11 Gaussian window) per image, with each target's own range.

    Images must be at least 11 pixels high and wide.
    """
    import tensorflow as tf

    true, pred = _in_target_range(y_true, y_pred)
    return tf.image.ssim(true, pred, max_val=1.0)


def _as_batch(image):
    image = np.asarray(image, np.float32)
    return image[None, ..., None] if image.ndim == 2 else image[None]


def image_psnr(target, estimate):
    """:func:`psnr` of one image pair (2-D, or ``H x W x C``) as a float."""
    return float(np.asarray(psnr(_as_batch(target), _as_batch(estimate)))[0])


def restoration_scores(prediction, target):
    """``psnr``, ``ssim`` (the training metrics), ``mae`` and ``mse`` of one image pair (2-D arrays)."""
    pred, true = _as_batch(prediction), _as_batch(target)
    return {
        "psnr": float(np.asarray(psnr(true, pred))[0]),
        "ssim": float(np.asarray(ssim(true, pred))[0]),
        "mae": float(np.abs(pred - true).mean()),
        "mse": float(np.square(pred - true).mean()),
    }


def restoration_metrics():
    """The Keras metrics of the restoration tasks: :func:`psnr` and :func:`ssim`."""
    return [psnr, ssim]


# ----------------------------------------------------------------------------- segmentation
@keras.saving.register_keras_serializable(package="temzoo")
def dice(y_true, y_pred):
    """Hard Dice of the foreground (every class but 0) after argmax, per image.

    Kept so models saved with it still load; new models use :class:`Dice` (pooled counts).
    """
    y_true = one_hot(y_true, y_pred)
    classes = y_pred.shape[-1]
    truth = ops.one_hot(ops.argmax(y_true, axis=-1), classes)[..., 1:]
    pred = ops.one_hot(ops.argmax(y_pred, axis=-1), classes)[..., 1:]
    intersection = ops.sum(truth * pred, axis=(1, 2, 3))
    total = ops.sum(truth, axis=(1, 2, 3)) + ops.sum(pred, axis=(1, 2, 3))
    # an image with no foreground in truth and prediction scores 1
    return (2.0 * intersection + _EPS) / (total + _EPS)


@keras.saving.register_keras_serializable(package="temzoo")
class MeanIoU(keras.metrics.OneHotMeanIoU):
    """``keras.metrics.OneHotMeanIoU`` that also takes integer label maps (last dimension 1)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(one_hot(y_true, y_pred), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="temzoo")
class IoU(keras.metrics.OneHotIoU):
    """``keras.metrics.OneHotIoU`` (mean over ``target_class_ids``) that also takes integer label maps."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(one_hot(y_true, y_pred), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="temzoo")
class Dice(IoU):
    """Foreground Dice ``2 TP / (2 TP + FP + FN)`` from the pooled confusion matrix (every pixel of
    every image, foreground classes ``target_class_ids`` merged), as :func:`segmentation_scores` computes it."""

    def result(self):
        confusion = ops.cast(self.total_cm, "float32")
        ids = list(self.target_class_ids)
        tp = ops.sum(ops.take(ops.diagonal(confusion), ids))
        predicted = ops.sum(ops.take(ops.sum(confusion, axis=0), ids))
        true = ops.sum(ops.take(ops.sum(confusion, axis=1), ids))
        return ops.divide_no_nan(2.0 * tp, predicted + true)


def segmentation_metrics(num_classes):
    """Foreground IoU, foreground Dice and mean IoU with background (:data:`SEGMENTATION_METRICS`)."""
    foreground = list(range(1, num_classes))
    return [
        IoU(num_classes, target_class_ids=foreground, name="iou"),
        Dice(num_classes, target_class_ids=foreground, name="dice"),
        MeanIoU(num_classes, name="mean_iou_with_background"),
    ]


def confusion_matrix(truth, labels, classes):
    """``classes x classes`` int64 counts (rows: truth, columns: prediction) of two label arrays."""
    truth = np.asarray(truth, np.int64).ravel()
    labels = np.asarray(labels, np.int64).ravel()
    return np.bincount(truth * classes + labels, minlength=classes * classes).reshape(classes, classes)


def segmentation_scores(confusion):
    """:data:`SEGMENTATION_METRICS`, ``pixel_accuracy`` and ``iou_class_N`` from a confusion matrix.

    Rows are the truth, columns the prediction. A class absent from truth and prediction has
    IoU NaN and is left out of the means (as ``keras.metrics.IoU`` leaves it out).
    """
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
