"""The preprocessing recipe of Sytwu, Groschner & Scott (2022), as plain NumPy functions.

Follows ``dataset_preprocessing/preprocessing_routines.py`` and
``dataset_preprocessing/Preprocessing_dataset.ipynb`` of
https://github.com/ScottLabUCB/HRTEM-Receptive-Field, in this order:

1. ``remove_xrays``: pixels brighter than ``median + threshold`` are X-ray hits; each is
   replaced, brightest first, by the mean of its 8 neighbours (by the image mean on the
   border); a second pass catches what the first left. Negative pixels are set to 0.
2. ``standardize``: per image, ``(x - mean) / std``.
3. ``tile_positions`` / ``tile``: non-overlapping ``patch_size`` tiles, row-major; a
   remainder smaller than a tile is dropped.
4. ``keep_patch``: a tile is kept only if it has MORE than ``min_particle_pixels``
   particle pixels (exactly 400 is dropped, as ``lbled_pixels > threshold`` upstream).
5. ``sequential_split``: the kept tiles, in order, are cut 70/10/20 into
   train/validation/test with ``valid_start = 70 * n // 100`` and
   ``test_start = valid_start + 10 * n // 100``.

The upstream dihedral augmentation and shuffling of each split are left to training.
"""

import numpy as np

PATCH_SIZE = 512
MIN_PARTICLE_PIXELS = 400
SPLIT_PERCENT = (70, 10, 20)
SPLIT_NAMES = ("train", "validation", "test")


def remove_xrays(image, threshold):
    """Return a float64 copy of ``image`` with X-ray outliers replaced.

    A pixel is an outlier when it is above ``median(image) + threshold``; only those
    pixels change (besides negative pixels, clipped to 0 as upstream does).
    """
    image = np.array(image, dtype=np.float64, copy=True)
    if image.ndim != 2:
        raise ValueError(f"remove_xrays expects a 2-D image, got shape {image.shape}")
    image[image < 0] = 0
    for _ in range(2):  # upstream repeats the pass once "if there are still outliers"
        cutoff = np.median(image) + threshold
        bad = np.argwhere(image > cutoff)
        if len(bad) == 0:
            break
        # Brightest first, so a bright hit is not averaged into a neighbour's fix.
        order = np.argsort(image[bad[:, 0], bad[:, 1]], kind="stable")[::-1]
        height, width = image.shape
        for r, c in bad[order]:
            if r == 0 or c == 0 or r == height - 1 or c == width - 1:
                image[r, c] = image.mean()
            else:
                block = image[r - 1 : r + 2, c - 1 : c + 2]
                image[r, c] = (block.sum() - image[r, c]) / 8.0
    return image


def standardize(image):
    """``(image - mean) / std`` over the whole image; a constant image raises."""
    image = np.asarray(image, dtype=np.float64)
    std = image.std()
    if not std > 0:
        raise ValueError("cannot standardise a constant image (standard deviation 0)")
    return (image - image.mean()) / std


def tile_positions(height, width, patch_size=PATCH_SIZE):
    """Top-left corners ``(row, col)`` of the non-overlapping tiles, row-major."""
    return [
        (j * patch_size, k * patch_size)
        for j in range(height // patch_size)
        for k in range(width // patch_size)
    ]


def tile(array, row, col, patch_size=PATCH_SIZE):
    return array[row : row + patch_size, col : col + patch_size]


def keep_patch(mask_patch, min_particle_pixels=MIN_PARTICLE_PIXELS):
    """True when the tile has more than ``min_particle_pixels`` particle (non-zero) pixels."""
    return int(np.count_nonzero(mask_patch)) > min_particle_pixels


def kept_tiles(mask, patch_size=PATCH_SIZE, min_particle_pixels=MIN_PARTICLE_PIXELS):
    """Tile corners of ``mask`` that survive ``keep_patch`` (all tiles if the minimum is None)."""
    positions = tile_positions(mask.shape[0], mask.shape[1], patch_size)
    if min_particle_pixels is None:
        return positions
    return [
        (r, c)
        for r, c in positions
        if keep_patch(tile(mask, r, c, patch_size), min_particle_pixels)
    ]


def split_bounds(n, percent=SPLIT_PERCENT):
    """``(valid_start, test_start)`` of the upstream sequential split of ``n`` items."""
    valid_start = percent[0] * n // 100
    test_start = valid_start + percent[1] * n // 100
    return valid_start, test_start


def sequential_split(items, percent=SPLIT_PERCENT):
    """Cut ``items`` in order into ``{"train": ..., "validation": ..., "test": ...}``."""
    items = list(items)
    valid_start, test_start = split_bounds(len(items), percent)
    return {
        "train": items[:valid_start],
        "validation": items[valid_start:test_start],
        "test": items[test_start:],
    }


def binary_mask(labels):
    """Labels as uint8 0/1: any non-zero label is particle."""
    return (np.asarray(labels) != 0).astype(np.uint8)


def particle_channel(maps):
    """Particle mask from a 2-channel one-hot map (background, particle): argmax == 1."""
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.shape[-1] != 2:
        raise ValueError(f"expected a (H, W, 2) one-hot map, got shape {maps.shape}")
    return (maps[..., 1] > maps[..., 0]).astype(np.uint8)
