"""Denoising: noisy micrograph -> clean micrograph."""

from temzoo.tasks.restoration import build_restoration


def denoising(backbone, *, freeze="none", loss="l1", learning_rate=1e-3, normalizer=None, head="auto",
              batch_norm="auto"):
    """A compiled denoising model from ``backbone`` (registry name, ``.keras`` path or Keras model).

    Linear 1-channel head; loss L1 (``loss="l2"`` for mean squared error);
    metrics PSNR and SSIM. Inputs and targets are normalised with the input's
    statistics; ``temzoo.predict`` maps outputs back to the input's scale.

    ``head="auto"`` (default) keeps the backbone's trained output layer when it was
    trained for denoising: every temzoo pretrained generator (pretext: restore a clean
    image from a Poisson-noised copy) and any denoising model; so fine-tuning starts
    from what the shipped model does. ``head="new"`` attaches a new random head,
    ``head="keep"`` refuses a backbone whose head cannot be kept. ``batch_norm``:
    ``"auto"`` freezes BatchNormalization (inference mode) on trained weights, trains it
    on random ones; see :mod:`temzoo.tasks.builder`.
    """
    return build_restoration(backbone, "denoising", freeze=freeze, loss=loss, learning_rate=learning_rate,
                             normalizer=normalizer, head=head, batch_norm=batch_norm)
