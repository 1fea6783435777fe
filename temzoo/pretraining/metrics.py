"""Image-quality metrics of a restoration, independent of the normalisation.

Pretext targets are normalised images (zero mean and unit variance with the
default ``Normalizer("standardize")``), so there is no fixed "max value".
PSNR and SSIM are therefore computed per image with the *data range of the
clean target* (its max - min), the ``data_range`` convention of
scikit-image: both images are mapped by ``(x - min(clean)) / (max(clean) -
min(clean))`` and compared with ``max_val=1``. The values do not change if the
normaliser shifts or scales the images, and match
``skimage.metrics.peak_signal_noise_ratio(clean, restored, data_range=clean.ptp())``.
"""

import tensorflow as tf


def _rescale_to_clean_range(restored, clean, eps=1e-6):
    axes = list(range(1, clean.shape.rank))
    lo = tf.reduce_min(clean, axis=axes, keepdims=True)
    hi = tf.reduce_max(clean, axis=axes, keepdims=True)
    scale = tf.maximum(hi - lo, eps)
    return (restored - lo) / scale, (clean - lo) / scale


def psnr(restored, clean):
    """Per-image PSNR (dB) with the clean image's data range; shape ``[batch]``."""
    restored, clean = tf.cast(restored, tf.float32), tf.cast(clean, tf.float32)
    a, b = _rescale_to_clean_range(restored, clean)
    return tf.image.psnr(a, b, max_val=1.0)


def ssim(restored, clean):
    """Per-image SSIM (11x11 Gaussian window) with the clean image's data range; shape ``[batch]``.

    Images must be at least 11 pixels high and wide.
    """
    restored, clean = tf.cast(restored, tf.float32), tf.cast(clean, tf.float32)
    a, b = _rescale_to_clean_range(restored, clean)
    return tf.image.ssim(a, b, max_val=1.0)


def mean_absolute_error(restored, clean):
    """Mean |restored - clean| over the batch (a scalar), in float32."""
    return tf.reduce_mean(tf.abs(tf.cast(clean, tf.float32) - tf.cast(restored, tf.float32)))


def mean_squared_error(restored, clean):
    return tf.reduce_mean(tf.square(tf.cast(clean, tf.float32) - tf.cast(restored, tf.float32)))
