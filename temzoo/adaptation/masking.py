"""Blind-spot masking (Noise2Void) with N2V2's replacement, in NumPy.

Noise2Void (Krull et al. 2019) trains a network to predict a pixel from its surroundings
only: a few pixels of each training patch are replaced, and the loss is taken at those
pixels against their original noisy values. Since pixel noise is independent, the best
prediction of the noisy value is the clean one.

N2V2 (Höck et al. 2022) showed that the original replacement (a random neighbour, which
may be the pixel itself) and max-pooling/top-level skips cause checkerboard artefacts.
Of its remedies, the one that applies to a fixed pretrained architecture is the
replacement: each masked pixel gets the **median of its neighbourhood without the centre
pixel**, so the network never sees the value it must predict and gets no high-frequency
hint from the replacement. Masked pixels are drawn stratified, one per cell of a regular
grid (as N2V does), so they spread over the patch.
"""

import math

import numpy as np


def mask_coordinates(shape, fraction, rng):
    """Stratified random ``(rows, cols)``: about ``fraction`` of the pixels of a ``shape`` (H, W) patch,
    one per grid cell of side ``1 / sqrt(fraction)``."""
    height, width = shape
    cell = max(1.0, 1.0 / math.sqrt(fraction))
    ny, nx = max(1, int(height / cell)), max(1, int(width / cell))
    ys = ((np.arange(ny)[:, None] + rng.random((ny, nx))) * (height / ny)).astype(np.int64).ravel()
    xs = ((np.arange(nx)[None, :] + rng.random((ny, nx))) * (width / nx)).astype(np.int64).ravel()
    return np.minimum(ys, height - 1), np.minimum(xs, width - 1)


def neighbourhood_median(image, rows, cols, size=5):
    """Median of the ``size`` x ``size`` window around each ``(row, col)`` of a 2-D image,
    the centre pixel excluded; the window is mirrored at the image's border."""
    radius = size // 2
    padded = np.pad(image, radius, mode="reflect")
    dy, dx = np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1), indexing="ij")
    keep = (dy != 0) | (dx != 0)
    dy, dx = dy[keep], dx[keep]
    values = padded[rows[:, None] + radius + dy[None, :], cols[:, None] + radius + dx[None, :]]
    return np.median(values, axis=1)


def blind_spot_batch(patches, fraction, size, rng):
    """Masked inputs, targets and loss weights for a batch of 2-D patches ``(N, H, W)``.

    Returns ``(inputs, targets, weights)``, each ``(N, H, W, 1)`` float32: ``inputs`` has
    the masked pixels replaced by :func:`neighbourhood_median`, ``targets`` is the
    unchanged patch, ``weights`` is 1 at masked pixels and 0 elsewhere.
    """
    patches = np.asarray(patches, dtype=np.float32)
    inputs = patches.copy()
    weights = np.zeros_like(patches)
    for i, patch in enumerate(patches):
        rows, cols = mask_coordinates(patch.shape, fraction, rng)
        inputs[i, rows, cols] = neighbourhood_median(patch, rows, cols, size)
        weights[i, rows, cols] = 1.0
    return inputs[..., None], patches[..., None], weights[..., None]
