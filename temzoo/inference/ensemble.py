"""Test-time self-ensemble: average a prediction over the symmetries of the square.

A denoiser (or segmenter) of micrographs should answer the same whatever the image's
orientation, but a trained network does so only approximately; predicting the image
rotated and flipped (the 8 elements of the dihedral group D4), mapping each output back
and averaging removes that orientation-dependent part of the error. It costs one full
prediction per transform. ``benchmarks/adapt.py`` measures what it gains (``docs/adapt.md``).
"""

import numpy as np

__all__ = ["ENSEMBLE_SIZES", "dihedral", "inverse_dihedral", "self_ensemble"]

# how many transforms: identity; + left-right flip; the four quarter turns; all eight
ENSEMBLE_SIZES = (1, 2, 4, 8)
_ORDER = {1: (0,), 2: (0, 4), 4: (0, 1, 2, 3), 8: tuple(range(8))}


def dihedral(array, k):
    """Transform ``k`` (0-7) of the first two axes: ``k % 4`` quarter turns, then a left-right flip if ``k >= 4``."""
    out = np.rot90(array, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def inverse_dihedral(array, k):
    """Undo :func:`dihedral` ``k``: ``inverse_dihedral(dihedral(a, k), k) == a``."""
    out = array[:, ::-1] if k >= 4 else array
    return np.rot90(out, -(k % 4), axes=(0, 1))


def check_size(size):
    """``size`` as an int of :data:`ENSEMBLE_SIZES`, or a ValueError saying which are allowed."""
    if isinstance(size, bool) or int(size) != size or int(size) not in ENSEMBLE_SIZES:
        raise ValueError(f"ensemble must be one of {ENSEMBLE_SIZES} (predictions averaged over that many "
                         f"flips/quarter turns of the image), got {size!r}.")
    return int(size)


def self_ensemble(predict_one, image, size=8, progress=None):
    """The mean of ``inverse_dihedral(predict_one(dihedral(image, k)), k)`` over ``size`` transforms.

    ``predict_one(image, progress)`` predicts one (transformed) image; ``progress``, if
    given, is called as ``progress(done, total)`` over all the transforms' tiles together.
    """
    order = _ORDER[check_size(size)]
    total = None
    mean = None
    for i, k in enumerate(order):
        def report(done, count, i=i):
            nonlocal total
            total = count * len(order)
            if progress is not None:
                progress(i * count + done, total)

        out = np.ascontiguousarray(inverse_dihedral(predict_one(np.ascontiguousarray(dihedral(image, k)), report), k))
        if mean is None:
            mean = out.astype(np.float32, copy=True)
        else:
            mean += out
    mean /= len(order)
    return mean
