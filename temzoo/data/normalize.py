"""Normaliser statistics inside tf.data (same rules as :class:`temzoo.normalization.Normalizer`)."""

import tensorflow as tf


def tf_stats(normalizer, image):
    """(offset, scale) of ``image`` as float32 scalars; ``(x - offset) / scale`` normalises.

    ``standardize``: mean and std + eps; ``percentile``: the low percentile and
    (high - low) + eps, nearest-rank as in ``Normalizer.tf_before``; ``none``: (0, 1).
    """
    image = tf.cast(image, tf.float32)
    if normalizer.kind == "standardize":
        mean, var = tf.nn.moments(tf.reshape(image, [-1]), axes=[0])
        return mean, tf.sqrt(var) + normalizer.eps
    if normalizer.kind == "percentile":
        flat = tf.sort(tf.reshape(image, [-1]))
        n = tf.cast(tf.size(flat) - 1, tf.float32)
        lo = tf.gather(flat, tf.cast(tf.round(n * normalizer.low / 100.0), tf.int32))
        hi = tf.gather(flat, tf.cast(tf.round(n * normalizer.high / 100.0), tf.int32))
        return lo, hi - lo + normalizer.eps
    return tf.constant(0.0), tf.constant(1.0)
