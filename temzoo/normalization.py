"""Image normalisation that travels with a model (CSBDeep style).

A :class:`Normalizer` has ``before`` (raw image -> network input) and
``after`` (network output -> raw intensity scale, for restoration tasks), and
a ``get_config`` stored in the model card so prediction normalises exactly as
training did.
"""

import numpy as np

KINDS = ("standardize", "percentile", "none")
# Values per block when summing image statistics (one float64 block: 2 MB).
STATS_BLOCK = 1 << 18


def _blocks(image):
    flat = image.reshape(-1)  # a view for contiguous arrays
    for start in range(0, flat.size, STATS_BLOCK):
        yield flat[start:start + STATS_BLOCK].astype(np.float64)


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

    def tf_before(self, image):
        """The same normalisation on a ``tf.Tensor`` (one image, HxWxC), for input pipelines."""
        import tensorflow as tf

        image = tf.cast(image, tf.float32)
        if self.kind == "standardize":
            mean, var = tf.nn.moments(image, axes=list(range(image.shape.rank)))
            return (image - mean) / (tf.sqrt(var) + self.eps)
        if self.kind == "percentile":
            flat = tf.sort(tf.reshape(image, [-1]))
            n = tf.cast(tf.size(flat) - 1, tf.float32)
            lo = tf.gather(flat, tf.cast(tf.round(n * self.low / 100.0), tf.int32))
            hi = tf.gather(flat, tf.cast(tf.round(n * self.high / 100.0), tf.int32))
            return (image - lo) / (hi - lo + self.eps)
        return image

    def get_config(self):
        return {"kind": self.kind, "low": self.low, "high": self.high, "eps": self.eps}

    @classmethod
    def from_config(cls, config):
        return cls(**(config or {}))

    def __eq__(self, other):
        return isinstance(other, Normalizer) and self.get_config() == other.get_config()

    def __repr__(self):
        return f"Normalizer({self.get_config()})"
