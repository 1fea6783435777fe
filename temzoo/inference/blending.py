"""How the tiles of :func:`temzoo.predict` blend: each tile's separable window, their weighted sum, and the division.

:func:`window_1d` is one tile's weights along one axis (0 within ``margin`` of an inner tile
edge, a half-Hann ramp, then 1; 1 at the image's own border), :func:`add_weighted` adds a
tile into the output with them, :func:`profile_sum` sums the windows along an axis and
:func:`divide_by_weights` divides the output by those sums. :mod:`temzoo.inference.tile_layout`
places and sizes the tiles; :mod:`temzoo.inference.tiling` runs them.
"""

import numpy as np


def window_1d(tile, start, length, margin, ramp):
    """Blending weights of one tile along one axis (float32, ``tile`` values)."""
    w = np.ones(tile, np.float32)
    profile = np.concatenate(
        [np.zeros(margin, np.float32), (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)]
    ) if ramp or margin else np.zeros(0, np.float32)
    n = min(len(profile), tile)
    if start > 0:
        w[:n] = profile[:n]
    if start + tile < length:
        w[tile - n:] = np.minimum(w[tile - n:], profile[:n][::-1])
    return w


def profile_sum(length, tile, starts, margin, ramp):
    """Summed blending weights of the tiles at ``starts`` along one axis (float64, ``length`` values)."""
    total = np.zeros(length, np.float64)
    for s in starts:
        total[s:s + tile] += window_1d(tile, s, length, margin, ramp)
    return total


def _ones_between(weights):
    """``(lo, hi)``: ``weights[lo:hi]`` is the run of ones in the middle of a window (``lo == hi`` where none is)."""
    ones = np.flatnonzero(weights == 1)
    return (int(ones[0]), int(ones[-1]) + 1) if ones.size else (0, 0)


def add_weighted(dest, out, wy, wx):
    """``dest += out * wy[:, None, None] * wx[None, :, None]``, without a temporary the size of the tile.

    Where both weights are 1 (most of a large tile) ``out`` is added as it is; the weighted frame around
    it (rows or columns within the blending margin and ramp) is computed strip by strip. The sums are
    the same as with the whole weight array (``out * 1`` is ``out``)."""
    top, bottom = _ones_between(wy)
    left, right = _ones_between(wx)
    if top == bottom or left == right:  # no middle of ones: weigh the whole tile
        dest += out * (wy[:, None, None] * wx[None, :, None])
        return
    dest[top:bottom, left:right] += out[top:bottom, left:right]
    for rows, cols in ((slice(0, top), slice(None)), (slice(bottom, None), slice(None)),
                       (slice(top, bottom), slice(0, left)), (slice(top, bottom), slice(right, None))):
        part = out[rows, cols]
        if part.size:
            dest[rows, cols] += part * (wy[rows, None, None] * wx[None, cols, None])


def _runs(mask):
    """``[(start, stop), ...]`` of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def divide_by_weights(output, total_y, total_x, rows_per_chunk=256):
    """``output *= (1 / total_y)[:, None, None] * (1 / total_x)[None, :, None]`` (float32 reciprocals), in place.

    Only the overlap bands are touched: where both summed weights are 1 (inside a single tile) the
    factor is exactly 1 and the product would change nothing, so the result is the same bit for bit.
    Rows in an overlap are done whole, columns in an overlap only in the other rows; the temporary
    factors are at most ``rows_per_chunk`` rows."""
    inv_y = (1.0 / total_y).astype(np.float32)
    inv_x = (1.0 / total_x).astype(np.float32)
    for lo, hi in _runs(inv_y != 1):
        for row in range(lo, hi, rows_per_chunk):
            end = min(row + rows_per_chunk, hi)
            output[row:end] *= inv_y[row:end, None, None] * inv_x[None, :, None]
    columns = _runs(inv_x != 1)
    for lo, hi in _runs(inv_y == 1) if columns else ():
        for row in range(lo, hi, rows_per_chunk):
            end = min(row + rows_per_chunk, hi)
            for left, right in columns:
                output[row:end, left:right] *= inv_x[None, left:right, None]
