"""Which way round a micrograph's particles are: brighter than their support (HAADF-STEM) or darker (bright field).

A particle model trained with ``polarity="bright"``
(:func:`temzoo.analysis.box_training.train_on_boxes`) has only seen bright
particles: its bright-field training images were inverted. At prediction
(:func:`temzoo.analysis.scale.maps_at_scale`) an image whose particles look dark
(:func:`particles_look_dark`) is inverted too, so the model sees what it learnt.

The decision comes from the image alone: particles are a minority of small
objects standing out of their support, so the image's local contrast (the image
minus a wide Gaussian blur, :data:`HIGH_PASS` of its longer side, after a
shrink to at most :data:`SIDE` pixels) has a long tail on the particles' side:
positive skewness for bright particles, negative for dark ones. The wide blur
removes slow changes (a bright vacuum region beside a bright-field support would
otherwise tip the whole image's histogram). On the 22 box-labelled real
images of ``nanoparticle_boxes`` (18 HAADF-STEM, 4 bright-field) it agreed with
the boxes (:func:`temzoo.data.boxes.particles_are_bright`) on all 22; the blur
width was chosen among 4, 8, 16 and 32 px (at 512 px) on those same images
(issue 18, ``benchmarks/particles_real.py --polarity-report``).
"""

import numpy as np

SIDE = 512  # images are shrunk to at most this many pixels a side first
HIGH_PASS = 1 / 16  # the blur removed: this fraction of the (shrunk) longer side
SMOOTH = 1.0  # px: light smoothing against pixel noise


def contrast_skewness(image):
    """Skewness of ``image``'s local contrast (see the module docstring): > 0 bright particles, < 0 dark."""
    from scipy import ndimage, stats

    from temzoo.analysis.resample import rescale

    image = np.asarray(image, np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}.")
    small = rescale(image, max(1.0, max(image.shape) / SIDE))
    low, high = np.percentile(small, [0.5, 99.5])
    small = np.clip(small, low, high)
    if high <= low:
        return 0.0
    wide = max(SMOOTH * 2, HIGH_PASS * max(small.shape))
    residual = ndimage.gaussian_filter(small, SMOOTH) - ndimage.gaussian_filter(small, wide)
    value = stats.skew(residual.ravel())
    return float(value) if np.isfinite(value) else 0.0


def particles_look_dark(image):
    """True if ``image``'s particles look darker than their support (bright field), from the image alone."""
    return contrast_skewness(image) < 0


def inverted(image):
    """``image`` with its intensities reversed (bright field <-> dark field): ``max + min - image``."""
    image = np.asarray(image, np.float32)
    return (float(image.max()) + float(image.min()) - image).astype(np.float32)
