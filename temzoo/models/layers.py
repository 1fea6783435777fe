"""Building blocks shared by the model families."""

import math

import keras

from temzoo.errors import InputSizeError

NORMALIZATIONS = ("batch", "group", "instance", "none")
UPSAMPLINGS = ("transpose", "bilinear")
BLOCK_TYPES = ("plain", "residual")


def check_choice(what, value, choices):
    """Fail early with the valid values listed (CAREamics-style)."""
    if value not in choices:
        raise ValueError(f"{what}={value!r} is not supported; choose one of: {', '.join(map(repr, choices))}.")


def normalization_layer(kind, channels, groups=8, name=None):
    """Return a normalisation layer, or ``None`` for ``"none"``.

    ``"batch"`` is a synchronized BatchNormalization: under a
    ``tf.distribute`` strategy the batch statistics are all-reduced across
    replicas, so training on N devices matches one device for the same global
    batch (TensorFlow backend; Keras supports ``synchronized`` nowhere else, so
    other backends get a plain one: :func:`batch_norm_for_backend`). ``"group"`` does not depend on the batch at all (good for batch
    sizes of 1-2); ``"instance"`` is GroupNormalization with one group per
    channel.
    """
    check_choice("normalization", kind, NORMALIZATIONS)
    if kind == "batch":
        return keras.layers.BatchNormalization(synchronized=keras.backend.backend() == "tensorflow", name=name)
    if kind == "group":
        return keras.layers.GroupNormalization(groups=math.gcd(groups, channels), name=name)
    if kind == "instance":
        return keras.layers.GroupNormalization(groups=-1, name=name)
    return None


def batch_norm_for_backend():
    """``custom_objects`` that load saved synchronized BatchNormalization layers on a backend without
    ``synchronized`` (JAX, PyTorch) as plain ones; empty on TensorFlow. Only multi-replica training
    differs: one device computes the same statistics either way."""
    if keras.backend.backend() == "tensorflow":
        return {}

    class BatchNormalization(keras.layers.BatchNormalization):
        def __init__(self, synchronized=False, **kwargs):
            super().__init__(**kwargs)

    return {"BatchNormalization": BatchNormalization}


def conv_norm_act(x, filters, kernel_size, normalization, activation, groups, name, strides=1):
    """Conv2D (no bias when normalised) -> normalisation -> activation."""
    use_bias = normalization == "none"
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias, name=f"{name}_conv"
    )(x)
    norm = normalization_layer(normalization, filters, groups, name=f"{name}_norm")
    if norm is not None:
        x = norm(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    return x


@keras.saving.register_keras_serializable(package="temzoo")
class SizeCheck(keras.layers.Layer):
    """Identity that refuses images whose height/width are not multiples of ``stride``.

    Models do not pad or guess: ``temzoo.predict`` pads to the stride, a raw
    model call with a size that does not fit raises :class:`InputSizeError`.
    """

    def __init__(self, stride, model_name="model", **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)
        self.model_name = model_name

    def call(self, inputs):
        shape = inputs.shape
        height, width = shape[1], shape[2]
        if height is not None and width is not None:
            self.check(height, width, self.stride, self.model_name)
            return inputs
        import tensorflow as tf  # dynamic shapes only occur when tracing with None dims

        dyn = tf.shape(inputs)
        msg = (
            f"{self.model_name}: image height and width must be multiples of {self.stride}; "
            "pad the image or use temzoo.predict, which pads automatically."
        )
        with tf.control_dependencies(
            [
                tf.debugging.assert_equal(dyn[1] % self.stride, 0, message=msg),
                tf.debugging.assert_equal(dyn[2] % self.stride, 0, message=msg),
            ]
        ):
            return tf.identity(inputs)

    @staticmethod
    def check(height, width, stride, model_name="model"):
        if height % stride == 0 and width % stride == 0 and height > 0 and width > 0:
            return
        def up(n):
            return max(stride, -(-n // stride) * stride)
        def down(n):
            return max(stride, (n // stride) * stride)
        raise InputSizeError(
            f"{model_name} cannot take a {height}x{width} image: height and width must be "
            f"multiples of its total stride {stride} (e.g. {down(height)}x{down(width)} or "
            f"{up(height)}x{up(width)}). Crop or pad the image, or use temzoo.predict(), "
            "which pads to the stride and crops back."
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "model_name": self.model_name}


def output_head(x, channels, activation, name="head"):
    """The 1x1 convolution every dense family ends with.

    Task builders find the layer named ``head`` and attach a new one to its
    input, so every family must keep this name.
    """
    x = keras.layers.Conv2D(channels, 1, padding="same", name=name)(x)
    # float32 so that mixed-precision models always return float32
    return keras.layers.Activation(activation or "linear", dtype="float32", name=f"{name}_activation")(x)


@keras.saving.register_keras_serializable(package="temzoo")
class UpSampling2D(keras.layers.UpSampling2D):
    """Keras' ``UpSampling2D`` that also traces when the image size is unknown.

    Keras' bilinear ``UpSampling2D`` needs static height and width; ``model.predict``
    relaxes them to ``None`` once it has seen two image sizes (and a
    ``tf.function`` with a ``[None, None, None, C]`` signature has none), and
    the layer then fails. With unknown sizes this computes the same resize
    (``tf.image.resize``, half-pixel centres) from the dynamic shape.
    """

    def call(self, inputs):
        if inputs.shape[1] is not None and inputs.shape[2] is not None:
            return super().call(inputs)
        import tensorflow as tf  # dynamic shapes only occur when tracing (TensorFlow backend)

        shape = tf.shape(inputs)
        size = tf.stack([shape[1] * self.size[0], shape[2] * self.size[1]])
        method = "nearest" if self.interpolation == "nearest" else self.interpolation
        return tf.cast(tf.image.resize(inputs, size, method=method), inputs.dtype)
