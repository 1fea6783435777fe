"""U-Net whose encoder is a ``keras.applications`` MobileNet (V2, V3-Small, V3-Large)."""

import os
import warnings

import keras

from temzoo.errors import BadInputError, TemzooError
from temzoo.models.graph import producer
from temzoo.models.layers import (
    UPSAMPLINGS,
    SizeCheck,
    UpSampling2D,
    check_choice,
    conv_norm_act,
    output_head,
)

ENCODERS = ("mobilenetv2", "mobilenetv3small", "mobilenetv3large")
INPUT_ADAPTERS = ("conv", "replicate")
TOTAL_STRIDE = 32


def imagenet_weights_file(encoder, alpha=1.0, minimalistic=False):
    """File name of the ImageNet "no top" weights that ``keras.applications`` downloads."""
    if encoder == "mobilenetv2":
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_224_no_top.h5"
    kind = "small" if encoder == "mobilenetv3small" else "large"
    model_name = "{}{}_224_{}_float".format(kind, "_minimalistic" if minimalistic else "", str(alpha))
    return f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"


def _application(encoder, alpha, minimalistic, weights):
    apps = keras.applications
    common = dict(input_shape=(None, None, 3), alpha=alpha, include_top=False, weights=weights)
    if encoder == "mobilenetv2":
        return apps.MobileNetV2(**common, name="mobilenetv2")
    fn = apps.MobileNetV3Small if encoder == "mobilenetv3small" else apps.MobileNetV3Large
    # include_preprocessing=False: no hidden Rescaling(1/127.5, -1); temzoo's Normalizer scales inputs.
    return fn(**common, minimalistic=minimalistic, include_preprocessing=False, name=encoder)


def build_encoder(encoder="mobilenetv2", alpha=1.0, minimalistic=False, weights=None):
    """A model from a 3-channel image to its features at strides 2, 4, 8, 16 and 32.

    The stride-``2**k`` tap is the last feature map at that resolution: the
    tensor that enters the network's ``k``-th stride-2 layer (before its zero
    padding), and the network's output for stride 32.

    ``weights``: ``None``, ``"imagenet"`` (Keras' own downloader and cache,
    ``~/.keras/models/``) or the path of a Keras weights file for this
    encoder. Offline, ``"imagenet"`` fails with a :class:`TemzooError` that
    names the file to put in ``~/.keras/models/``.
    """
    check_choice("encoder", encoder, ENCODERS)
    if weights not in (None, "imagenet"):
        if not os.path.isfile(os.fspath(weights)):
            raise BadInputError(
                f"encoder_weights file {os.fspath(weights)!r} does not exist; pass None, 'imagenet' or "
                "the path of a keras.applications weights file (.h5) for this encoder."
            )
        weights = os.fspath(weights)
    try:
        with warnings.catch_warnings():
            # the encoder is fully convolutional: ImageNet weights for 224 px apply to any size
            warnings.filterwarnings("ignore", message=".*Weights for input shape \\(224, 224\\) will be loaded")
            app = _application(encoder, alpha, minimalistic, weights)
    except ValueError:
        raise  # Keras' own argument checks (e.g. alpha without ImageNet weights) are clear
    except Exception as error:
        if weights != "imagenet":
            raise
        fname = imagenet_weights_file(encoder, alpha, minimalistic)
        raise TemzooError(
            f"Could not get the ImageNet weights of {encoder} (alpha={alpha}): {error}. "
            f"Without internet, download {fname} elsewhere (keras.applications' weights release on "
            f"GitHub, storage.googleapis.com/tensorflow/keras-applications/) and put it in "
            f"~/.keras/models/{fname}, or pass encoder_weights=None."
        ) from error
    taps = []
    for layer in app.layers:
        strides = getattr(layer, "strides", None)
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D) and tuple(strides) == (2, 2):
            x = layer.input
            if isinstance(producer(x), keras.layers.ZeroPadding2D):
                x = producer(x).input
            taps.append(x)
    taps = taps[1:] + [app.output]  # the first stride-2 layer reads the image itself
    if len(taps) != 5:
        raise AssertionError(f"{encoder}: expected 5 feature taps, found {len(taps)}")
    return keras.Model(app.input, taps, name="encoder")


@keras.saving.register_keras_serializable(package="temzoo")
class MobileNetUNet(keras.Model):
    """U-Net with a MobileNet encoder from ``keras.applications``.

    The encoder's features at strides 2, 4, 8, 16 and 32 are the skip
    connections of a U-Net decoder that upsamples back to full resolution,
    where a small full-resolution convolution of the input is the last skip.

    Args:
        encoder: ``"mobilenetv2"`` (default), ``"mobilenetv3small"`` or
            ``"mobilenetv3large"``.
        alpha: encoder width multiplier. ImageNet weights exist for V2 with
            0.35, 0.5, 0.75, 1.0, 1.3, 1.4 and for V3 with 0.75 and 1.0.
        minimalistic: V3 only: the variant without squeeze-excite, 5x5 kernels
            and hard-swish.
        encoder_weights: ``None`` (random), ``"imagenet"`` (downloaded once by
            Keras into ``~/.keras/models/``; offline it raises an error naming
            the file to put there) or the path of a keras.applications weights
            file. The value is stored in the config for the record, but
            ``from_config`` (and so loading a saved ``.keras`` file) rebuilds
            the encoder with random weights: the trained weights then come
            from the saved file, and loading never downloads or reads the
            original weights path.
        input_adapter: how a non-3-channel image enters the 3-channel encoder:
            ``"conv"`` (default) a learned 1x1 convolution, initialised to copy
            the image into all three channels; ``"replicate"`` repeats a
            1-channel image three times (no weights). Unused when
            ``input_channels == 3``. The encoder sees the input as it is
            (no ImageNet preprocessing inside the model; V3's built-in
            rescaling is switched off): normalise images with temzoo's
            Normalizer.
        decoder_filters: widths of the five decoder blocks (strides 16, 8, 4,
            2 and 1).
        upsampling: ``"transpose"`` (learned 2x2) or ``"bilinear"`` (resize,
            then a 1x1 conv).
        normalization, groups, activation: of the decoder blocks.
        input_channels, output_channels, output_activation: as in ``UNet``.

    Input height and width must be multiples of 32.
    """

    family = "mobilenet_unet"

    def __init__(
        self,
        encoder="mobilenetv2",
        alpha=1.0,
        minimalistic=False,
        encoder_weights=None,
        input_adapter="conv",
        decoder_filters=(256, 128, 64, 32, 16),
        upsampling="transpose",
        normalization="batch",
        groups=8,
        activation="relu",
        input_channels=1,
        output_channels=1,
        output_activation=None,
        **kwargs,
    ):
        check_choice("encoder", encoder, ENCODERS)
        check_choice("input_adapter", input_adapter, INPUT_ADAPTERS)
        check_choice("upsampling", upsampling, UPSAMPLINGS)
        decoder_filters = [int(f) for f in decoder_filters]
        if len(decoder_filters) != 5:
            raise ValueError(f"decoder_filters needs 5 values (strides 16, 8, 4, 2, 1), got {decoder_filters}.")
        if minimalistic and encoder == "mobilenetv2":
            raise ValueError("minimalistic=True exists only for the MobileNetV3 encoders.")
        if input_adapter == "replicate" and input_channels not in (1, 3):
            raise ValueError(f"input_adapter='replicate' needs 1 input channel, got {input_channels}; use 'conv'.")
        name = kwargs.pop("name", "mobilenet_unet")
        block = dict(normalization=normalization, activation=activation, groups=groups)

        inputs = keras.Input((None, None, input_channels), name="image")
        image = SizeCheck(TOTAL_STRIDE, model_name=name, name="size_check")(inputs)
        if input_channels == 3:
            x = image
        elif input_adapter == "conv":
            x = keras.layers.Conv2D(
                3, 1, padding="same", kernel_initializer=ChannelCopy(), name="input_adapter"
            )(image)
        else:
            x = keras.layers.Concatenate(name="input_adapter")([image, image, image])
        features = build_encoder(encoder, alpha, minimalistic, encoder_weights)(x)
        x = features[-1]
        skips = [image] + list(features[:-1])  # strides 1, 2, 4, 8, 16
        for i, filters in enumerate(decoder_filters):
            level = 4 - i
            if upsampling == "transpose":
                x = keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}")(x)
            else:
                x = UpSampling2D(2, interpolation="bilinear", name=f"up{level}_resize")(x)
                x = keras.layers.Conv2D(filters, 1, padding="same", name=f"up{level}")(x)
            skip = skips[level]
            if level == 0:  # full resolution: a few features of the image itself
                skip = conv_norm_act(skip, filters, 3, name="full_resolution", **block)
            x = keras.layers.Concatenate(name=f"skip{level}")([x, skip])
            x = conv_norm_act(x, filters, 3, name=f"dec{level}_0", **block)
            x = conv_norm_act(x, filters, 3, name=f"dec{level}_1", **block)
        outputs = output_head(x, output_channels, output_activation)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.encoder_name = encoder
        self.alpha = alpha
        self.minimalistic = minimalistic
        self.encoder_weights = None if encoder_weights is None else os.fspath(encoder_weights)
        self.input_adapter = input_adapter
        self.decoder_filters = decoder_filters
        self.upsampling = upsampling
        self.normalization = normalization
        self.groups = groups
        self.activation = activation
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.output_activation = output_activation
        self.total_stride = TOTAL_STRIDE

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": self.encoder_name,
            "alpha": self.alpha,
            "minimalistic": self.minimalistic,
            "encoder_weights": self.encoder_weights,
            "input_adapter": self.input_adapter,
            "decoder_filters": list(self.decoder_filters),
            "upsampling": self.upsampling,
            "normalization": self.normalization,
            "groups": self.groups,
            "activation": self.activation,
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuild the architecture without fetching ``encoder_weights`` (see the class docstring)."""
        config = dict(config)
        recorded = config.pop("encoder_weights", None)
        model = cls(**config, encoder_weights=None)
        model.encoder_weights = recorded
        return model


@keras.saving.register_keras_serializable(package="temzoo")
class ChannelCopy(keras.initializers.Initializer):
    """1x1 kernel that copies the mean of the input channels into every output channel."""

    def __call__(self, shape, dtype=None):
        return keras.ops.ones(shape, dtype=dtype) / shape[-2]

    def get_config(self):
        return {}
