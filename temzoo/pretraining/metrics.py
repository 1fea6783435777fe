"""Image-quality metrics of a restoration during pretraining: :mod:`temzoo.zoo.metrics`' PSNR and SSIM.

Pretext targets are normalised images (zero mean and unit variance with the
default ``Normalizer("standardize")``), so there is no fixed "max value": PSNR and
SSIM are computed per image with the *data range of the clean target* (its max - min),
the convention of every temzoo metric (:mod:`temzoo.zoo.metrics`); the values do not
change if the normaliser shifts or scales the images, and match
``skimage.metrics.peak_signal_noise_ratio(clean, restored, data_range=clean.ptp())``.
The functions here take ``(restored, clean)``, the order of the pretraining code.
"""

import tensorflow as tf

from temzoo.zoo import metrics


def psnr(restored, clean):
    """Per-image PSNR (dB) with the clean image's data range; shape ``[batch]``."""
    return metrics.psnr(clean, restored)


def ssim(restored, clean):
    """Per-image SSIM (11x11 Gaussian window) with the clean image's data range; shape ``[batch]``.

    Images must be at least 11 pixels high and wide.
    """
    return metrics.ssim(clean, restored)


def mean_absolute_error(restored, clean):
    """Mean |restored - clean| over the batch (a scalar), in float32."""
    return tf.reduce_mean(tf.abs(tf.cast(clean, tf.float32) - tf.cast(restored, tf.float32)))


def mean_squared_error(restored, clean):
    return tf.reduce_mean(tf.square(tf.cast(clean, tf.float32) - tf.cast(restored, tf.float32)))
