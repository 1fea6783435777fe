"""Shared builder of the image-to-image (restoration) tasks: linear 1-channel head, L1/L2 loss, PSNR and SSIM."""

import keras

from temzoo.tasks.builder import build_task_model
from temzoo.tasks.losses import restoration_loss
from temzoo.zoo.metrics import restoration_metrics


def build_restoration(backbone, task, *, scale=1, freeze="none", loss="l1", learning_rate=1e-3, normalizer=None,
                      head="auto", batch_norm="auto"):
    model = build_task_model(
        backbone, task=task, channels=1, activation="linear", scale=scale,
        freeze_mode=freeze, normalizer=normalizer, extra={"scale": int(scale), "loss": loss},
        head=head, batch_norm=batch_norm,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=restoration_loss(loss),
        metrics=restoration_metrics(),
    )
    return model
