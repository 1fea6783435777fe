"""Resampling an image by a factor (shared by :mod:`temzoo.analysis.scale` and :mod:`temzoo.analysis.polarity`)."""

import numpy as np


def rescale(image, factor):
    """``image`` resampled to ``1/factor`` of its size (``factor`` > 1 shrinks, with anti-aliasing)."""
    from skimage.transform import resize

    image = np.asarray(image, np.float32)
    if float(factor) == 1.0:
        return image
    shape = tuple(max(1, int(round(n / float(factor)))) for n in image.shape)
    return resize(image, shape, order=1, mode="reflect", anti_aliasing=float(factor) > 1).astype(np.float32)
