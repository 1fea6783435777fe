"""Image normalisation that travels with a model (CSBDeep style).

A :class:`Normalizer` has ``before`` (raw image -> network input) and
``after`` (network output -> raw intensity scale, for restoration tasks), and
a ``get_config`` stored in the task model's Keras config (and its card) so prediction
normalises exactly as training did. Its statistics come from :meth:`Normalizer.stats`
(NumPy: prediction) and :meth:`Normalizer.tf_stats` (TensorFlow: the training
pipelines), one rule written twice side by side; ``tests/test_normalization.py``
checks that they agree.
"""

import numpy as np

KINDS = ("standardize", "percentile", "none")
# Values per block when summing image statistics (one float64 block: 2 MB).
STATS_BLOCK = 1 << 18


def _blocks(image):
    flat = image.reshape(-1)  # a view for contiguous arrays
    for start in range(0, flat.size, STATS_BLOCK):
        yield flat[start:start + STATS_BLOCK].astype(np.float64)


def _tf_percentile(ordered, q):
    """The ``q``-th percentile of sorted float32 values, interpolated as ``np.percentile`` does."""
    import tensorflow as tf

    position = tf.cast(tf.size(ordered) - 1, tf.float32) * (q / 100.0)
    below = tf.floor(position)
    above = tf.minimum(below + 1.0, tf.cast(tf.size(ordered) - 1, tf.float32))
    low, high = tf.gather(ordered, tf.cast(below, tf.int32)), tf.gather(ordered, tf.cast(above, tf.int32))
    return low + (position - below) * (high - low)


def _mean_std(image, eps):
    """(mean, std + eps) with float64 sums over blocks: exact to float64 rounding, no overflow
    for any float32 value, and no full-size float64 copy."""
    count = image.size
    if count == 0:
        return 0.0, 1.0 + eps
    mean = sum(float(block.sum()) for block in _blocks(image)) / count
    variance = 0.0
    for block in _blocks(image):
        block -= mean
        variance += float(np.square(block, out=block).sum())
    variance /= count
    return float(mean), float(np.sqrt(variance)) + eps


class Normalizer:
    """Per-image normalisation.

    Args:
        kind: ``"standardize"`` (subtract the image mean, divide by its std),
            ``"percentile"`` (map the ``low``/``high`` percentiles to 0/1) or ``"none"``.
        low, high: percentiles for ``"percentile"``.
        eps: added to the scale to avoid dividing by zero on flat images.
    """

    def __init__(self, kind="standardize", low=1.0, high=99.8, eps=1e-6):
        if kind not in KINDS:
            raise ValueError(f"normalization kind {kind!r} is not supported; choose one of {', '.join(KINDS)}.")
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}.")
        self.kind, self.low, self.high, self.eps = kind, float(low), float(high), float(eps)

    def stats(self, image):
        """(offset, scale) of one image (any shape, any real dtype).

        Never copies the image at higher precision: the mean and standard deviation
        are summed block by block (float64 sums over float32 blocks of at most
        :data:`STATS_BLOCK` values), percentiles are taken on a float32 copy.
        """
        image = np.asarray(image)
        if self.kind == "standardize":
            return _mean_std(image, self.eps)
        if self.kind == "percentile":
            work = image.astype(np.float32, copy=True)  # np.percentile partitions its input in place
            lo, hi = np.percentile(work.reshape(-1), [self.low, self.high], overwrite_input=True)
            return float(lo), float(hi - lo) + self.eps
        return 0.0, 1.0

    def before(self, image):
        """Normalise ``image``; returns ``(normalised float32 image, (offset, scale))``."""
        offset, scale = self.stats(image)
        return ((np.asarray(image, dtype=np.float32) - offset) / scale).astype(np.float32), (offset, scale)

    def after(self, output, stats):
        """Map a restoration output back to the input's intensity scale."""
        offset, scale = stats
        return (np.asarray(output, dtype=np.float32) * scale + offset).astype(np.float32)

    def tf_stats(self, image):
        """:meth:`stats` on a ``tf.Tensor`` (one image, any shape) inside a ``tf.data`` pipeline or graph.

        The same rule as :meth:`stats`, so a model is trained with the normalisation it is
        predicted with: ``standardize``, the mean and the standard deviation + eps;
        ``percentile``, linearly interpolated percentiles (``np.percentile``'s default
        method) of the sorted values. Returns float32 scalars ``(offset, scale)``;
        ``(image - offset) / scale`` normalises. Computed in float32, so it agrees with
        :meth:`stats` to float32 rounding.
        """
        import tensorflow as tf

        flat = tf.reshape(tf.cast(image, tf.float32), [-1])
        if self.kind == "standardize":
            mean, var = tf.nn.moments(flat, axes=[0])
            return mean, tf.sqrt(var) + self.eps
        if self.kind == "percentile":
            flat = tf.sort(flat)
            lo, hi = (_tf_percentile(flat, q) for q in (self.low, self.high))
            return lo, hi - lo + self.eps
        return tf.constant(0.0), tf.constant(1.0)

    def get_config(self):
        return {"kind": self.kind, "low": self.low, "high": self.high, "eps": self.eps}

    @classmethod
    def from_config(cls, config):
        return cls(**(config or {}))

    def __eq__(self, other):
        return isinstance(other, Normalizer) and self.get_config() == other.get_config()

    def __repr__(self):
        return f"Normalizer({self.get_config()})"


def normalizer_of(card, default=None):
    """The :class:`Normalizer` stored in a card or Keras config (``["normalization"]``), else ``default``."""
    config = (card or {}).get("normalization")
    if isinstance(config, dict):
        return Normalizer.from_config(config)
    return default
