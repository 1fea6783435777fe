"""Tiled prediction for micrographs of any size: ``temzoo.predict(model, image)``.

How an image goes through a model:

1. **Normalise** with the model card's :class:`~temzoo.normalization.Normalizer`
   (statistics of the whole image, so every tile is normalised alike).
2. **Pad** bottom/right by reflection to a multiple of the model's total stride.
3. **Tile**: each axis is split evenly into the fewest tiles of at most
   ``tile_size`` pixels (:func:`axis_layout`, CSBDeep's ``n_tiles`` idea), tile
   sides and starts multiples of the stride, so pooling grids line up with the
   untiled image; neighbours overlap by at least ``overlap`` pixels, by default
   the receptive field plus a short blending ramp (see :func:`tile_geometry`),
   for models with a very large receptive field the measured *effective*
   receptive field (see :func:`predict`); tiles are at least twice the overlap.
4. **Blend** in a float32 accumulator: each tile is weighted by a separable
   window that is 0 within ``margin`` pixels of an inner tile edge (pixels whose
   receptive field reaches the edge, hence differ from the untiled result),
   rises with a half-Hann ramp and is 1 in the middle; at the image's own border
   it stays 1. The sum is divided by the summed weights, so where one tile
   covers a pixel the result is exactly that tile's, and wherever weights are
   non-zero the result equals the untiled prediction (to float rounding) for
   models whose layers are local (batch normalisation in inference mode is;
   group/instance normalisation use whole-tile statistics and are not).
5. **Crop** back to the input's size (times the output scale), and for
   restoration models map back with ``normalizer.after``.

Only one batch of tiles is in memory at a time; besides the input, its
normalised padded copy and the output, memory holds two 1-D weight profiles.

**Tile size** (``tile_size=None``): the largest multiple of the stride, at most
:data:`MAX_TILE`, whose activations fit a memory budget: ``bytes per input
pixel`` is estimated once per model as half of 4 bytes times the summed
channels of every layer's output, each weighted by its area relative to the
input (measured on a small probe image); the measured peak on CPU was 17-47 %
of that sum (:data:`ACTIVATION_FRACTION`). The
budget on CPU is half the available RAM, at most :data:`MAX_BUDGET_BYTES`, less
what the image's own arrays take (its normalised copy and the output); on a GPU it
is :data:`GPU_BUDGET_BYTES`. Measured (``benchmarks/predict.py``, idle): a 2 GiB cap
gave ``unet_pretrained`` 6 % tiling overhead at 4096 px (peak RSS 1.8 GB) against 14 %
(1.3 GB) at 1 GiB; the cap stays at 1 GiB until peak RSS at 8192 px is measured with it.
On ``tf.errors.ResourceExhaustedError`` the prediction restarts with tiles half as large (batch size 1), down to the
smallest tile the overlap allows.
"""

import math
import os
import warnings
import weakref

import numpy as np

from temzoo.errors import BadInputError, InputSizeError

MAX_TILE = 2048
MIN_IMAGE_SIDE = 2
MAX_BUDGET_BYTES = 1 << 30
MIN_BUDGET_BYTES = 256 << 20
GPU_BUDGET_BYTES = 1 << 30
MAX_BATCH = 8
# share of the summed layer activations alive at once during inference; measured
# peak RSS growth on CPU was 0.17 (unet_b2_p22) to 0.47 (hrnet_w18_small) of the sum
ACTIVATION_FRACTION = 0.5
# models whose theoretical receptive field is wider than this (px) get tile margins
# from their measured effective receptive field when the image needs tiling
LARGE_RECEPTIVE_FIELD = 256

_bytes_per_pixel_cache = weakref.WeakKeyDictionary()
_forward_cache = weakref.WeakKeyDictionary()
_effective_rf_cache = weakref.WeakKeyDictionary()
_precision_cache = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------- model facts
def model_stride(model):
    """Total stride of ``model``: the largest ``SizeCheck`` stride in it (1 if none)."""
    from temzoo.models.layers import SizeCheck

    strides = [layer.stride for layer in _all_layers(model) if isinstance(layer, SizeCheck)]
    return max(strides, default=1)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def is_restoration(model, card=None):
    """True unless the model segments (task ``segmentation`` or a softmax/sigmoid head)."""
    task = (card or {}).get("task")
    if task:
        return task != "segmentation"
    try:
        activation = model.get_layer("head_activation").activation
    except ValueError:
        return True
    return getattr(activation, "__name__", str(activation)) not in ("softmax", "sigmoid")


def _receptive_field(model):
    from temzoo.receptive_field import receptive_field

    try:
        return int(receptive_field(model))
    except Exception as exc:  # a layer the graph analysis does not know
        warnings.warn(
            f"{model.name}: receptive field unknown ({exc}); tiles overlap by 128 px, "
            "pass overlap= to choose.",
            stacklevel=3,
        )
        return 128


def bytes_per_pixel(model):
    """Estimated activation bytes per input pixel (see the module docstring); cached per model."""
    if model in _bytes_per_pixel_cache:
        return _bytes_per_pixel_cache[model]
    import keras

    stride = model_stride(model)
    side = max(2 * stride, 64)
    side = -(-side // stride) * stride
    channels = model.inputs[0].shape[-1] or 1
    try:
        layers = [layer for layer in model.layers[1:] if not isinstance(layer, keras.layers.InputLayer)]
        probe = keras.Model(model.inputs, [layer.output for layer in layers])
        outputs = probe([np.zeros((1, side, side, channels), "float32")], training=False)
        floats = sum(int(np.prod(out.shape[1:])) for out in keras.tree.flatten(outputs))
        value = ACTIVATION_FRACTION * 4.0 * floats / (side * side)
    except Exception:
        # nested or multi-output layers the probe cannot expose: assume 1024 channels at full size
        value = 4.0 * 1024
    _bytes_per_pixel_cache[model] = value
    return value


def memory_budget(image_bytes=0):
    """Bytes of activations one batch of tiles may use (see the module docstring).

    ``image_bytes``: what the image's own arrays (normalised copy, output) take.
    """
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return GPU_BUDGET_BYTES
    available = None
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    if not available:
        return MIN_BUDGET_BYTES
    return int(max(min(available / 2, MAX_BUDGET_BYTES) - image_bytes, MIN_BUDGET_BYTES))


# ----------------------------------------------------------------------------- geometry
def _round_up(n, multiple):
    return -(-int(n) // multiple) * multiple


def tile_geometry(receptive_field, stride, overlap=None):
    """``(margin, ramp)`` in input pixels, multiples of ``stride``; ``overlap = 2 * margin + ramp``.

    By default ``margin`` is half the receptive field, rounded up to the stride
    (pixels this close to an inner tile edge see the edge and get weight 0), and
    ``ramp``, the blending width, is an eighth of the margin (at least 8 px), so
    the overlap is just over the receptive field. An explicit ``overlap`` is
    split 3:2:3 (margin, ramp, margin); below the receptive field, pixels near
    tile seams are blended from inexact values.
    """
    if overlap is None:
        margin = _round_up(math.ceil(receptive_field / 2), stride)
        ramp = _round_up(max(8, margin // 8), stride)
    else:
        overlap = _round_up(max(int(overlap), 0), stride)
        ramp = _round_up(overlap // 4, stride) if overlap else 0
        margin = (overlap - ramp) // (2 * stride) * stride
    return margin, ramp


def tile_starts(length, tile, step):
    """Start offsets of tiles of size ``tile`` covering ``length`` (the last one flush with the end)."""
    if length <= tile:
        return [0]
    count = -(-(length - tile) // step) + 1
    return sorted({min(i * step, length - tile) for i in range(count)})


def axis_layout(length, max_tile, overlap, stride):
    """``(tile, starts)`` along one axis: the fewest tiles of at most ``max_tile`` px, sized evenly.

    CSBDeep's ``n_tiles`` idea: the axis (a multiple of ``stride``) is split into
    ``n`` tiles, the fewest whose steps leave ``overlap`` px between neighbours,
    and the tile side is the smallest multiple of ``stride`` that covers the axis
    with ``n`` tiles, instead of ``max_tile``-px tiles with the last one flush with
    the end (up to a whole tile of extra work). Starts are multiples of ``stride``
    spread evenly from 0 to ``length - tile``.
    """
    if length <= max_tile:
        return length, [0]
    if max_tile - overlap < stride:
        raise ValueError(
            f"tile_size={max_tile} is too small for an overlap of {overlap} px; "
            f"use tiles of at least {2 * overlap} px or a smaller overlap."
        )
    count = -(-(length - overlap) // (max_tile - overlap))
    while True:
        tile = _round_up(-(-(length + (count - 1) * overlap) // count), stride)
        while tile <= max_tile:
            starts = [round((length - tile) * i / (count - 1) / stride) * stride for i in range(count)]
            if max(np.diff(starts)) <= tile - overlap:
                return tile, starts
            tile += stride
        count += 1


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


def _profile_sum(length, tile, starts, margin, ramp):
    total = np.zeros(length, np.float64)
    for s in starts:
        total[s:s + tile] += window_1d(tile, s, length, margin, ramp)
    return total


def choose_tile_size(model, stride, overlap, batch_size=None, image_bytes=0):
    """Tile side (multiple of ``stride``) and batch size for the memory budget."""
    bpp = bytes_per_pixel(model)
    budget = memory_budget(image_bytes)
    batch = batch_size or 1
    side = int(math.sqrt(budget / (bpp * batch)))
    side = max(side // stride * stride, stride)
    smallest = _round_up(overlap + max(overlap, 2 * stride, 64), stride)
    side = min(max(side, smallest), _round_up(MAX_TILE, stride))
    if batch_size is None:
        batch = int(max(1, min(MAX_BATCH, budget // max(bpp * side * side, 1))))
    return side, batch


# ----------------------------------------------------------------------------- prediction
def _forward(model):
    """A ``tf.function`` of the model's inference call, traced once per tile shape.

    Not ``model.predict_on_batch``: its ``reduce_retracing`` relaxes the shape to
    ``None`` after two sizes, which some layers (bilinear ``UpSampling2D``)
    cannot trace.
    """
    if model not in _forward_cache:
        import tensorflow as tf

        _forward_cache[model] = tf.function(lambda x: model(x, training=False), reduce_retracing=False)
    return _forward_cache[model]


def _as_image(image, channels):
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == channels:
        pass
    elif array.ndim == 2 and channels == 1:
        array = array[..., None]
    else:
        raise BadInputError(
            f"predict() takes one image of shape (H, W) or (H, W, {channels}); got shape {array.shape}. "
            "Predict the frames of a stack one at a time."
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise BadInputError(f"predict() needs a real-valued numeric image, got dtype {array.dtype}.")
    height, width = array.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise InputSizeError(
            f"The image is {height}x{width} pixels: too small to predict (at least "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed)."
        )
    from temzoo.io import check_float32

    check_float32(array, "The image has")  # NaN, infinities, float64 values beyond float32's range
    return array


def predict(model, image, *, tile_size=None, overlap=None, batch_size=None, normalizer=None, progress=None,
            precision="float32"):
    """Predict ``image`` (``H x W`` or ``H x W x C``, any size) with ``model``, tile by tile.

    Args:
        model: a Keras model, a pretrained registry name or a ``.keras`` path.
        image: numeric array; integer images are converted to float32.
        tile_size: largest tile side in pixels (rounded up to the model's
            stride); ``None`` chooses it from available memory. Each axis is
            then split evenly into the fewest tiles of at most that side.
        overlap: overlap of neighbouring tiles in pixels, or how to choose it:
            ``"exact"`` uses the theoretical receptive field plus a blending
            ramp (tiled equals untiled to float rounding); ``"effective"`` uses
            the measured effective receptive field
            (:func:`temzoo.receptive_field.effective_receptive_field`: tiled
            differs from untiled by about 1e-4 of the output's scale, with far
            less overlap); ``None`` (default) is ``"exact"`` for models whose
            receptive field is at most :data:`LARGE_RECEPTIVE_FIELD` px and
            ``"effective"`` above, where the exact overlap would multiply the work.
        batch_size: tiles per model call; ``None`` fills the memory budget (1-8).
        normalizer: a :class:`~temzoo.normalization.Normalizer`; ``None`` uses
            the model card's (no normalisation if the model has no card).
        progress: optional ``callable(tiles_done, tiles_total)``.
        precision: ``"float32"`` (default), ``"mixed_bfloat16"``, or ``"auto"``
            (bfloat16 where the hardware computes it natively, see
            :func:`temzoo.precision.resolve_precision`); the model's weights are
            used in a copy computing under that policy. bfloat16 outputs differ
            slightly from float32 ones (8-bit mantissa; on the shipped U-Nets up to
            0.1-0.16 of the output's standard deviation at single pixels).

    Returns:
        float32 array of the input's height and width (times the model's scale):
        ``H x W`` for single-channel outputs of a 2-D input, else ``H x W x C``
        (class probabilities for segmentation). Restoration outputs are mapped
        back to the input's intensity scale with ``normalizer.after``.
    """
    import keras

    from temzoo.normalization import Normalizer
    from temzoo.pretrained import card as card_of

    if not isinstance(model, keras.Model):
        from temzoo.tasks.backbone import resolve_model

        model = resolve_model(model, allow_architecture=False).model
    card = card_of(model)
    model = _with_precision(model, precision)
    if normalizer is None:
        from temzoo.tasks.builder import normalizer_of

        normalizer = normalizer_of(card, Normalizer("none"))
    channels = model.inputs[0].shape[-1] or 1
    squeeze = np.ndim(image) == 2
    array = _as_image(image, channels)
    height, width = array.shape[:2]

    stride = model_stride(model)
    out_channels = (model.outputs[0].shape[-1] or 1) * int((card or {}).get("scale") or 1) ** 2
    image_bytes = 4 * (channels + out_channels) * _round_up(height, stride) * _round_up(width, stride)
    margin, ramp, tile, batch = _layout_parameters(
        model, stride, overlap, tile_size, batch_size, max(height, width), image_bytes
    )

    stats = normalizer.stats(array)
    pad_h, pad_w = _round_up(height, stride) - height, _round_up(width, stride) - width
    padded = array.astype(np.float32)  # a copy: normalised in place below
    if pad_h or pad_w:
        padded = np.pad(padded, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    offset, scale = stats
    padded -= np.float32(offset)
    padded /= np.float32(scale)
    del array

    import tensorflow as tf

    while True:
        try:
            output = _predict_tiles(model, padded, tile, batch, margin, ramp, stride, progress)
            break
        except tf.errors.ResourceExhaustedError:
            smaller = max(_round_up(tile // 2, stride), stride)
            full_overlap = 2 * margin + ramp
            floor = _round_up(full_overlap + max(full_overlap, stride), stride)
            if smaller < floor or smaller >= tile:
                raise
            warnings.warn(f"Out of memory with {tile}-px tiles; retrying with {smaller}-px tiles.", stacklevel=2)
            tile, batch = smaller, 1
    factor = output.shape[0] // padded.shape[0]
    del padded
    output = output[: height * factor, : width * factor]
    if is_restoration(model, card):
        for row in range(0, output.shape[0], 256):
            output[row:row + 256] = normalizer.after(output[row:row + 256], stats)
    if squeeze and output.shape[-1] == 1:
        output = output[..., 0]
    return output


def _with_precision(model, precision):
    """``model``, or a copy of it computing under ``precision`` (cached per model)."""
    from temzoo.precision import model_precision, precision_copy, resolve_precision

    name = resolve_precision(precision)
    if model_precision(model) == name:
        return model
    copies = _precision_cache.setdefault(model, {})
    if name not in copies:
        from temzoo.pretrained import attach_card, card

        copies[name] = precision_copy(model, name)
        if card(model):  # the copy predicts like the model: same task, normaliser, recorded fields
            attach_card(copies[name], card(model))
    return copies[name]


def _layout_parameters(model, stride, overlap, tile_size, batch_size, longest_side, image_bytes=0):
    """``(margin, ramp, max_tile, batch)`` for :func:`predict` (see its ``overlap`` argument)."""
    if overlap is None or isinstance(overlap, str):
        if overlap not in (None, "exact", "effective"):
            raise ValueError(f"overlap={overlap!r}: pass a number of pixels, None, 'exact' or 'effective'.")
        rf = _receptive_field(model)
        margin, ramp = tile_geometry(rf, stride)
    else:
        rf = None
        margin, ramp = tile_geometry(None, stride, overlap)
    tile, batch = _tile_and_batch(model, stride, 2 * margin + ramp, tile_size, batch_size, image_bytes)
    wants_effective = overlap == "effective" or (overlap is None and rf is not None and rf > LARGE_RECEPTIVE_FIELD)
    if wants_effective and longest_side > tile:
        rf = effective_receptive_field(model)
        margin, ramp = tile_geometry(rf, stride)
        tile, batch = _tile_and_batch(model, stride, 2 * margin + ramp, tile_size, batch_size, image_bytes)
    full_overlap = 2 * margin + ramp
    if tile_size is None and tile < 2 * full_overlap and longest_side > tile:
        warnings.warn(
            f"{model.name}: its receptive field ({rf} px) needs tiles of {2 * full_overlap} px, more than the "
            f"largest default tile ({tile} px); tiles overlap by {tile // 2} px instead, so pixels near tile "
            "seams may differ slightly from an untiled prediction. Pass tile_size= to choose.",
            stacklevel=3,
        )
        margin, ramp = tile_geometry(None, stride, overlap=tile // 2)
    return margin, ramp, tile, batch


def _tile_and_batch(model, stride, overlap, tile_size, batch_size, image_bytes=0):
    """Largest tile side and tiles per call: from the memory budget, or as given."""
    if tile_size is None:
        return choose_tile_size(model, stride, overlap, batch_size, image_bytes)
    return max(_round_up(tile_size, stride), stride), int(batch_size or 1)


def effective_receptive_field(model):
    """:func:`temzoo.receptive_field.effective_receptive_field` of ``model``, measured once per model.

    A model card's ``effective_receptive_field`` entry, where present, is used instead.
    """
    if model not in _effective_rf_cache:
        from temzoo.pretrained import card as card_of
        from temzoo.receptive_field import effective_receptive_field as measure

        recorded = (card_of(model) or {}).get("effective_receptive_field")
        _effective_rf_cache[model] = int(recorded) if recorded else measure(model)
    return _effective_rf_cache[model]


def _predict_tiles(model, padded, tile, batch, margin, ramp, stride, progress):
    """Run the tiles of the normalised, padded image; return the blended float32 output.

    ``tile`` is the largest tile side; each axis is split evenly (:func:`axis_layout`).
    """
    height, width = padded.shape[:2]
    overlap = 2 * margin + ramp
    tile_h, rows = axis_layout(height, tile, overlap, stride)
    tile_w, cols = axis_layout(width, tile, overlap, stride)
    positions = [(r, c) for r in rows for c in cols]
    batch = max(1, min(batch, len(positions)))
    output = None
    factor = 1
    done = 0
    for first in range(0, len(positions), batch):
        chunk = positions[first:first + batch]
        tiles = np.stack([padded[r:r + tile_h, c:c + tile_w] for r, c in chunk])
        if len(chunk) < batch and len(positions) > batch:  # keep one traced shape
            tiles = np.concatenate([tiles, np.zeros((batch - len(chunk), *tiles.shape[1:]), tiles.dtype)])
        result = np.asarray(_forward(model)(tiles), dtype=np.float32)[: len(chunk)]
        if output is None:
            factor = result.shape[1] // tile_h
            if result.shape[1] != factor * tile_h or result.shape[2] != factor * tile_w or factor < 1:
                raise ValueError(
                    f"{model.name}: a {tile_h}x{tile_w} tile gave a {result.shape[1]}x{result.shape[2]} output; "
                    "predict() needs outputs of the input's size or an integer multiple of it."
                )
            output = np.zeros((height * factor, width * factor, result.shape[-1]), np.float32)
            m, rp = margin * factor, ramp * factor
            wy = {r: window_1d(tile_h * factor, r * factor, height * factor, m, rp) for r in rows}
            wx = {c: window_1d(tile_w * factor, c * factor, width * factor, m, rp) for c in cols}
        for (r, c), out in zip(chunk, result, strict=True):
            weight = wy[r][:, None, None] * wx[c][None, :, None]
            output[r * factor:(r + tile_h) * factor, c * factor:(c + tile_w) * factor] += out * weight
        done += len(chunk)
        if progress is not None:
            progress(done, len(positions))
    total_y = _profile_sum(height * factor, tile_h * factor, [r * factor for r in rows], m, rp)
    total_x = _profile_sum(width * factor, tile_w * factor, [c * factor for c in cols], m, rp)
    if (total_y <= 0).any() or (total_x <= 0).any():
        raise AssertionError("tile weights leave pixels uncovered; this is a bug in temzoo.tiling")
    inv_x = (1.0 / total_x).astype(np.float32)[None, :, None]
    for row in range(0, output.shape[0], 256):
        output[row:row + 256] *= (1.0 / total_y[row:row + 256]).astype(np.float32)[:, None, None] * inv_x
    return output
