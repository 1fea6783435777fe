"""Normaliser statistics inside tf.data: :meth:`temzoo.zoo.normalization.Normalizer.tf_stats`."""


def tf_stats(normalizer, image):
    """``normalizer.tf_stats(image)``: float32 ``(offset, scale)``; ``(x - offset) / scale`` normalises.

    The same rule as :meth:`~temzoo.zoo.normalization.Normalizer.stats`, which prediction uses.
    """
    return normalizer.tf_stats(image)
