"""Losses and metrics of the task models, all registered so saved models reload with ``safe_mode=True``.

Segmentation targets are one-hot (``H x W x num_classes``) or integer label
maps (``H x W x 1``, as :func:`temzoo.data.supervised_pairs` gives); restoration targets
are images normalised with the *input's* normalisation statistics.
"""

import keras
from keras import ops

from temzoo.evaluate import SEGMENTATION_METRICS  # noqa: F401  (the names' definitions)

_EPS = 1e-6


def _one_hot(y_true, y_pred):
    """Accept one-hot targets, or integer label maps (last dimension 1) for convenience."""
    classes = y_pred.shape[-1]
    if y_true.shape[-1] == 1 and classes and classes > 1:
        y_true = ops.one_hot(ops.cast(ops.squeeze(y_true, -1), "int32"), classes)
    return ops.cast(y_true, y_pred.dtype)


def soft_dice_loss(y_true, y_pred):
    """1 - soft Dice, averaged over classes, per image (shape ``(batch,)``)."""
    y_true = _one_hot(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred, axis=(1, 2))
    total = ops.sum(y_true, axis=(1, 2)) + ops.sum(y_pred, axis=(1, 2))
    dice = (2.0 * intersection + _EPS) / (total + _EPS)
    return 1.0 - ops.mean(dice, axis=-1)


@keras.saving.register_keras_serializable(package="temzoo")
class CrossEntropyDice(keras.losses.Loss):
    """Categorical cross-entropy (or focal cross-entropy) plus ``dice_weight`` x soft Dice loss.

    Cross-entropy gives every pixel a gradient; Dice counters the imbalance of
    small particles on a large background.
    """

    def __init__(self, dice_weight=1.0, focal=False, name="cross_entropy_dice", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.dice_weight = float(dice_weight)
        self.focal = bool(focal)

    def call(self, y_true, y_pred):
        y_true = _one_hot(y_true, y_pred)
        if self.focal:
            ce = keras.losses.categorical_focal_crossentropy(y_true, y_pred)
        else:
            ce = keras.losses.categorical_crossentropy(y_true, y_pred)
        ce = ops.mean(ce, axis=(1, 2))
        return ce + self.dice_weight * soft_dice_loss(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "focal": self.focal}


@keras.saving.register_keras_serializable(package="temzoo")
def dice(y_true, y_pred):
    """Hard Dice of the foreground (every class but 0) after argmax, per image.

    Kept so models saved with it still load; new models use :class:`Dice` (pooled counts).
    """
    y_true = _one_hot(y_true, y_pred)
    classes = y_pred.shape[-1]
    truth = ops.one_hot(ops.argmax(y_true, axis=-1), classes)[..., 1:]
    pred = ops.one_hot(ops.argmax(y_pred, axis=-1), classes)[..., 1:]
    intersection = ops.sum(truth * pred, axis=(1, 2, 3))
    total = ops.sum(truth, axis=(1, 2, 3)) + ops.sum(pred, axis=(1, 2, 3))
    # an image with no foreground in truth and prediction scores 1
    return (2.0 * intersection + _EPS) / (total + _EPS)


def _range(y_true):
    """Per-image dynamic range of the target (the peak signal for PSNR/SSIM)."""
    axes = tuple(range(1, len(y_true.shape)))
    return ops.max(y_true, axis=axes) - ops.min(y_true, axis=axes)


@keras.saving.register_keras_serializable(package="temzoo")
def psnr(y_true, y_pred):
    """Peak signal-to-noise ratio in dB per image, the peak being the target's range."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mse = ops.mean(ops.square(y_true - y_pred), axis=tuple(range(1, len(y_true.shape))))
    peak = _range(y_true)
    return 10.0 * ops.log((ops.square(peak) + _EPS) / (mse + _EPS)) / ops.log(10.0)


@keras.saving.register_keras_serializable(package="temzoo")
def ssim(y_true, y_pred):
    """Structural similarity (``tf.image.ssim``) per image, on images at least 11 px wide.

    Both images are shifted by the target's minimum and the batch's largest
    target range is the dynamic range.
    """
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    low = tf.reduce_min(y_true, axis=[1, 2, 3], keepdims=True)
    peak = tf.reduce_max(_range(y_true)) + _EPS
    return tf.image.ssim(y_true - low, y_pred - low, max_val=peak)


@keras.saving.register_keras_serializable(package="temzoo")
class MeanIoU(keras.metrics.OneHotMeanIoU):
    """``keras.metrics.OneHotMeanIoU`` that also takes integer label maps (last dimension 1)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(_one_hot(y_true, y_pred), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="temzoo")
class IoU(keras.metrics.OneHotIoU):
    """``keras.metrics.OneHotIoU`` (mean over ``target_class_ids``) that also takes integer label maps."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(_one_hot(y_true, y_pred), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="temzoo")
class Dice(IoU):
    """Foreground Dice ``2 TP / (2 TP + FP + FN)`` from the pooled confusion matrix (every pixel of
    every image, foreground classes ``target_class_ids`` merged), as :mod:`temzoo.evaluate` computes it."""

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


def restoration_loss(kind):
    """``"l1"`` (mean absolute error) or ``"l2"`` (mean squared error)."""
    if kind == "l1":
        return keras.losses.MeanAbsoluteError()
    if kind == "l2":
        return keras.losses.MeanSquaredError()
    raise ValueError(f"loss={kind!r} is not supported for restoration; choose 'l1' or 'l2'.")


def restoration_metrics():
    return [psnr, ssim]
