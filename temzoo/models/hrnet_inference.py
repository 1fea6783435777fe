"""A leaner inference graph for HRNet's full-resolution head, same weights, same outputs.

HRNet's head (:func:`temzoo.models.hrnet._head`) upsamples the mixed 1/4-resolution
features (270 channels for ``widths=(18, 36, 72, 144)``) bilinearly to full
resolution, concatenates the input skip (16 channels) and applies a 3x3
convolution to 18 channels. At full resolution that holds 270 + 286 floats per pixel
at once: on CPU one 1024 x 1024 call of ``hrnet_pretrained`` peaks at about 2.7 kB
per pixel, five times a U-Net's, which caps the tile size of
:func:`temzoo.predict`.

Bilinear upsampling acts on each channel alone and linearly, so it commutes with
any per-pixel channel mixing. The 3x3 convolution of the upsampled features is a
sum over its nine taps of shifted per-tap 1x1 mixings, and

    conv3x3(up(m)) = sum over taps t of shift_t(up(W_t m)),

where ``W_t`` (270 -> 18 channels) is applied at 1/4 resolution. The 9 x 18 = 162
per-tap channels are mixed at 1/4 resolution, and each tap's 18 are upsampled,
shifted and summed in turn, so 18 channels at a time reach full resolution; zero
"same" padding is the zero fill of the shifts. The result equals the model's to
float rounding, with less memory and less arithmetic (measured on
``hrnet_pretrained``, one 1024 px call, 2 idle CPU cores: peak RSS growth 0.8-1.2 kB
instead of 2.7 kB per pixel, varying with how TensorFlow's threads interleave the
taps; 0.71 s instead of 1.60 s a call).

:func:`lean_inference_model` builds that graph on the model's own layers; the
per-tap kernels are derived from the live convolution kernel at every call, so a
model fine-tuned afterwards predicts with its new weights. It is for inference only
(never saved): :mod:`temzoo.inference.tiling` uses it for every model it applies to.
"""

import keras

UPSAMPLING = "head_full_resolution"
SKIP_CONCAT = "head_skip_concat"
REFINE_CONV = "head_refine_conv"


class _UpsampledConv(keras.layers.Layer):
    """``conv(concat(up(features), skip))`` computed as per-tap mixings, upsampled, shifted and summed."""

    def __init__(self, upsampling, conv, **kwargs):
        super().__init__(**kwargs)
        self.upsampling = upsampling
        self.conv = conv

    def call(self, features, skip=None):
        ops = keras.ops
        dtype = features.dtype  # the refinement convolution's compute dtype (bfloat16 in a mixed-precision copy)
        kernel = ops.cast(self.conv.kernel, dtype)
        size, _, _, out = self.conv.kernel.shape
        n_features = features.shape[-1]
        # (k, k, n, out) -> (n, k * k * out): column t * out + c is tap t's mixing into channel c
        taps = ops.reshape(ops.transpose(kernel[:, :, :n_features], (2, 0, 1, 3)), (1, 1, n_features, size * size * out))
        mixed = ops.conv(features, taps, padding="same")  # at the features' (low) resolution
        radius = size // 2
        total = None
        for row in range(size):
            for col in range(size):
                t = row * size + col
                upsampled = ops.cast(self.upsampling(mixed[..., t * out:(t + 1) * out]), dtype)  # one tap at a time
                height, width = ops.shape(upsampled)[1], ops.shape(upsampled)[2]
                block = ops.pad(upsampled, [[0, 0], [radius, radius], [radius, radius], [0, 0]])
                shifted = block[:, row:row + height, col:col + width, :]
                total = shifted if total is None else total + shifted
        if skip is not None:
            total = total + ops.conv(skip, kernel[:, :, n_features:], padding="same")
        if self.conv.use_bias:
            total = total + ops.cast(self.conv.bias, dtype)
        return total

    def compute_output_shape(self, features_shape, skip_shape=None):
        factor = self.upsampling.size
        height, width = features_shape[1], features_shape[2]
        return (
            features_shape[0],
            None if height is None else height * factor[0],
            None if width is None else width * factor[1],
            self.conv.kernel.shape[-1],
        )


def lean_inference_model(model):
    """``model`` with HRNet's full-resolution head computed leanly (see the module docstring).

    Returns ``model`` itself when it has no such head (another family), when the
    per-tap channels (9 x the refinement's output channels) would not be fewer than
    the concatenated ones, or when the layers after the refinement convolution are
    not a single chain (then the rewiring is not attempted).
    """
    names = {layer.name for layer in model.layers}
    if len(model.outputs) != 1 or UPSAMPLING not in names or REFINE_CONV not in names:
        return model
    try:
        upsampling, conv = model.get_layer(UPSAMPLING), model.get_layer(REFINE_CONV)
        features = upsampling.input
        skip = None
        if SKIP_CONCAT in names:
            concat = model.get_layer(SKIP_CONCAT)
            parts = concat.input
            if len(parts) != 2 or parts[0] is not upsampling.output or conv.input is not concat.output:
                return model
            skip = parts[1]
        elif conv.input is not upsampling.output:
            return model
        if conv.strides != (1, 1) or conv.dilation_rate != (1, 1) or conv.padding != "same" or conv.groups != 1:
            return model
        size, _, channels_in, channels_out = conv.kernel.shape
        if size * size * channels_out >= channels_in:  # the per-tap channels would not be fewer
            return model
        x = _UpsampledConv(upsampling, conv, dtype=conv.dtype_policy, name="lean_head_refine")(features, skip)
        tensor = conv.output
        while tensor is not model.outputs[0]:
            consumers = [layer for layer in model.layers if _single_input(layer) is tensor]
            if len(consumers) != 1:
                return model
            x, tensor = consumers[0](x), consumers[0].output
    except (AttributeError, ValueError):  # a layer called more than once: no single input/output
        return model
    return keras.Model(model.inputs, x, name=f"{model.name}_lean")


def _single_input(layer):
    try:
        value = layer.input
    except (AttributeError, ValueError):
        return None
    return value if not isinstance(value, (list, tuple)) else None
