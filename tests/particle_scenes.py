"""Small particle scenes shared by the particle tests: disks on a grid, their boxes, a noisy image."""

import numpy as np


def disks(shape, centres, radius):
    """Boolean mask of disks of ``radius`` at ``centres`` (row, column)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    return mask


def disk_grid(side, n, first, spacing, radius, seed=4, noise=0.1):
    """An ``n x n`` grid of bright disks on a ``side`` px image with Gaussian ``noise``, and their boxes.

    Returns ``(image, boxes)``: float32 image, boxes ``x0, y0, x1, y1`` (end exclusive) one per disk."""
    rng = np.random.default_rng(seed)
    centres = [(first + spacing * i, first + spacing * j) for i in range(n) for j in range(n)]
    image = (disks((side, side), centres, radius) * 1.0 + rng.normal(0, noise, (side, side))).astype(np.float32)
    boxes = np.array([[cx - radius, cy - radius, cx + radius + 1, cy + radius + 1] for cy, cx in centres], float)
    return image, boxes
