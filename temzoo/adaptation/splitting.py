"""Binomial splitting of counts: Noise2Noise pairs from a single exposure.

If a pixel recorded ``n`` counts from a Poisson process of mean ``λ``, sending each count
to one half with probability ``p`` gives ``n1 ~ Binomial(n, p)`` and ``n2 = n - n1``, and
these are independent Poisson counts of means ``pλ`` and ``(1 - p)λ`` (Poisson thinning).
``n1 / p`` and ``n2 / (1 - p)`` are then two independent noisy images of the same clean
image, and a network trained to map the first to the second with a squared loss learns
the clean image (Noise2Noise, Lehtinen et al. 2018), from one exposure. It needs counts:
whole numbers per pixel, or data with a known ``gain`` (data units per count) and ``offset``.
The network is trained on inputs of a fraction ``p`` of the dose and applied to the full
dose; the pretrained generators saw doses over a wide range, which is why that works.
"""

import numpy as np

from temzoo.errors import BadInputError

# whole numbers up to this distance count as integers (float32 files of counts)
INTEGER_TOLERANCE = 1e-3


def to_counts(frame, gain=None, offset=0.0, name="image"):
    """The counts a frame holds: ``(frame - offset) / gain``, checked to be whole and >= 0.

    With ``gain=None`` the frame itself must hold whole, non-negative numbers. Raises
    :class:`BadInputError` naming ``name`` and the first offending pixel otherwise.
    """
    frame = np.asarray(frame, dtype=np.float64)
    counts = (frame - offset) / (gain if gain is not None else 1.0)
    rounded = np.rint(counts)
    off = np.abs(counts - rounded) > INTEGER_TOLERANCE
    how = (f"with gain={gain} and offset={offset}, (value - offset) / gain" if gain is not None
           else "its pixel values")
    if off.any():
        y, x = np.unravel_index(int(np.argmax(off)), off.shape)
        raise BadInputError(
            f"{name}: binomial splitting needs counts, but {how} are not whole numbers "
            f"({counts[y, x]:.4g} at row {y}, column {x}). Pass the detector's gain (data units per "
            "count, --gain) and offset if the file holds scaled counts, or use method='blind_spot'."
        )
    if (rounded < 0).any():
        y, x = np.unravel_index(int(np.argmin(rounded)), rounded.shape)
        raise BadInputError(
            f"{name}: binomial splitting needs counts, but {how} go below zero ({rounded[y, x]:.0f} at row {y}, "
            f"column {x}). Pass the dark level as offset (--offset), or use method='blind_spot'."
        )
    return rounded


def holds_counts(frame, gain=None, offset=0.0):
    """True when :func:`to_counts` accepts ``frame``."""
    try:
        to_counts(frame, gain, offset)
    except BadInputError:
        return False
    return True


def binomial_split(counts, fraction, rng):
    """``(input, target)`` from counts: ``n1 / p`` and ``(n - n1) / (1 - p)`` with ``n1 ~ Binomial(n, p)``.

    Both have the mean of ``counts``; they are independent where ``counts`` is Poisson.
    """
    counts = np.asarray(counts)
    first = rng.binomial(counts.astype(np.int64), fraction)
    return (first / fraction).astype(np.float32), ((counts - first) / (1.0 - fraction)).astype(np.float32)
