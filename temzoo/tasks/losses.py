"""Losses of the task models, registered so saved models reload with ``safe_mode=True``.

Segmentation targets are one-hot (``H x W x num_classes``) or integer label
maps (``H x W x 1``, as :func:`temzoo.data.supervised_pairs` gives); restoration targets
are images normalised with the *input's* normalisation statistics. The metrics
(PSNR, SSIM, IoU, Dice) live in :mod:`temzoo.zoo.metrics`, one definition for training and
evaluation; they are re-exported here under their old names.
"""

import keras
from keras import ops

from temzoo.zoo.metrics import (  # noqa: F401  (re-exported: the metrics' one definition)
    SEGMENTATION_METRICS,
    Dice,
    IoU,
    MeanIoU,
    dice,
    psnr,
    restoration_metrics,
    segmentation_metrics,
    ssim,
)
from temzoo.zoo.metrics import one_hot as _one_hot


def soft_dice_loss(y_true, y_pred):
    """1 - soft Dice (``keras.losses.dice`` over each image's pixels), averaged over classes; shape ``(batch,)``."""
    y_true = _one_hot(y_true, y_pred)
    return ops.mean(keras.losses.dice(y_true, y_pred, axis=(1, 2)), axis=-1)


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
        ce = ops.mean(self.pixel_cross_entropy(y_true, y_pred), axis=(1, 2))
        return ce + self.dice_weight * soft_dice_loss(y_true, y_pred)

    def pixel_cross_entropy(self, y_true, y_pred):
        """Cross-entropy (focal with ``focal=True``) of one-hot ``y_true`` per pixel: ``(batch, H, W)``."""
        if self.focal:
            return keras.losses.categorical_focal_crossentropy(y_true, y_pred)
        return keras.losses.categorical_crossentropy(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "focal": self.focal}


@keras.saving.register_keras_serializable(package="temzoo")
class WeightedCrossEntropyDice(CrossEntropyDice):
    """:class:`CrossEntropyDice` with a weight per pixel: targets ``(batch, H, W, 2)`` hold the integer label
    and the pixel's weight (e.g. :func:`temzoo.data.boxes.boxes_to_weights`).

    The cross-entropy is each image's weighted mean over its pixels (sum of weight x loss over the sum of
    weights); the Dice term is unweighted. Weights of 1 everywhere give :class:`CrossEntropyDice`'s loss.
    """

    def __init__(self, dice_weight=1.0, focal=False, name="weighted_cross_entropy_dice",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(dice_weight=dice_weight, focal=focal, name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        weights = ops.cast(y_true[..., 1], y_pred.dtype)
        y_true = _one_hot(y_true[..., :1], y_pred)
        ce = self.pixel_cross_entropy(y_true, y_pred)
        ce = ops.sum(ce * weights, axis=(1, 2)) / ops.maximum(ops.sum(weights, axis=(1, 2)), 1e-6)
        return ce + self.dice_weight * soft_dice_loss(y_true, y_pred)


def restoration_loss(kind):
    """``"l1"`` (mean absolute error) or ``"l2"`` (mean squared error)."""
    if kind == "l1":
        return keras.losses.MeanAbsoluteError()
    if kind == "l2":
        return keras.losses.MeanSquaredError()
    raise ValueError(f"loss={kind!r} is not supported for restoration; choose 'l1' or 'l2'.")
