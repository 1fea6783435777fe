"""Segmentation: a softmax head over ``num_classes`` classes (0 = background)."""

import keras

from temzoo.tasks.builder import build_task_model
from temzoo.tasks.losses import CrossEntropyDice
from temzoo.zoo.metrics import segmentation_metrics


def segmentation(backbone, num_classes=2, *, freeze="none", focal=False, dice_weight=1.0, learning_rate=1e-3,
                 normalizer=None, batch_norm="auto"):
    """A compiled segmentation model from ``backbone`` (registry name, ``.keras`` path or Keras model).

    Loss: categorical cross-entropy (focal with ``focal=True``) plus
    ``dice_weight`` x soft Dice. Metrics: ``iou`` (foreground IoU), ``dice`` (foreground Dice) and
    ``mean_iou_with_background``, pooled over all pixels (:data:`temzoo.names.SEGMENTATION_METRICS`).
    Targets are integer label maps ``(batch, H, W, 1)`` (what
    :func:`temzoo.data.supervised_pairs` gives) or one-hot ``(batch, H, W, num_classes)``. ``freeze`` is ``"none"``,
    ``"encoder"`` or ``"all_but_head"`` (see :mod:`temzoo.tasks.heads`); ``batch_norm``
    as in :mod:`temzoo.tasks.builder` (frozen on trained weights by default).
    """
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2 (background and one class), got {num_classes}.")
    model = build_task_model(
        backbone, task="segmentation", channels=int(num_classes), activation="softmax",
        freeze_mode=freeze, normalizer=normalizer, extra={"num_classes": int(num_classes)}, head="new",
        batch_norm=batch_norm,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=CrossEntropyDice(dice_weight=dice_weight, focal=focal),
        metrics=segmentation_metrics(int(num_classes)),
    )
    return model
