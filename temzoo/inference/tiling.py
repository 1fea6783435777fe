"""Tiled prediction for micrographs of any size: ``temzoo.predict(model, image)``.

How an image goes through a model:

1. **Normalise** with the model card's :class:`~temzoo.zoo.normalization.Normalizer`
   (statistics of the whole image, so every tile is normalised alike).
2. **Pad** bottom/right by reflection to a multiple of the model's total stride.
3. **Tile**: each axis is split evenly into the fewest tiles of at most
   ``tile_size`` pixels (:func:`~temzoo.inference.tile_layout.axis_layout`, CSBDeep's
   ``n_tiles`` idea), tile sides and starts multiples of the stride, so pooling
   grids line up with the untiled image; neighbours overlap by at least
   ``overlap`` pixels, by default the receptive field plus a short blending ramp
   (see :func:`~temzoo.inference.tile_layout.tile_geometry`), for models with a very large
   receptive field the measured *effective* receptive field (see :func:`predict`);
   tiles are at least twice the overlap.
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

Besides the input and the output, memory holds one batch of tiles and two 1-D weight profiles
(tiles are normalised and padded as they are cut, so no normalised copy of the whole image is
made); the output and the batch are in 4 KiB pages (:mod:`temzoo.inference.buffers`).

**Tile size** (``tile_size=None``): the largest multiple of the stride, at most
:data:`~temzoo.inference.tile_layout.MAX_TILE`, whose activations fit a memory budget
(:mod:`temzoo.inference.tile_layout` says how the budget and the activations are estimated).
On ``tf.errors.ResourceExhaustedError`` the prediction restarts with tiles half as
large (batch size 1), down to the smallest tile the overlap allows.

This module runs the tiles; :mod:`temzoo.inference.tile_layout` (re-exported here) places and
sizes them, :mod:`temzoo.inference.blending` weighs and sums them. Inference imports nothing from the task layer: models are resolved by
:mod:`temzoo.zoo.resolve`.
"""

import sys
import warnings
import weakref

import numpy as np

from temzoo.errors import BadInputError, InputSizeError
from temzoo.inference import buffers
from temzoo.inference.blending import add_weighted, divide_by_weights, profile_sum, window_1d
from temzoo.inference.tile_layout import (  # noqa: F401  (re-exported: temzoo.inference.tiling.model_stride, ... keep working)
    ACTIVATION_FRACTION,
    ACTIVATION_PROBE_SIDE,
    BASE_BUDGET_BYTES,
    GPU_BUDGET_BYTES,
    LARGE_RECEPTIVE_FIELD,
    MAX_BATCH,
    MAX_TILE,
    MIN_BUDGET_BYTES,
    activation_floats_per_pixel,
    axis_layout,
    bytes_per_pixel,
    choose_tile_size,
    effective_receptive_field,
    layout_parameters,
    memory_budget,
    model_stride,
    round_up,
    tile_geometry,
    tile_starts,
)
from temzoo.logs import retraced_by_design

MIN_IMAGE_SIDE = 2

_forward_cache = weakref.WeakKeyDictionary()
_precision_cache = weakref.WeakKeyDictionary()
_layout_cache = weakref.WeakKeyDictionary()


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


def predict(model, image, *, tile_size=None, overlap=None, batch_size=None, normalizer=None, progress=None,
            precision="float32", ensemble=1):
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
        normalizer: a :class:`~temzoo.zoo.normalization.Normalizer`; ``None`` uses
            the model card's (no normalisation if the model has no card).
        progress: optional ``callable(tiles_done, tiles_total)``.
        precision: ``"float32"`` (default), ``"mixed_bfloat16"``, or ``"auto"``
            (bfloat16 where the hardware computes it natively, see
            :func:`temzoo.inference.precision.resolve_precision`); the model's weights are
            used in a copy computing under that policy. bfloat16 outputs differ
            slightly from float32 ones (8-bit mantissa; on the shipped U-Nets up to
            0.1-0.16 of the output's standard deviation at single pixels).
        ensemble: 1 (default), 2, 4 or 8: average the prediction over that many
            flips/quarter turns of the image (test-time self-ensemble,
            :mod:`temzoo.inference.ensemble`; costs that many predictions).

    Returns:
        float32 array of the input's height and width (times the model's scale):
        ``H x W`` for single-channel outputs of a 2-D input, else ``H x W x C``
        (class probabilities for segmentation). Restoration outputs are mapped
        back to the input's intensity scale with ``normalizer.after``.
    """
    if ensemble != 1:
        from temzoo.inference.ensemble import self_ensemble

        model, _, normalizer = _model_card_normalizer(model, normalizer, precision)
        return self_ensemble(lambda one, report: predict(
            model, one, tile_size=tile_size, overlap=overlap, batch_size=batch_size, normalizer=normalizer,
            progress=report, precision=precision), image, ensemble, progress)
    model, card, normalizer = _model_card_normalizer(model, normalizer, precision)
    channels = model.inputs[0].shape[-1] or 1
    squeeze = np.ndim(image) == 2
    array = _as_image(image, channels)
    height, width = array.shape[:2]

    stride = model_stride(model)
    margin, ramp, tile, batch = image_layout(model, height, width, overlap, tile_size, batch_size, card)

    stats = normalizer.stats(array)
    padded = _NormalizedPadded(array, stats, stride)
    output = _predict_retrying(model, padded, tile, batch, margin, ramp, stride, progress)
    factor = output.shape[0] // padded.shape[0]
    del padded
    output = output[: height * factor, : width * factor]
    if is_restoration(model, card):
        for row in range(0, output.shape[0], 256):
            output[row:row + 256] = normalizer.after(output[row:row + 256], stats)
    if squeeze and output.shape[-1] == 1:
        output = output[..., 0]
    return output


def image_layout(model, height, width, overlap=None, tile_size=None, batch_size=None, card=None):
    """``(margin, ramp, max_tile, batch)`` that :func:`predict` uses for a ``height x width`` image.

    The memory budget leaves room for the float32 output, the one array as large as
    the image that prediction makes. It also counts what the process holds, which
    changes as it runs, so the layout is decided on a model's first prediction of an
    image of that shape and kept for the next ones: repeated calls cut the same tiles
    (one traced shape, the same result).
    """
    key = (height, width, overlap, tile_size, batch_size)
    known = _layout_cache.setdefault(model, {})
    if key not in known:
        from temzoo.zoo.pretrained import card as card_of

        card = card if card is not None else card_of(model)
        stride = model_stride(model)
        out_channels = (model.outputs[0].shape[-1] or 1) * int((card or {}).get("scale") or 1) ** 2
        image_bytes = 4 * out_channels * round_up(height, stride) * round_up(width, stride)
        known[key] = layout_parameters(model, stride, overlap, tile_size, batch_size, max(height, width), image_bytes)
    return known[key]


def _model_card_normalizer(model, normalizer, precision):
    """The Keras model (computing under ``precision``), its card and the normaliser :func:`predict` uses."""
    import keras

    from temzoo.zoo.normalization import Normalizer
    from temzoo.zoo.pretrained import card as card_of

    if not isinstance(model, keras.Model):
        from temzoo.zoo.resolve import resolve_model

        model = resolve_model(model, allow_architecture=False).model
    card = card_of(model)
    model = _with_precision(model, precision)
    if normalizer is None:
        from temzoo.zoo.resolve import normalizer_of

        normalizer = normalizer_of(card, Normalizer("none"))
    return model, card, normalizer


class _NormalizedPadded:
    """The image normalised and padded by reflection to a multiple of ``stride``, made one tile at a time.

    ``view[r0:r1, c0:c1]`` equals the same slice of a normalised ``np.pad(..., mode="reflect")``
    copy of the whole image, without holding that copy (at 8192 x 8192, 256 MiB).
    """

    def __init__(self, array, stats, stride):
        self.array = array
        self.offset, self.scale = (np.float32(v) for v in stats)
        height, width = array.shape[:2]
        self.shape = (round_up(height, stride), round_up(width, stride), array.shape[2])

    def __getitem__(self, key):
        (rows, pad_h, crop_h), (cols, pad_w, crop_w) = (
            _reflected_source(k, n) for k, n in zip(key, self.array.shape[:2], strict=True)
        )
        block = self.array[rows, cols].astype(np.float32)  # a copy: normalised in place below
        if pad_h or pad_w:
            block = np.pad(block, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        block = block[crop_h:, crop_w:]
        block -= self.offset
        block /= self.scale
        return block


def _reflected_source(index, length):
    """``(source slice, pad after, crop before)`` giving ``index`` of an axis of ``length`` padded by reflection.

    The source starts early enough that reflecting its end reads the rows a reflection of the
    whole axis reads.
    """
    start, stop = index.start or 0, index.stop
    pad = max(stop - length, 0)
    first = min(start, max(length - pad - 1, 0)) if pad else start
    return slice(first, min(stop, length)), pad, start - first


def _predict_retrying(model, padded, tile, batch, margin, ramp, stride, progress):
    """:func:`_predict_tiles`, retried with tiles half as large while memory runs out."""
    import tensorflow as tf

    while True:
        try:
            return _predict_tiles(model, padded, tile, batch, margin, ramp, stride, progress)
        except tf.errors.ResourceExhaustedError:
            smaller = max(round_up(tile // 2, stride), stride)
            full_overlap = 2 * margin + ramp
            floor = round_up(full_overlap + max(full_overlap, stride), stride)
            if smaller < floor or smaller >= tile:
                raise
            warnings.warn(f"Out of memory with {tile}-px tiles; retrying with {smaller}-px tiles.", stacklevel=3)
            tile, batch = smaller, 1


def _with_precision(model, precision):
    """``model``, or a copy of it computing under ``precision`` (cached per model)."""
    from temzoo.inference.precision import model_precision, precision_copy, resolve_precision

    name = resolve_precision(precision)
    if model_precision(model) == name:
        return model
    copies = _precision_cache.setdefault(model, {})
    if name not in copies:
        copies[name] = precision_copy(model, name)  # with the model's card: it predicts alike
    return copies[name]


def _forward(model):
    """A ``tf.function`` of the model's inference call, traced once per tile shape.

    Not ``model.predict_on_batch``: its ``reduce_retracing`` relaxes the shape to
    ``None`` after two sizes, which some layers (bilinear ``UpSampling2D``)
    cannot trace. HRNet heads run as the equivalent, leaner graph of
    :func:`temzoo.models.hrnet_inference.lean_inference_model` (same weights, same
    outputs to float rounding, about half the memory per pixel).
    """
    if model not in _forward_cache:
        import tensorflow as tf

        from temzoo.models.hrnet_inference import lean_inference_model

        graph = lean_inference_model(model)

        def tile_forward(x):  # traced once per tile shape: TensorFlow's retracing warning would only alarm
            return graph(x, training=False)
        _forward_cache[model] = tf.function(retraced_by_design(tile_forward), reduce_retracing=False)
    return _forward_cache[model]


def measure_bytes_per_pixel(model, side=ACTIVATION_PROBE_SIDE):
    """Peak RSS growth of one ``side x side`` inference call of ``model``, per pixel.

    Meaningful only in a fresh process, before any larger call: the peak resident
    set size only grows, and memory freed by earlier calls is reused. A small call
    first takes TensorFlow's one-off costs (tracing, oneDNN set-up) out of the
    measurement.
    """
    channels = model.inputs[0].shape[-1] or 1
    stride = model_stride(model)
    small = round_up(max(2 * stride, 64), stride)
    side = round_up(side, stride)
    forward = _forward(model)
    forward(np.zeros((1, small, small, channels), "float32"))
    before = peak_rss_bytes()
    forward(np.random.default_rng(0).standard_normal((1, side, side, channels)).astype("float32"))
    return (peak_rss_bytes() - before) / (side * side)


def peak_rss_bytes():
    """This process's peak resident set size in bytes.

    Linux: ``VmHWM`` of ``/proc/self/status``, the peak of this program's own memory.
    ``ru_maxrss`` is not used there: a child started by a large process (pytest, a
    notebook) inherits its parent's peak across ``exec``. Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


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
    output, factor, done = None, 1, 0
    tiles = buffers.zeros((batch, tile_h, tile_w, padded.shape[2]))  # refilled per batch: one traced shape
    for first in range(0, len(positions), batch):
        chunk = positions[first:first + batch]
        for i, (r, c) in enumerate(chunk):
            tiles[i] = padded[r:r + tile_h, c:c + tile_w]
        tiles[len(chunk):] = 0
        result = np.asarray(_forward(model)(tiles), dtype=np.float32)[: len(chunk)]
        if output is None:
            factor = result.shape[1] // tile_h
            if result.shape[1] != factor * tile_h or result.shape[2] != factor * tile_w or factor < 1:
                raise ValueError(
                    f"{model.name}: a {tile_h}x{tile_w} tile gave a {result.shape[1]}x{result.shape[2]} output; "
                    "predict() needs outputs of the input's size or an integer multiple of it."
                )
            output = buffers.zeros((height * factor, width * factor, result.shape[-1]))
            m, rp = margin * factor, ramp * factor
            wy = {r: window_1d(tile_h * factor, r * factor, height * factor, m, rp) for r in rows}
            wx = {c: window_1d(tile_w * factor, c * factor, width * factor, m, rp) for c in cols}
        for (r, c), out in zip(chunk, result, strict=True):
            add_weighted(output[r * factor:(r + tile_h) * factor, c * factor:(c + tile_w) * factor], out, wy[r], wx[c])
        done += len(chunk)
        if progress is not None:
            progress(done, len(positions))
    total_y = profile_sum(height * factor, tile_h * factor, [r * factor for r in rows], m, rp)
    total_x = profile_sum(width * factor, tile_w * factor, [c * factor for c in cols], m, rp)
    if (total_y <= 0).any() or (total_x <= 0).any():
        raise AssertionError("tile weights leave pixels uncovered; this is a bug in temzoo.inference.tiling")
    divide_by_weights(output, total_y, total_x)
    return output
