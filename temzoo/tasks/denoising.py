"""Denoising: noisy micrograph -> clean micrograph."""

from temzoo.tasks.restoration import build_restoration


def denoising(backbone, *, freeze="none", loss="l1", learning_rate=1e-3, normalizer=None):
    """A compiled denoising model from ``backbone`` (registry name, ``.keras`` path or Keras model).

    Linear 1-channel head; loss L1 (``loss="l2"`` for mean squared error);
    metrics PSNR and SSIM. Inputs and targets are normalised with the input's
    statistics; ``temzoo.predict`` maps outputs back to the input's scale.
    """
    return build_restoration(backbone, "denoising", freeze=freeze, loss=loss, learning_rate=learning_rate, normalizer=normalizer)
