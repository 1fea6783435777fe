"""Where the tiles of :func:`temzoo.predict` go, how large they are and how they blend.

Pure geometry (:func:`tile_geometry`, :func:`axis_layout`) and
the memory budget that sizes the tiles (:func:`choose_tile_size`);
:mod:`temzoo.inference.blending` weighs and sums them, :mod:`temzoo.inference.tiling` runs them. The algorithm as a whole is described there.

**Overlap**: neighbours overlap by at least ``overlap`` pixels, by default the
receptive field plus a short blending ramp (:func:`tile_geometry`); for models
whose receptive field is wider than :data:`LARGE_RECEPTIVE_FIELD` px, the
measured *effective* receptive field (:func:`effective_receptive_field`).
Tiles are at least twice the overlap.

**Tile size** (``tile_size=None``): the largest multiple of the stride, at most
:data:`MAX_TILE`, whose activations fit a memory budget. ``Bytes per input
pixel`` (:func:`bytes_per_pixel`) is the model card's ``activation_bytes_per_pixel``
where the card has one: the peak RSS growth of one 1024 x 1024 inference call on CPU,
measured in a fresh process when the model was shipped (``recipes/ship.py
--activation-memory``). Otherwise it is estimated from the graph: 4 bytes times the
summed channels of every layer's output (nested models such as a
``keras.applications`` encoder opened up), each weighted by its area relative to the
input, times :data:`ACTIVATION_FRACTION`. The measured peak of the shipped models was
10 % (MobileNet-U-Net), 22 % (U-Net) and 69 % (HRNet, whose head concatenates 286
channels at full resolution, before :mod:`temzoo.models.hrnet_inference`) of that sum,
so the estimate is the largest measured share, a bound for deep models like these
(a chain of three small convolutions measured 110 %). The
budget on CPU is what keeps the process under a resident-memory target
(:data:`PROCESS_MEMORY_TARGET`, 2.5 GiB, or ``$TEMZOO_PREDICT_MEMORY``), counting the
memory it holds already and the image's own arrays (the float32 output); never less
than :data:`BASE_BUDGET_BYTES` (1 GiB, so a process that holds much data still gets
tiles of the usual size) and never more than half the available RAM less the image's
arrays. So a 4096 px image gets tiles about 2100 px wide (2 x 2 for the U-Nets, 1.06x
the image's pixels computed instead of 1.11x with 3 x 3), while at 8192 px, where the
output alone takes up to 805 MiB, the tiles stay close to the 1 GiB budget that keeps
the peak RSS of every shipped model under 3 GB (``benchmarks/predict.py``,
docs/benchmarks.md). A larger target (``TEMZOO_PREDICT_MEMORY=8G``) buys larger tiles,
hence less overlap, on machines with RAM to spare. On a GPU the budget is
:data:`GPU_BUDGET_BYTES`.
"""

import math
import os
import warnings
import weakref

import numpy as np

MAX_TILE = 4096
BASE_BUDGET_BYTES = 1 << 30
#: resident memory (bytes) a CPU prediction sizes its tiles to stay under, what the process holds included
PROCESS_MEMORY_TARGET = int(2.5 * (1 << 30))
PREDICT_MEMORY_ENV = "TEMZOO_PREDICT_MEMORY"
MIN_BUDGET_BYTES = 256 << 20
GPU_BUDGET_BYTES = 1 << 30
MAX_BATCH = 8
# share of the summed layer activations alive at once during inference, for models whose
# card records no measurement; measured peak RSS growth on CPU (1024 px, one tile) was 0.10
# (mobilenet_unet_pretrained), 0.22 (unet_pretrained) and 0.69 (hrnet_pretrained) of the sum
ACTIVATION_FRACTION = 0.7
# where 4 bytes x the summed activations cannot be counted from the graph (a layer the
# shape walk does not know): assume 1024 float32 channels at the input's resolution
UNKNOWN_BYTES_PER_PIXEL = 4.0 * 1024
# side of the one inference call whose peak RSS growth is recorded as a card's
# ``activation_bytes_per_pixel`` (recipes/ship.py --activation-memory)
ACTIVATION_PROBE_SIDE = 1024
# models whose theoretical receptive field is wider than this (px) get tile margins
# from their measured effective receptive field when the image needs tiling
LARGE_RECEPTIVE_FIELD = 256

_bytes_per_pixel_cache = weakref.WeakKeyDictionary()
_effective_rf_cache = weakref.WeakKeyDictionary()
_receptive_field_cache = weakref.WeakKeyDictionary()


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


def _receptive_field(model):
    """The model's theoretical receptive field, analysed once per model (HRNet's graph: 70 ms a call)."""
    if model in _receptive_field_cache:
        return _receptive_field_cache[model]
    from temzoo.receptive_field import receptive_field

    try:
        value = int(receptive_field(model))
    except Exception as exc:  # a layer the graph analysis does not know
        warnings.warn(
            f"{model.name}: receptive field unknown ({exc}); tiles overlap by 128 px, "
            "pass overlap= to choose.",
            stacklevel=3,
        )
        value = 128
    _receptive_field_cache[model] = value
    return value


def effective_receptive_field(model):
    """:func:`temzoo.receptive_field.effective_receptive_field` of ``model``, measured once per model.

    A model card's ``effective_receptive_field`` entry, where present, is used instead.
    """
    if model not in _effective_rf_cache:
        from temzoo.receptive_field import effective_receptive_field as measure
        from temzoo.zoo.pretrained import card as card_of

        recorded = (card_of(model) or {}).get("effective_receptive_field")
        _effective_rf_cache[model] = int(recorded) if recorded else measure(model)
    return _effective_rf_cache[model]


def bytes_per_pixel(model):
    """Activation bytes per input pixel of one inference call (see the module docstring); cached per model.

    The card's measured ``activation_bytes_per_pixel`` where recorded, else
    :data:`ACTIVATION_FRACTION` x 4 bytes x :func:`activation_floats_per_pixel`.
    """
    if model in _bytes_per_pixel_cache:
        return _bytes_per_pixel_cache[model]
    from temzoo.zoo.pretrained import card as card_of

    recorded = (card_of(model) or {}).get("activation_bytes_per_pixel")
    if recorded:
        value = float(recorded)
    else:
        try:
            value = ACTIVATION_FRACTION * 4.0 * activation_floats_per_pixel(model)
        except Exception as exc:  # a layer the shape walk does not know
            warnings.warn(
                f"{model.name}: activation size unknown ({exc}); tiles are sized for "
                f"{UNKNOWN_BYTES_PER_PIXEL:g} bytes per pixel, pass tile_size= to choose.",
                stacklevel=3,
            )
            value = UNKNOWN_BYTES_PER_PIXEL
    _bytes_per_pixel_cache[model] = value
    return value


def activation_floats_per_pixel(model):
    """Summed size of every layer output, in floats per input pixel (nested models opened up).

    Counted from the layer graph's shapes on a probe image (no forward pass):
    a layer output of ``C`` channels at 1/``s`` of the input's resolution
    adds ``C / s**2``.
    """
    from temzoo.models.graph import flatten_calls
    from temzoo.receptive_field import propagate_sizes

    stride = model_stride(model)
    side = round_up(max(2 * stride, 64), stride)
    calls, inputs, _ = flatten_calls(model)
    rows, cols = (propagate_sizes(calls, inputs, axis, side) for axis in (0, 1))
    floats = 0
    for call in calls:
        if call.layer is None:  # an alias passes a tensor through: no new memory
            continue
        for key, shape in zip(call.outputs, call.shapes_out, strict=True):
            if rows.get(key) is not None and cols.get(key) is not None:
                floats += rows[key] * cols[key] * int(shape[-1] or 1)
    return floats / (side * side)


def memory_target():
    """The resident memory a CPU prediction aims to stay under: ``$TEMZOO_PREDICT_MEMORY`` (bytes, or with a
    ``K``, ``M`` or ``G`` suffix for KiB, MiB, GiB), else :data:`PROCESS_MEMORY_TARGET`."""
    value = os.environ.get(PREDICT_MEMORY_ENV, "").strip()
    if not value:
        return PROCESS_MEMORY_TARGET
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (value[:-1], units[value[-1].upper()]) if value[-1].upper() in units else (value, 1)
    try:
        target = float(number) * unit
    except ValueError:
        target = -1
    if not target > 0:
        raise ValueError(f"{PREDICT_MEMORY_ENV}={value!r}: give the memory prediction may use as bytes or with a "
                         "K, M or G suffix, e.g. 8G.")
    return int(target)


def resident_bytes():
    """This process's resident memory now (bytes), 0 where it cannot be read."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        try:
            with open("/proc/self/statm", encoding="ascii") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError, AttributeError):
            return 0


def memory_budget(image_bytes=0):
    """Bytes of activations one batch of tiles may use (see the module docstring).

    ``image_bytes``: what the image's own arrays (the float32 output) take.
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
    room = memory_target() - resident_bytes() - image_bytes
    return int(max(min(available / 2 - image_bytes, max(room, BASE_BUDGET_BYTES)), MIN_BUDGET_BYTES))


# ----------------------------------------------------------------------------- geometry
def round_up(n, multiple):
    """``n`` rounded up to a multiple of ``multiple``."""
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
        margin = round_up(math.ceil(receptive_field / 2), stride)
        ramp = round_up(max(8, margin // 8), stride)
    else:
        overlap = round_up(max(int(overlap), 0), stride)
        ramp = round_up(overlap // 4, stride) if overlap else 0
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
        tile = round_up(-(-(length + (count - 1) * overlap) // count), stride)
        while tile <= max_tile:
            starts = [round((length - tile) * i / (count - 1) / stride) * stride for i in range(count)]
            if max(np.diff(starts)) <= tile - overlap:
                return tile, starts
            tile += stride
        count += 1


# ----------------------------------------------------------------------------- layout of one prediction
def choose_tile_size(model, stride, overlap, batch_size=None, image_bytes=0):
    """Tile side (multiple of ``stride``) and batch size for the memory budget."""
    bpp = bytes_per_pixel(model)
    budget = memory_budget(image_bytes)
    batch = batch_size or 1
    side = int(math.sqrt(budget / (bpp * batch)))
    side = max(side // stride * stride, stride)
    smallest = round_up(overlap + max(overlap, 2 * stride, 64), stride)
    side = min(max(side, smallest), round_up(MAX_TILE, stride))
    if batch_size is None:
        batch = int(max(1, min(MAX_BATCH, budget // max(bpp * side * side, 1))))
    return side, batch


def layout_parameters(model, stride, overlap, tile_size, batch_size, longest_side, image_bytes=0):
    """``(margin, ramp, max_tile, batch)`` for :func:`temzoo.predict` (see its ``overlap`` argument)."""
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
    return max(round_up(tile_size, stride), stride), int(batch_size or 1)
