"""Exact receptive field of a functional model, computed from its graph.

``receptive_field(model)`` is the width, in input pixels, of the set of input
pixels that can influence the centre output pixel. It walks the layer graph
backwards from the centre output pixel (nested models such as a
``keras.applications`` encoder included) and maps the interval of pixels each
tensor contributes through every layer exactly: convolutions with their
stride, dilation and TensorFlow's "same" padding, depthwise and separable
convolutions, transposed convolutions, pooling, nearest and bilinear
upsampling/resizing (half-pixel centres, taps with zero weight excluded), zero
padding, cropping, and element-wise and merging layers.

Definition details:

* Operations whose statistics span the whole image are ignored: the batch,
  group or instance statistics of normalisation layers, and global pooling
  (for example the squeeze-and-excitation gates of MobileNetV3). Without that
  rule every model with group normalisation would "see" the whole image; the
  number reported is the extent of the local, spatial dependencies.
* The image is taken large enough that no border is reached (an "infinite"
  image), its size a multiple of twice the model's total stride, and the centre
  output pixel is the one at index ``size // 2``. For models with a total
  stride ``s`` the receptive field of other pixels can differ slightly with
  their position modulo ``s``; the centre convention makes the number
  reproducible. Pass ``image_size`` to get the extent inside an image of that
  size instead (the set is then clipped at the borders).
* A set with gaps (dilated convolutions) is measured by its extent, first to
  last pixel.
"""

import math
from fractions import Fraction

from temzoo.errors import TemzooError

# Layers that act on each pixel independently (possibly across channels) or
# merge tensors of equal size pixel by pixel.
_POINTWISE_LAYERS = {
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity", "Add", "Subtract", "Multiply", "Average",
    "Maximum", "Minimum", "Concatenate", "Rescaling", "Normalization", "Dense",
    "SizeCheck", "Masking",
}
# Keras operations (not layers) that appear in functional graphs, e.g. ``x + 3.0``.
_POINTWISE_OPS = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
    "Negative", "Abs", "Exp", "Log", "Sqrt", "Square", "Clip", "Relu", "Relu6", "Sigmoid",
    "HardSigmoid", "HardSwish", "Silu", "Gelu", "Tanh", "Softplus", "LeakyRelu", "Elu",
    "Selu", "Cast", "Absolute", "Reciprocal", "Rsqrt",
}
_CONVS = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D"}
_POOLS = {"MaxPooling2D", "AveragePooling2D"}
_GLOBAL = {"GlobalAveragePooling2D", "GlobalMaxPooling2D"}


def receptive_field(model, image_size=None):
    """Receptive field of ``model`` in pixels (an int): see the module docstring.

    Args:
        model: a functional Keras model (every temzoo family is one).
        image_size: ``None`` for the border-free receptive field, or an int or
            ``(height, width)`` to measure it inside an image of that size.

    Returns the larger of the vertical and horizontal extents.
    """
    return max(receptive_extents(model, image_size))


def receptive_extents(model, image_size=None):
    """``(height, width)`` extents of the receptive field of the centre output pixel."""
    from temzoo.models.graph import flatten_calls

    calls, inputs, outputs = flatten_calls(model)
    for call in calls:
        _kind(call.layer)  # fail early on a layer we cannot map
    fixed = _fixed_input_size(model)
    stride = _total_stride(model)
    extents = []
    for axis in (0, 1):
        if image_size is not None:
            size = image_size if isinstance(image_size, int) else image_size[axis]
            extents.append(_extent(calls, inputs, outputs, axis, size, margin=None))
            continue
        if fixed[axis] is not None:
            extents.append(_extent(calls, inputs, outputs, axis, fixed[axis], margin=None))
            continue
        size = 2 * stride * max(1, math.ceil(128 / (2 * stride)))
        while True:
            result = _extent(calls, inputs, outputs, axis, size, margin=stride)
            if result is not None:
                extents.append(result)
                break
            size *= 2
            if size > 2**22:
                raise TemzooError(f"{model.name}: receptive field larger than {size} pixels; is it global?")
    return tuple(extents)


def _fixed_input_size(model):
    shape = model.inputs[0].shape
    return (shape[1], shape[2]) if len(shape) == 4 else (None, None)


def _total_stride(model):
    stride = int(getattr(model, "total_stride", 1) or 1)
    for layer in _all_layers(model):
        if type(layer).__name__ == "SizeCheck":
            stride = math.lcm(stride, int(layer.stride))
    return stride


def _all_layers(model):
    yield model
    for layer in getattr(model, "layers", []):
        yield from _all_layers(layer)


def _kind(layer):
    if layer is None:
        return "alias"
    name = type(layer).__name__
    module = type(layer).__module__
    is_layer = hasattr(layer, "trainable_weights")
    if is_layer and name in _CONVS:
        return "conv"
    if is_layer and name in _POOLS:
        return "pool"
    if is_layer and name == "Conv2DTranspose":
        return "transpose"
    if is_layer and name in ("UpSampling2D", "Resizing"):
        return "resize"
    if is_layer and name == "ZeroPadding2D":
        return "pad"
    if is_layer and name == "Cropping2D":
        return "crop"
    if is_layer and name in _GLOBAL:
        return "global"
    if is_layer and name in _POINTWISE_LAYERS:
        if name == "Concatenate" and layer.axis not in (-1, 3):
            raise TemzooError(f"receptive_field: {layer.name} concatenates along axis {layer.axis}, not channels.")
        return "pointwise"
    if not is_layer and module.startswith("keras.src.ops") and name in _POINTWISE_OPS:
        return "pointwise"
    raise TemzooError(
        f"receptive_field does not know how layer {getattr(layer, 'name', layer)!r} "
        f"({module}.{name}) maps pixels; add it to temzoo/receptive_field.py."
    )


def _spatial(shape):
    return shape is not None and len(shape) == 4


def propagate_sizes(calls, inputs, axis, size):
    """Spatial size along ``axis`` of every tensor of ``flatten_calls``' graph (None: not an image).

    ``size`` is the input size along that axis.
    """
    sizes = {key: size for key in inputs}
    for call in calls:
        kind = _kind(call.layer)
        known = [sizes.get(k) for k in call.inputs]
        if kind in ("alias", "pointwise"):
            spatial = [n for n in known if n is not None]
            n = max(spatial) if spatial else None
            out = [n if _spatial(s) else None for s in call.shapes_out]
        elif kind == "global":
            out = [1 if _spatial(s) else None for s in call.shapes_out]
        else:
            n = known[0]
            out_shape = call.layer.compute_output_shape((1, n, n, call.shapes_in[0][-1]))
            out = [out_shape[1 + axis]]
        for key, n in zip(call.outputs, out, strict=True):
            sizes[key] = n
    return sizes


def _extent(calls, inputs, outputs, axis, size, margin):
    """Extent of the input pixels reaching the centre output pixel, or None if a margin is hit."""
    sizes = propagate_sizes(calls, inputs, axis, size)
    n_out = sizes[outputs[0]]
    centre = n_out // 2
    intervals = {outputs[0]: (centre, centre)}
    for call in reversed(calls):
        got = [intervals[k] for k in call.outputs if k in intervals]
        if not got:
            continue
        lo, hi = min(g[0] for g in got), max(g[1] for g in got)
        kind = _kind(call.layer)
        if kind == "global":
            continue  # statistics over the whole image are ignored (see module docstring)
        for key in call.inputs:
            n_in = sizes.get(key)
            if n_in is None:
                continue
            if kind in ("alias", "pointwise"):
                a, b = (0, 0) if n_in == 1 and sizes[call.outputs[0]] != 1 else (lo, hi)
            else:
                a, b = _backward(call.layer, kind, lo, hi, n_in, sizes[call.outputs[0]], axis)
            a, b = max(a, 0), min(b, n_in - 1)
            if a > b:
                continue
            if key in intervals:
                a, b = min(a, intervals[key][0]), max(b, intervals[key][1])
            intervals[key] = (a, b)
    reached = [intervals[k] for k in inputs if k in intervals]
    if not reached:
        raise TemzooError("receptive_field: no input pixel reaches the centre output pixel.")
    lo, hi = min(r[0] for r in reached), max(r[1] for r in reached)
    if margin is not None and (lo < margin or hi > size - 1 - margin):
        return None
    return hi - lo + 1


def _pair(value, axis):
    return value[axis] if isinstance(value, (tuple, list)) else value


def _same_pad(n_in, n_out, k_eff, stride):
    return max((n_out - 1) * stride + k_eff - n_in, 0) // 2


def _backward(layer, kind, lo, hi, n_in, n_out, axis):
    """Map the output interval [lo, hi] of ``layer`` to its input interval."""
    if kind in ("conv", "pool"):
        if kind == "conv":
            k = _pair(layer.kernel_size, axis)
            s = _pair(layer.strides, axis)
            d = _pair(layer.dilation_rate, axis)
        else:
            k = _pair(layer.pool_size, axis)
            s = _pair(layer.strides, axis)
            d = 1
        k_eff = (k - 1) * d + 1
        pad = _same_pad(n_in, n_out, k_eff, s) if layer.padding == "same" else 0
        return lo * s - pad, hi * s - pad + k_eff - 1
    if kind == "transpose":
        k = _pair(layer.kernel_size, axis)
        s = _pair(layer.strides, axis)
        d = _pair(layer.dilation_rate, axis)
        k_eff = (k - 1) * d + 1
        pad = _same_pad(n_out, n_in, k_eff, s) if layer.padding == "same" else 0
        # output o receives input i through tap t when o = i * s - pad + t * d
        firsts, lasts = [], []
        for t in range(k):
            first = -(-(lo + pad - t * d) // s)
            last = (hi + pad - t * d) // s
            if first <= last:
                firsts.append(first)
                lasts.append(last)
        return min(firsts), max(lasts)
    if kind == "resize":
        interpolation = layer.interpolation
        if type(layer).__name__ == "Resizing":
            if layer.crop_to_aspect_ratio or getattr(layer, "pad_to_aspect_ratio", False):
                raise TemzooError(f"receptive_field: {layer.name} crops or pads to an aspect ratio; not supported.")
            if getattr(layer, "antialias", False):
                raise TemzooError(f"receptive_field: {layer.name} resizes with antialiasing; not supported.")
        elif interpolation == "nearest":
            f = _pair(layer.size, axis)
            return lo // f, hi // f
        scale = Fraction(n_in, n_out)
        if interpolation == "nearest":
            return math.floor((lo + Fraction(1, 2)) * scale), math.floor((hi + Fraction(1, 2)) * scale)
        if interpolation == "bilinear":
            # half-pixel centres: src = (o + 1/2) * scale - 1/2 reads floor(src) and ceil(src)
            return (
                math.floor((lo + Fraction(1, 2)) * scale - Fraction(1, 2)),
                math.ceil((hi + Fraction(1, 2)) * scale - Fraction(1, 2)),
            )
        raise TemzooError(f"receptive_field: {layer.name} uses {interpolation!r} interpolation; not supported.")
    if kind == "pad":
        before = layer.padding[axis][0]
        return lo - before, hi - before
    if kind == "crop":
        before = layer.cropping[axis][0]
        return lo + before, hi + before
    raise AssertionError(kind)


# ----------------------------------------------------------------------------- effective extent
#: Share of the centre outputs' total input influence that may lie outside the
#: effective receptive field (see :func:`effective_receptive_field`).
EFFECTIVE_TOLERANCE = 1e-4


def effective_receptive_field(model, tolerance=EFFECTIVE_TOLERANCE, seed=0):
    """Measured width, in input pixels, of the region that really influences an output pixel.

    The theoretical :func:`receptive_field` counts every pixel with a non-zero
    path to the output; in deep networks the influence of far pixels is tiny
    (Luo et al. 2016, "Understanding the effective receptive field"). This
    function measures it: on two probe images (a smooth random field plus white
    noise, standardised like a micrograph) it takes the gradient of the summed
    outputs of the central ``stride x stride`` block with respect to the input,
    and returns the width ``2 R + stride`` of the smallest square around that
    block (Chebyshev radius ``R``) outside which at most ``tolerance`` of the
    summed absolute influence lies. Never larger than the theoretical field.

    Tiles whose margins are half this width give predictions that differ from
    untiled ones by about ``tolerance`` times the output's scale. The result
    depends on the weights (a trained model, not an architecture) and costs one
    forward and backward pass on an image of the receptive field's size.
    """
    import numpy as np
    import tensorflow as tf

    theoretical = receptive_field(model)
    stride = _total_stride(model)
    side = 2 * stride * math.ceil((theoretical + 4 * stride) / (2 * stride))
    channels = model.inputs[0].shape[-1] or 1
    rng = np.random.default_rng(seed)
    probes = []
    for _ in range(2):
        field = np.cumsum(np.cumsum(rng.normal(size=(side, side, channels)), 0), 1)
        field = field + rng.normal(size=field.shape) * field.std() * 0.5
        probes.append((field - field.mean()) / field.std())
    centre, half = side // 2, stride // 2
    influence = np.zeros((side, side))
    for probe in probes:  # one at a time: a backward pass at this size is the memory peak
        x = tf.constant(probe[None].astype("float32"))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=False)
            block = y[:, centre - half:centre - half + stride, centre - half:centre - half + stride, :]
            objective = tf.reduce_sum(tf.cast(block, tf.float32))
        influence = np.maximum(influence, np.abs(tape.gradient(objective, x).numpy()).max(axis=(0, 3)))
    total = float(influence.sum())
    if not total > 0:
        return theoretical
    rows, cols = np.indices(influence.shape)
    distance = np.maximum(np.abs(rows - centre), np.abs(cols - centre))
    # influence outside radius R, for every R: cumulative sums by distance, from the outside in
    by_distance = np.bincount(distance.ravel(), weights=influence.ravel())
    outside = by_distance[::-1].cumsum()[::-1] - by_distance  # strictly beyond R
    radius = int(np.argmax(outside <= tolerance * total))
    return int(min(theoretical, 2 * radius + stride))
